"""One default for each setting: the schema's. The stages have none of their own,
and every setting the schema holds reaches the command of the stage that uses it."""

import argparse
import re
import shutil

import pytest
import yaml

from featevo import explain, extract, models, standin, train, visualize
from snakemake_helpers import ROOT, snakemake

# options that are not workflow settings, each with the reason it may have a default
NOT_SETTINGS = {
    "help": "argparse's own",
    "threads": "how a job runs (Snakemake's threads), not what it computes",
    "deterministic": "a flag: absent is false, as the rule passes it only when true",
    "tag": "a label of the progress lines",
    "previous_optim": "absent for epoch 1, whose optimizer state is fresh",
    "from_checkpoint": "absent for init: random",
    "skip_unreadable": "a flag: absent is false, as the rule passes it only when true",
    "processes": "how a job runs (Snakemake's threads), not what it computes",
    "val": "a path, absent for the reference network (Fig. 3), whose top images are not drawn",
    "val_images": "a path, given only with data.validation: ilsvrc_val (from the environment, like data.imagenet)",
    "val_labels": "a path, given only with data.validation: ilsvrc_val",
}


def options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from options(sub)
        elif action.option_strings:
            yield parser.prog, action


@pytest.mark.parametrize("stage", [standin, extract, train, visualize, explain], ids=lambda m: m.__name__)
def test_no_stage_keeps_a_default_of_a_workflow_setting(stage):
    loose = [f"{prog} {a.option_strings[0]} (default {a.default!r})" for prog, a in options(stage.parser())
             if a.dest not in NOT_SETTINGS and not a.required]
    assert not loose, "a workflow setting with a default outside the schema: " + ", ".join(loose)


# distinctive values: each must arrive, spelled as the stage's flag, in its rule's command
SETTINGS = {
    "visualize": {"steps": 37, "step_size": 0.0731, "median_every": 7, "median_size": 5, "objective": "softmax",
                  "normalize": "none", "init": "uniform", "init_std": 0.123, "seed": 3, "restarts": 4, "top_k": 6},
    "train": {"batch_size": 17, "lr": 0.91, "rho": 0.93, "eps": 1.3e-07, "augment": "hflip"},
    "model": {"dropout": 0.37, "init": "glorot"},
    "reference": {"epochs": 9, "lr": 0.0021, "batch_size": 19, "warmup": 0.07, "dropout": 0.11,
                  "schedule": "constant", "classifier_init": "torchvision"},
    "judge": {"epochs": 6, "seed": 5, "arch": "vgg13"},
    "methods": {"images_per_class": 2, "occlusion": {"window": 10, "stride": 5},
                "inversion": {"steps": 23, "lr": 0.031, "tv_weight": 7.5}},
    "experiments": {"scratch": {"epochs": 4}},
    "data": {"seed": 4, "layout": "folder", "resize": "center_crop", "skip_unreadable": True},
    "standin": {"seed": 6, "image_size": 44, "clutter": 3},
}
EXPECTED = {  # rule: flags its every command carries
    "visualize": "--steps 37 --step-size 0.0731 --normalize none --median-every 7 --median-size 5 --objective softmax"
                 " --init uniform --init-std 0.123 --seed 3 --restarts 4",
    "visualize ": "--restarts 4 --top-k 6 --device auto --precision auto --val",
    # Fig. 3: the very same recipe as every checkpoint's
    "visualize_reference": "--steps 37 --step-size 0.0731 --normalize none --median-every 7 --median-size 5"
                           " --objective softmax --init uniform --init-std 0.123 --seed 3 --restarts 4",
    "train_epoch": "--batch-size 17 --lr 0.91 --rho 0.93 --eps 1.3e-07",
    "init_model": "--dropout 0.37 --init glorot",
    "train_network reference": "--seed 0 --arch vgg16 --width-divisor 16 --pool-size 1 --dropout 0.11 --init torchvision"
                       " --epochs 9 --batch-size 19"
                       " --optimizer adam --lr 0.0021 --rho 0.93 --eps 1.3e-07 --augment hflip --schedule constant"
                       " --warmup 0.07 --classifier-init torchvision",
    "train_network judge": "--seed 5 --arch vgg13 --width-divisor 16 --pool-size 1 --dropout 0.11 --init torchvision"
                           " --epochs 6",
    # the three pools: the subset's, then the reference's and the judge's, each with a seed of its own
    "standin": ("--wnids n01644373 n02007558 n07697313 n03982430 --per-class 14 --seed 6 --size 44 --clutter 3",
                "--seed 1000009 --size 44 --clutter 3", "--seed 2000009 --size 44 --clutter 3"),
    "extract_subset": "--seed 4 --layout folder --resize center_crop --skip-unreadable",
    "explain": "--images-per-class 2 --window 10 --stride 5 --layers features.8 features.15 features.29 --steps 23"
               " --lr 0.031 --tv-weight 7.5",
}


def test_every_setting_reaches_its_stage(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(SETTINGS))
    out = snakemake(tmp_path, "-n", "-p", configs=[ROOT / "tests" / "configs" / "tiny.yaml", tmp_path / "mine.yaml"]).stdout
    commands: dict[str, list[str]] = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0].strip()
        shell = re.search(r"^(?:Shell command: )?(\(?python -m featevo \w+ .*)$", block, re.M)
        if shell:
            if rule == "train_network":  # one rule, the reference and the judge: named by its data
                rule += " " + re.search(r"--data \S+/data/(\w+)", shell.group(1)).group(1)
            commands.setdefault(rule, []).append(shell.group(1))
    for rule, flags in EXPECTED.items():
        rule = rule.strip()
        assert commands.get(rule), f"no {rule} job in the dry run"
        for cmd in commands[rule]:
            for flag in [flags] if isinstance(flags, str) else flags:
                assert flag in cmd, f"{rule}: expected {flag!r} in\n{cmd}"
    epochs = [c for c in commands["train_epoch"] if "train/scratch/seed0/" in c]
    assert len(epochs) == 4  # experiments.scratch.epochs
    assert "--augment hflip" in commands["train_epoch"][0]


def test_one_list_of_methods():
    """featevo.METHODS is the list the rules and the stages read; the schema names the same."""
    from featevo import METHODS
    from featevo.config_checks import schema_defaults

    methods = schema_defaults()["methods"]
    assert [k for k in methods if isinstance(methods[k], dict) and "enabled" in methods[k]] == list(METHODS)
    assert explain.parser().parse_args([
        "--checkpoint", "c", "--data", "d", "--out", "o", "--methods", *METHODS, "--images-per-class", "1",
        "--window", "1", "--stride", "1", "--layers", "--steps", "1", "--lr", "1", "--tv-weight", "1",
        "--device", "cpu"]).methods == list(METHODS)


def test_each_stage_accepts_the_schema_s_choices():
    """The schema's enums and the stages' choices are one list each (no twin to drift)."""
    from featevo.config_checks import SCHEMA_FILE

    props = yaml.safe_load(SCHEMA_FILE.read_text())["properties"]
    data, viz = props["data"]["properties"], props["visualize"]["properties"]
    assert data["layout"]["enum"] == list(extract.LAYOUTS)
    assert data["resize"]["enum"] == list(extract.RESIZES)
    assert viz["objective"]["enum"] == list(visualize.OBJECTIVES)
    assert props["model"]["properties"]["init"]["enum"] == list(models.INITS)

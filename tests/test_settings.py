"""Each setting is written once: in the schema (with its default) and in the code that
reads it.  Rules hand a stage its config sections whole (featevo.cli.settings), the
stage reads them back through featevo.settings, and every registry covers its
schema enum."""

import argparse
import ast
import json
import re
import shlex
import shutil

import pytest
import yaml

from featevo import cli, explain, extract, models, settings, standin, train, visualize
from featevo.config_checks import SCHEMA_FILE
from snakemake_helpers import ROOT, snakemake

SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text())
PROPS = SCHEMA["properties"]

# options that are not workflow settings, each with the reason it may have a default
NOT_SETTINGS = {
    "help": "argparse's own",
    "settings": "the config sections whole; their defaults are the schema's (featevo.settings)",
    "threads": "how a job runs (Snakemake's threads), not what it computes",
    "tag": "a label of the progress lines",
    "units": "the class units, derived from data.classes (absent with --inner)",
    "names": "the class names, from data.classes (absent with --inner)",
    "inner": "a mode: the inner units of visualize.units instead of the class units",
    "exclude": "a path: the main subset's manifest, given only to the judge's extraction from your own folder",
    "net": "which of the two networks of train_network's one recipe (reference or judge)",
    "previous_optim": "absent for epoch 1, whose optimizer state is fresh",
    "from_checkpoint": "absent for init: random",
    "skip_unreadable": "a flag: absent is false, as the rule passes it only when true",
    "processes": "how a job runs (Snakemake's threads), not what it computes",
    "val": "a path, absent for the reference network (Fig. 3), whose top images are not drawn",
    "key": "a wildcard: what a visualize job draws (experiment, seed, epoch), which seeds its starting noise",
    "represent": "a path, absent for the reference network (Fig. 3), whose layers are not compared",
    "previous": "a path, absent for a run's first epoch, which has no weight change",
    "val_images": "a path, given only with data.validation: ilsvrc_val (from the environment, like data.imagenet)",
    "val_labels": "a path, given only with data.validation: ilsvrc_val",
    "spectrum_images": "a path, given only with visualize.maco.spectrum: images",
    "source": "a path: your own checkpoint, given by hand (the rule gives --checkpoints instead)",
    "checkpoints": "experiments.*.checkpoints' pattern, from the environment (like data.imagenet); or --source",
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


def test_settings_are_the_schema_s_and_refuse_what_it_does_not_have():
    s = settings.parse('{"visualize": {"steps": 7}}', "visualize", "methods")
    assert s.visualize.steps == 7  # given
    assert s.visualize.median_every == PROPS["visualize"]["properties"]["median_every"]["default"]  # filled in
    assert s.methods.inversion.layers == tuple(PROPS["methods"]["properties"]["inversion"]["properties"]["layers"]
                                               ["default"])
    with pytest.raises(AttributeError, match="visualize has no setting 'stpes'.*config.schema.yaml"):
        s.visualize.stpes
    with pytest.raises(AttributeError, match="read-only"):
        s.visualize.steps = 8
    with pytest.raises(SystemExit, match="visualize.steps"):
        settings.parse('{"visualize": {"steps": "many"}}', "visualize")
    with pytest.raises(SystemExit, match="visualize.*stpes"):
        settings.parse('{"visualize": {"stpes": 3}}', "visualize")
    with pytest.raises(SystemExit, match="not JSON"):
        settings.parse("{steps: 3", "visualize")


def test_a_config_file_gives_a_stage_its_settings_by_hand(tmp_path):
    (tmp_path / "mine.yaml").write_text("visualize: {steps: 9, objective: softmax}\ndata: {image_size: 40}\n")
    a = visualize.parser().parse_args(["--checkpoint", "c.pt", "--out-png", "o.png", "--out-npz", "o.npz",
                                       "--units", "0", "--names", "x", "--settings", f"@{tmp_path / 'mine.yaml'}"])
    assert (a.settings.visualize.steps, a.settings.visualize.objective, a.settings.data.image_size) == (9, "softmax",
                                                                                                         40)


def test_how_jobs_run_changes_no_job_s_settings():
    """threads, keeping files and which epochs are explained rerun nothing (featevo.cli.OPERATIONAL)."""
    from featevo.config_checks import schema_defaults

    cfg = schema_defaults()
    cfg["data"]["image_size"] = 64  # the one setting here without a default
    changed = {**cfg, "train": {**cfg["train"], "threads": 7, "keep_checkpoints": False},
               "methods": {**cfg["methods"], "threads": 3, "every": 9}}
    for picks in (cli.EPOCH, cli.INIT, cli.EXPLAIN, cli.NETWORK):
        assert cli.settings(cfg, *picks) == cli.settings(changed, *picks)
    assert cli.settings(cfg, *cli.VISUALIZE) != cli.settings({**cfg, "visualize": {**cfg["visualize"], "steps": 1}},
                                                            *cli.VISUALIZE)


# distinctive values: each must arrive in its rule's command, read back by the stage itself
SETTINGS = {
    "visualize": {"steps": 37, "step_size": 0.0731, "median_every": 7, "median_size": 5, "objective": "softmax",
                  "normalize": "none", "init": "uniform", "init_std": 0.123, "seed": 3, "restarts": 4, "top_k": 6,
                  "optimizer": "adam", "transforms": [{"jitter": 3}, {"rotate": 7.5}], "maco": {"alpha": 1.7}},
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
# rule: the config sections its stage reads back from --settings
SECTIONS = {"visualize": ("visualize",), "visualize_reference": ("visualize",), "init_model": ("model",),
            "train_epoch": ("train",), "train_network reference": ("model", "reference", "train.rho", "train.eps"),
            "train_network judge": ("judge", "reference", "train.rho", "train.eps"), "explain": ("methods",)}
STAGES = {"train": train, "visualize": visualize, "explain": explain}
FLAGS = {  # the stages whose arguments are derived per job (three pools, three subsets): flags
    # the three pools: the subset's, then the reference's and the judge's, each with a seed of its own
    "standin": ("--wnids n01644373 n02007558 n07697313 n03982430 --per-class 14 --seed 6 --size 44 --clutter 3",
                "--seed 1000009 --size 44 --clutter 3", "--seed 2000009 --size 44 --clutter 3"),
    "extract_subset": ("--seed 4 --layout folder --resize center_crop --skip-unreadable",),
}


def _subset(given: dict, read) -> None:
    for key, value in given.items():
        if isinstance(value, dict):
            _subset(value, read[key])
        else:
            assert settings._plain(read[key]) == value, f"{key}: {read[key]!r} arrived, {value!r} set"


def test_every_setting_reaches_its_stage(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(SETTINGS))
    out = snakemake(tmp_path, "-n", "-p", configs=[ROOT / "tests" / "configs" / "tiny.yaml", tmp_path / "mine.yaml"]).stdout
    commands: dict[str, list[str]] = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0].strip()
        shell = re.search(r"^(?:Shell command: )?(\(?python -m featevo \w+ .*)$", block, re.M)
        if shell:
            if rule == "train_network":  # one rule, the reference and the judge
                rule += " " + re.search(r"--net (\w+)", shell.group(1)).group(1)
            commands.setdefault(rule, []).append(shell.group(1))
    for rule, sections in SECTIONS.items():
        assert commands.get(rule), f"no {rule} job in the dry run"
        for cmd in commands[rule]:
            argv = shlex.split(cmd.split(" > ")[0])
            a = STAGES[argv[3]].parser().parse_args(argv[4:])  # the stage's own reading of its command
            for pick in sections:
                section, _, key = pick.partition(".")
                given = {key: SETTINGS[section][key]} if key else SETTINGS[section]
                if section == "reference" and "judge" in sections:
                    given = {k: v for k, v in given.items() if k != "epochs"}  # the judge trains judge.epochs
                _subset(given, a.settings[section])
    assert {a for a in commands["visualize"] if "--val" not in a} == set()
    for rule, flags in FLAGS.items():
        for cmd, flag in zip(commands[rule], flags):
            assert flag in cmd, f"{rule}: expected {flag!r} in\n{cmd}"
    epochs = [c for c in commands["train_epoch"] if "train/scratch/seed0/" in c]
    assert len(epochs) == 4  # experiments.scratch.epochs


def _leaves(node: dict, prefix: str = ""):
    for key, prop in node.get("properties", {}).items():
        if "$ref" in prop:
            prop = SCHEMA["$defs"][prop["$ref"].rsplit("/", 1)[1]]
        yield prefix + key, key
        yield from _leaves(prop, f"{prefix}{key}.")


def test_every_schema_setting_is_read_somewhere():
    """No dead setting: each key of the schema is read by the package (an attribute of a
    Settings, or a subscript) or by the rules."""
    read = set()
    for f in (ROOT / "workflow" / "featevo").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute):
                read.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                read.add(node.value)
    rules = "".join(f.read_text() for f in (ROOT / "workflow" / "rules").glob("*.smk"))
    read |= set(re.findall(r"""["'](\w+)["']""", rules))
    unread = [dotted for dotted, key in _leaves(SCHEMA) if key not in read]
    assert not unread, f"settings in the schema that nothing reads: {unread}"


def _enum(*keys):
    node = SCHEMA
    for k in keys:
        node = node["properties"][k] if "properties" in node else node["additionalProperties"]["properties"][k]
        if "$ref" in node:
            node = {**SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **node}
    return node["enum"]


def test_each_registry_covers_its_schema_enum():
    """Each enum is one list: the schema's, and the registry (or choices) the code runs."""
    assert _enum("data", "layout") == ["auto", *extract.LAYOUTS]
    assert _enum("data", "resize") == list(extract.RESIZES)
    assert _enum("visualize", "objective") == list(visualize.OBJECTIVES)
    assert _enum("visualize", "init") == list(visualize.INITS)
    assert _enum("visualize", "normalize") == list(visualize.NORMALIZE)
    assert _enum("model", "init") == list(models.INITS)
    assert _enum("train", "augment") == list(train.AUGMENT) == _enum("reference", "augment")
    assert sorted(_enum("reference", "optimizer")) == sorted(train.OPTIMIZERS)
    assert sorted(_enum("reference", "schedule")) == sorted(train.SCHEDULES)
    assert sorted(_enum("reference", "classifier_init")) == sorted(train.CLASSIFIER_INITS)
    assert _enum("experiments", "freeze") == list(train.FREEZE)
    methods = [k for k, v in PROPS["methods"]["properties"].items() if "enabled" in v.get("properties", {})]
    assert methods == list(explain.METHODS)
    from featevo.config_checks import FEATURE_MODULES

    assert list(FEATURE_MODULES) == list(models.ARCHITECTURES)


def test_settings_json_round_trips_through_the_stage():
    from featevo.config_checks import schema_defaults

    text = cli.settings(schema_defaults(), *cli.EXPLAIN)  # noqa
    assert json.loads(text)["methods"]["occlusion"]["window"] == settings.parse(text, "methods").methods.occlusion.window

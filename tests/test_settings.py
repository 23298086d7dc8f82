"""Each setting is written once: in the schema (with its default) and in the code that
reads it.  What each stage reads is declared once (featevo.config.reads.READS): the rule passes
those parts as --settings, the stage reads them back through featevo.config.settings and can
read nothing else; flags carry paths, wildcards and threads only; and every registry
covers its schema enum."""

import argparse
import ast
import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from featevo.config import plan, settings
from featevo.config import reads as cli
from featevo.config.settings import (
    SCHEMA_FILE,
    load_config,
    schema_defaults,
    with_defaults,
)
from featevo.data import imagenet as extract
from featevo.measures import explain
from featevo.models import networks as models
from featevo.models import train
from featevo.optvis import objectives, optimizers
from featevo.optvis import render as loop
from featevo.preflight.checks import judge_sizes
from conftest import closure
from snakemake_helpers import ROOT, snakemake

SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text())
PROPS = SCHEMA["properties"]
from featevo.__main__ import STAGES  # noqa: E402  (every stage a rule may run)


def parsers():
    for name in STAGES:
        yield name, importlib.import_module(f"featevo.stages.{name}").parser()


def options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from options(sub)
        elif action.option_strings:
            yield parser.prog, action


def _leaves(node: dict, prefix: str = ""):
    node = {**SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **node} if "$ref" in node else node
    items = node.get("properties", {})
    if isinstance(node.get("additionalProperties"), dict):
        items = {**items, **{f"<{prefix.rstrip('.')}>.{k}": v
                             for k, v in node["additionalProperties"].get("properties", {}).items()}}
    for key, prop in items.items():
        yield prefix + key, key.rsplit(".", 1)[-1]
        yield from _leaves(prop, f"{prefix}{key}.")


SETTING_NAMES = {key for _, key in _leaves(SCHEMA)}
# command-line options named like a setting, each with why it is not one
NOT_SETTINGS = {
    "threads": "the job's threads (Snakemake's), not what it computes: never in --settings (cli.OPERATIONAL)",
    "seed": "the experiment's seed wildcard",
    "source": "train import: a path, the checkpoint of your own run to import",
    "reference": "standin: a path (the reference pool's folder); visualize: a mode (the reference network); claims: "
                 "a path (the judge's measures of Fig. 3)",
    "judge": "standin: a path (the judge's pool); metrics: a path (the judge's checkpoint)",
    "controls": "claims: a path (the positive controls' metrics/controls.csv)",
    "metrics": "a path", "data": "a path", "history": "a path", "figure": "metrics: a path (the measures' figure)",
    "experiment": "a wildcard: the experiment's name", "table": "tables: a wildcard, the table's name",
    "checkpoints": "train import: experiments.*.checkpoints' pattern, from the environment (like data.imagenet), "
                   "its content a parameter; or --source",
    "key": "visualize: a wildcard, what the job draws (experiment, seed, epoch), which seeds its starting noise",
    "represent": "visualize: a path, the checkpoint's layers read on fixed images (absent for Fig. 3)",
    "restarts": "claims: a path (each run's per-restart measures)",
    "layers": "claims: a path (each experiment's settled layers)",
    "sanity": "claims: a path (the sanity check's per-restart measures)",
}
# options with a default, each with why it may have one (a setting's default is the schema's alone)
DEFAULTS_ALLOWED = {"help", "settings", "threads", "processes", "reference", "inner", "net", "previous_optim",
                    # train import: --source or --checkpoints; visualize: its key, and its layers (paths, absent
                    # for Fig. 3 and the first epoch); metrics and claims: paths the rules give where they exist
                    "source", "checkpoints", "key", "represent", "previous", "restarts_csv", "floor", "layers",
                    "sanity", "spectrum_images",  # visualize: MACO's images, given with maco.spectrum: images
                    "from_checkpoint", "val", "val_images", "val_labels", "exclude", "main", "judge", "history",
                    "figure", "confusion", "per_class", "mean_of", "metrics", "examples", "judged", "html",
                    # visualize: the stand-in's cue-conflict images (absent with ImageNet); claims: the controls
                    "cues", "controls"}


def test_flags_carry_only_paths_wildcards_and_threads():
    """No stage has an option named like a setting (bar the few NOT_SETTINGS say why), and
    none with a default of its own but what DEFAULTS_ALLOWED lists; the rules pass no
    flag the stages do not have."""
    flags = set()
    for stage, parser in parsers():
        for prog, a in options(parser):
            flags |= set(a.option_strings)
            assert a.dest not in SETTING_NAMES or a.dest in NOT_SETTINGS, \
                f"{prog} {a.option_strings[0]}: a setting as a flag; read it from --settings (featevo.config.reads.READS)"
            assert a.required or a.dest in DEFAULTS_ALLOWED, \
                f"{prog} {a.option_strings[0]} (default {a.default!r}): a setting with a default outside the schema"
    rules = "".join(line.split("#")[0] + "\n" for f in (ROOT / "workflow" / "rules").glob("*.smk")
                    for line in f.read_text().splitlines())
    passed = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", rules))
    assert passed <= flags, f"flags in the rules that no stage has: {passed - flags}"
    for flag in ("--resize", "--image-size", "--size", "--median-every", "--names", "--seeds", "--units", "--wnids",
                 "--classes", "--freeze", "--recipe", "--judge-units", "--paper-epochs", "--layout"):
        assert flag not in passed and flag not in flags, flag


def test_every_stage_takes_settings_and_its_parts_exist_in_the_schema():
    for stage, parser in parsers():
        assert any("--settings" in a.option_strings for _, a in options(parser)), stage
    assert {k.split()[0] for k in cli.READS} == set(STAGES)
    for stage in cli.READS:
        settings.parse("{}", stage, exp="x")  # every part has a schema node


def test_settings_are_the_schema_s_and_refuse_what_it_does_not_have():
    s = settings.parse('{"visualize": {"steps": 7}}', "visualize units")
    assert s.visualize.steps == 7  # given
    assert s.visualize.median_every == PROPS["visualize"]["properties"]["median_every"]["default"]  # filled in
    m = settings.parse("{}", "explain")
    assert m.methods.inversion.layers is None  # the schema's default: the network's own stages
    assert m.methods.inversion.steps == PROPS["methods"]["properties"]["inversion"]["properties"]["steps"]["default"]
    with pytest.raises(AttributeError, match="visualize has no setting 'stpes'.*config.schema.yaml"):
        s.visualize.stpes
    with pytest.raises(AttributeError, match="read-only"):
        s.visualize.steps = 8
    with pytest.raises(SystemExit, match="visualize.steps"):
        settings.parse('{"visualize": {"steps": "many"}}', "visualize units")
    with pytest.raises(SystemExit, match="visualize.*stpes"):
        settings.parse('{"visualize": {"stpes": 3}}', "visualize units")
    with pytest.raises(SystemExit, match="not JSON"):
        settings.parse("{steps: 3", "visualize units")
    with pytest.raises(AttributeError, match="data.image_size is not set, and the schema has no default"):
        s.data.image_size


def test_a_stage_cannot_read_what_its_rule_does_not_pass():
    """The trap the declaration closes: a stage that starts reading a key its rule does not
    pass gets an error naming READS, never the schema's default in place of the user's value."""
    s = settings.parse(cli.settings(schema_defaults(), "train epoch", exp="x"), "train epoch", exp="x")
    assert s.train.batch_size == PROPS["train"]["properties"]["batch_size"]["default"]
    for read in (lambda: s.model, lambda: s.experiments.x.epochs, lambda: s.get("data"),
                 lambda: "visualize" in s, lambda: s["seeds"]):
        with pytest.raises((AttributeError, KeyError), match=r"not handed to train epoch: add it to "
                                                             r"featevo.config.reads.READS\['train epoch'\]"):
            read()
    with pytest.raises(AttributeError, match=r"train.threads is how jobs run.*a job's threads are its --threads"):
        s.train.threads  # not the schema's default in place of the config's
    judge = settings.parse("{}", "train judge")
    assert judge.reference.lr == PROPS["reference"]["properties"]["lr"]["default"]
    with pytest.raises(AttributeError, match="reference.epochs was not handed to train judge"):
        judge.reference.epochs  # the judge trains judge.epochs
    first = settings.parse('{"seeds": [5, 6]}', "train reference")
    assert first.seeds == (5,)  # seeds[0]: the first alone
    # what the stage does not read is refused in JSON (a rule passes exactly its parts)
    with pytest.raises(SystemExit, match="train.threads: given, but featevo.config.reads.READS\\['train epoch'\\] does not "
                                         "read it"):
        settings.parse('{"train": {"threads": 2}}', "train epoch", exp="x")
    with pytest.raises(SystemExit, match="model: given"):
        settings.parse('{"model": {"dropout": 0.1}}', "train epoch", exp="x")


def test_a_config_file_gives_a_stage_its_settings_by_hand(tmp_path):
    (tmp_path / "mine.yaml").write_text("visualize: {steps: 9, objective: softmax, threads: 3}\n"
                                        "data: {image_size: 40, classes: [{name: x, wnid: n01644373},"
                                        " {name: y, wnid: n02007558}]}\n"
                                        "model: {dropout: 0.1}\n")
    s = settings.parse(f"@{tmp_path / 'mine.yaml'}", "visualize")
    assert (s.visualize.steps, s.visualize.objective, s.data.image_size) == (9, "softmax", 40)
    assert plan.names(s.data) == ["x", "y"]
    with pytest.raises(AttributeError, match="how jobs run"):
        s.visualize.threads  # the job's threads are its --threads
    with pytest.raises(AttributeError, match="model was not handed to visualize"):
        s.model  # a config file's other parts are its other stages'


def test_how_jobs_run_changes_no_job_s_settings():
    """threads, keeping files and which epochs are explained rerun nothing (featevo.config.reads.OPERATIONAL)."""
    cfg = with_defaults(load_config(ROOT / "config.yaml"))
    changed = json.loads(json.dumps(cfg))
    for pick in cli.OPERATIONAL:
        section, key = pick.split(".")
        changed[section][key] = {bool: lambda v: not v, int: lambda v: v + 3}[type(cfg[section][key])](
            cfg[section][key])
    for stage in cli.READS:
        assert cli.settings(cfg, stage, exp="scratch") == cli.settings(changed, stage, exp="scratch"), stage
    steps = {**cfg, "visualize": {**cfg["visualize"], "steps": 1}}
    assert cli.settings(cfg, "visualize") != cli.settings(steps, "visualize")


def test_where_a_run_of_one_s_own_lies_is_in_no_job_s_settings():
    """A moved run folder reruns nothing (issue: sanity_metrics, claims and the curves
    reran, their settings carrying experiments.*.checkpoints): every stage's settings are
    the same for two places of the same files, and still say the experiment is imported."""
    cfg = with_defaults(load_config(ROOT / "config.yaml"))
    mine = {"epochs": 2, "checkpoints": "runs/mine/epoch_{epoch}.pt"}
    here = {**cfg, "experiments": {**cfg["experiments"], "mine": mine}}
    there = {**cfg, "experiments": {**cfg["experiments"], "mine": {**mine, "checkpoints": "/else/where/e{epoch}.pt"}}}
    readers = 0
    for stage in cli.READS:
        a, b = cli.settings(here, stage, exp="mine"), cli.settings(there, stage, exp="mine")
        assert a == b, stage
        assert "runs/mine" not in a, stage
        if '"mine"' in a:
            readers += 1
            assert json.loads(a)["experiments"]["mine"]["checkpoints"] == cli.IMPORTED, stage
            assert plan.imported(json.loads(a)["experiments"]["mine"]), stage
            settings.parse(a, stage, exp="mine")  # what the stage itself reads: the schema still holds
    assert readers >= 3  # sanity measure, claims, figures curves at least


# distinctive values: each must arrive in every stage that reads it
SETTINGS = {
    "seeds": [3, 8],
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
    "experiments": {"scratch": {"epochs": 4, "table": "table9", "paper": {"epochs": [1, 4], "val_acc": [0.3, 0.6]}},
                    "frozen": {"freeze": "features"},
                    "mine": {"epochs": 2, "checkpoints": "runs/mine/epoch_{epoch}.pt"}},
    "data": {"seed": 4, "layout": "folder", "resize": "center_crop", "skip_unreadable": True,
             "classes": [{"name": "tree frog!", "wnid": "n01644373", "imagenet_index": 31},
                         {"name": "flamingo", "wnid": "n02007558"}, {"name": "burger", "wnid": "n07697313"},
                         {"name": "pool table", "wnid": "n03982430"}]},
    "standin": {"seed": 6, "image_size": 44, "clutter": 3, "extra_wnids": ["n01641577"]},
    "atlas": {"enabled": True, "every": 3, "channels": 3, "top_k": 5},
    "controls": {"cue_conflict": 3, "images_per_count": 7},
}


def _flat(node, prefix=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _flat(v, (*prefix, k))
    else:
        yield prefix, node
def _subset(given: dict, read) -> None:
    for key, value in given.items():
        if isinstance(value, dict):
            _subset(value, read[key])
        else:
            assert settings._plain(read[key]) == value, f"{key}: {read[key]!r} arrived, {value!r} set"


def stage_of(argv: list[str]) -> tuple[str, dict]:
    """The READS entry (and the wildcards it names) a stage's command line stands for:
    what the stage's own main chooses."""
    name, rest = argv[0], argv[1:]
    a = importlib.import_module(f"featevo.stages.{name}").parser().parse_args(rest)
    if name == "extract":
        return f"extract {a.subset}", {}
    if name == "train":
        return (f"train {a.net}" if a.cmd == "reference" else f"train {a.cmd}"), {"exp": getattr(a, "experiment", "")}
    if name == "visualize":
        return "visualize units" if a.inner else "visualize reference" if a.reference else "visualize", {}
    if name in ("figures", "tables", "sanity", "atlas"):
        return f"{name} {a.cmd}", {"exp": getattr(a, "experiment", "")}
    return name, {}


def test_a_layered_setting_reaches_every_stage_that_reads_it(tmp_path):
    """Through snakemake: config.yaml, tests/configs/tiny.yaml and a file of distinctive
    values layered; each job's --settings, read back by its stage's own parse, equals
    the layered config's parts (READS), and each distinctive value is found in every
    job whose stage reads it."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(SETTINGS, sort_keys=False))
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    for e in (0, 1, 2):  # an imported run's checkpoints: the config check wants them there
        (tmp_path / "runs" / "mine" / f"epoch_{e}.pt").write_bytes(b"")
    layers = [ROOT / "config.yaml", ROOT / "tests" / "configs" / "tiny.yaml", tmp_path / "mine.yaml"]
    out = snakemake(tmp_path, "-n", "-p", configs=layers[1:]).stdout
    cfg = with_defaults(load_config(*layers))
    cfg["judge"].update(judge_sizes(cfg))  # null sizes follow the data: the workflow fills them in
    jobs = []
    for cmd in re.findall(r"^(?:Shell command: )?\(?(python -m featevo \w+ .*)$", out, re.M):
        argv = shlex.split(cmd.split(" > ")[0])[3:]
        stage, fill = stage_of(argv)
        s = settings.parse(argv[argv.index("--settings") + 1], stage, **fill)  # the stage's own reading
        layered = settings.parse(cli.settings(cfg, stage, **fill), stage, **fill)
        assert s.to_dict() == layered.to_dict(), f"{stage}: not the layered config's settings"
        jobs.append((stage, fill, s))
    assert {stage for stage, _, _ in jobs} == set(cli.READS) - {"weights"}, "stages with no job in the dry run"
    # (the weights stage needs reference.source torchvision: tests/test_weights.py runs it through snakemake)
    for keys, value in _flat(SETTINGS):
        if keys[:2] == ("experiments", "mine"):
            continue  # an imported run: the checkpoints are its rule's (import_checkpoint) input
        readers = set()
        for stage, fill, s in jobs:
            kind = _covers(stage, fill, keys)
            if kind:
                got, found = cli.lookup(s.to_dict(), keys)
                want = value[:1] if kind == "first" else value
                assert found and got == want, f"{stage} {fill}: {'.'.join(keys)} is {got!r}, set {want!r}"
                readers.add(stage)
        assert readers, f"{'.'.join(keys)}: no stage reads it"
    stages = {stage: s for stage, _, s in jobs}
    # the derived values: the first seed trains the reference, the names label the images
    assert stages["train reference"].seeds == (3,)
    assert plan.names(stages["visualize"].data)[0] == "tree frog!"
    assert sum(stage == "train epoch" for stage, _, _ in jobs) == 2 * 4 + 2 * 2 + 2 * 1  # scratch: 4 epochs


def _covers(stage: str, fill: dict, keys: tuple) -> str | None:
    """Whether a job of ``stage`` reads the config key ``keys``: "whole", "first" (seeds[0]), or None."""
    kind = None
    for left_out, pick in cli.picks(stage, **fill):
        if isinstance(pick[-1], int) and keys == pick[:-1]:
            kind = "first"
        elif keys[:len(pick)] == pick:
            kind = None if left_out else "whole"
    return None if ".".join(keys) in cli.OPERATIONAL else kind


def test_settings_imports_nothing_heavy():
    """Every job imports featevo.config.settings: neither pandas, torch nor the data readers."""
    code = ("import sys, featevo.config.settings, featevo.config.reads, featevo.config.plan, featevo.preflight.checks; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(ROOT / "workflow")}).stdout.split()
    for heavy in ("pandas", "torch", "numpy", "featevo.data.imagenet", "featevo.data.standin", "snakemake", "jsonschema"):
        assert heavy not in loaded, heavy


@pytest.mark.parametrize("stage, unused", [
    ("train", ("pandas", "matplotlib", "PIL", "torchvision", "featevo.data.imagenet", "featevo.preflight.checks")),
    ("visualize", ("pandas", "matplotlib", "torchvision", "featevo.data.imagenet")),
    ("explain", ("pandas", "matplotlib", "featevo.data.imagenet")),
    ("metrics", ("torch", "matplotlib")),  # torch only with the judge; pyplot only for a figure
    ("claims", ("torch", "matplotlib", "PIL")),
    ("tables", ("torch", "matplotlib", "PIL")),
    ("extract", ("torch", "matplotlib")),
    ("standin", ("torch", "pandas", "matplotlib")),
])
def test_each_stage_imports_only_what_it_uses(stage, unused):
    """A job's start is its imports (docs/performance.md): a stage loads no module it does
    not use (imports inside the functions that need them)."""
    code = f"import sys, featevo.stages.{stage}; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(ROOT / "workflow")}).stdout.split()
    assert not [m for m in unused if m in loaded]


@pytest.mark.parametrize("configs", [("config.yaml",), ("config.yaml", "configs/paper.yaml")])
def test_a_stage_run_by_hand_gets_what_the_workflow_gives_it(tmp_path, configs):
    """docs/development.md: ``python -m featevo <stage> ... --settings @config.yaml``. For
    every stage, reading the config file gives the settings the workflow hands the job
    (every default of the schema, and the judge's sizes that the workflow fills in from
    the data, which the file leaves null)."""
    from featevo.preflight.checks import completed
    from featevo.stages import read_settings

    layers = [ROOT / c for c in configs]
    merged = load_config(*layers)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    workflow = with_defaults(load_config(*layers))
    workflow["judge"].update(judge_sizes(workflow))
    assert merged["judge"].get("images_per_class") is None  # the case the workflow fills in
    for stage in cli.READS:
        for exp in workflow["experiments"]:
            fill = {"exp": exp} if any("{exp}" in p for p in cli.READS[stage]) else {}
            by_hand = read_settings(f"@{tmp_path / 'run.yaml'}", stage, **fill).to_dict()
            job = settings.parse(cli.settings(workflow, stage, **fill), stage, **fill).to_dict()
            assert by_hand == job, f"{stage}: by hand {by_hand} != the workflow's {job}"
    assert completed(merged)["judge"]["images_per_class"] == workflow["judge"]["images_per_class"] is not None


def _read_names(files) -> set[str]:
    """What code reads by name: every attribute it takes and every whole string it holds
    (a subscript's key)."""
    read = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute):
                read.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                read.add(node.value)
    return read


def _hands(pick: str, dotted: str) -> bool:
    pick = pick.replace("{exp}", "<experiments>").split("[")[0]
    return dotted == pick or dotted.startswith(pick + ".") or (pick == "experiments" and dotted.startswith("<"))


# the workflow's own readers: the rules, and what they import at parse time
WORKFLOW_READS = _read_names(closure("featevo.preflight.checks") | closure("featevo.config.reads")) | set(
    re.findall(r"""["'](\w+)["']""", "".join(f.read_text() for f in (ROOT / "workflow" / "rules").glob("*.smk"))))


def unread(dotted: str, key: str) -> bool:
    """Whether nothing reads the setting ``dotted``: no stage that cli.READS hands it to
    names ``key`` anywhere in the code it runs (its command and the library it imports),
    and the workflow's rules and parse-time checks do not either."""
    stages = {s.split()[0] for s, picks in cli.READS.items()
              if any(_hands(p, dotted) for p in picks if not p.startswith("-"))
              and not any(_hands(p[1:], dotted) for p in picks if p.startswith("-"))}
    if any(key in _read_names(closure(f"featevo.stages.{s}")) for s in stages):
        return False
    return key not in WORKFLOW_READS


def test_every_schema_setting_is_read_somewhere():
    """No dead setting: each key of the schema is read, by name, by a stage it is handed to
    (in the code that stage runs) or by the workflow itself (its rules and parse-time checks)."""
    dead = [dotted for dotted, key in _leaves(SCHEMA) if unread(dotted, key)]
    assert not dead, f"settings in the schema that nothing reads: {dead}"


def test_the_read_check_can_fail():
    """The check above finds a setting read only by a stage it is not handed to: batch_size
    is read by training, not by the stand-in's job; a name nothing holds is read by none."""
    assert not unread("train.batch_size", "batch_size")
    assert unread("standin.batch_size", "batch_size")
    assert unread("visualize.no_such_key", "no_such_key")


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
    assert _enum("visualize", "objective") == list(objectives.OBJECTIVES)
    assert _enum("visualize", "init") == list(loop.INITS)
    assert _enum("visualize", "normalize") == list(optimizers.NORMALIZE)
    assert _enum("model", "init") == list(models.INITS)
    assert _enum("train", "augment") == list(train.AUGMENT) == _enum("reference", "augment")
    assert sorted(_enum("reference", "optimizer")) == sorted(train.OPTIMIZERS)
    assert sorted(_enum("reference", "schedule")) == sorted(train.SCHEDULES)
    assert sorted(_enum("reference", "classifier_init")) == sorted(train.CLASSIFIER_INITS)
    assert _enum("experiments", "freeze") == list(train.FREEZE)
    methods = [k for k, v in PROPS["methods"]["properties"].items() if "enabled" in v.get("properties", {})]
    assert methods == list(explain.METHODS)
    from featevo.preflight.checks import FEATURE_MODULES

    assert list(FEATURE_MODULES) == list(models.ARCHITECTURES)


def test_settings_json_round_trips_through_the_stage():
    text = cli.settings(schema_defaults(), "explain")
    window = settings.parse(text, "explain").methods.occlusion.window
    assert json.loads(text)["methods"]["occlusion"]["window"] == window


def test_the_config_reference_is_the_schema_s():
    """docs/config.md is generated from the schema (docs/config_reference.py), never by hand."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from config_reference import reference
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / "config.md").read_text() == reference(SCHEMA), \
        "docs/config.md is stale: run python docs/config_reference.py"

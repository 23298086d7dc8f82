import shutil

import pytest
import yaml

from featevo.preflight.checks import check_config
from snakemake_helpers import ROOT, snakemake


def demo_config():
    """config.yaml as the workflow sees it: over the schema's defaults."""
    from featevo.config.settings import load_config

    return load_config(ROOT / "config.yaml")


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def dry_run_with(workdir, override: dict):
    (workdir / "bad.yaml").write_text(yaml.safe_dump(override))
    return snakemake(workdir, "-n", configs=[workdir / "bad.yaml"], check=False)


@pytest.mark.parametrize("override, key", [
    ({"visualize": {"stepz": 10}}, "stepz"),
    ({"train": {"batch_size": "big"}}, "batch_size"),
    ({"visualize": {"objective": "max"}}, "objective"),
    ({"data": {"classes": [{"name": "frog", "wnid": "frog"}, {"name": "x", "wnid": "n01234567"}]}}, "wnid"),
    ({"data": {"source": "imagenet"}}, "data.imagenet"),
    ({"data": {"val_per_class": 400}}, "data.val_per_class"),
    ({"visualize": {"median_size": 4}}, "visualize.median_size"),
    ({"reference": {"visualize": {"steps": 2}}}, "visualize"),  # Fig. 3 has no recipe of its own
    ({"visualize": {"top_k": 500}}, "visualize.top_k"),
    ({"visualize": {"restarts": 0}}, "restarts"),
    ({"model": {"init": "he"}}, "init"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [1, 1]}, "seeds"),
    ({"experiments": {"frozen": {"freeze": "conv"}}}, "freeze"),
    ({"methods": {"inversion": {"layers": ["features.31"]}}}, "methods.inversion.layers"),
    ({"methods": {"inversion": {"layers": ["conv5_3"]}}}, "methods.inversion.layers"),
    ({"methods": {"images_per_class": 101}}, "methods.images_per_class"),
])
def test_bad_config_fails_before_any_job_naming_the_key(workdir, override, key):
    proc = dry_run_with(workdir, override)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert key in out, out[-2000:]
    assert not (workdir / "results").exists()


@pytest.mark.parametrize("override, message", [
    # YAML's .nan and .inf are numbers to JSON Schema
    ({"train": {"lr": float("inf")}}, "train.lr: inf is not a finite number; write a number"),
    ({"model": {"dropout": float("nan")}}, "model.dropout: nan is not a finite number; write a number"),
    # a pattern is said in words
    ({"visualize": {"units": ["layer4"]}}, "visualize.units[0]: 'layer4' is not what it takes: a module of the "
                                          "network and an index: layer:channel"),
    ({"reference": {"sha256": "abc"}}, "reference.sha256: 'abc' is not what it takes: a SHA-256 digest"),
    ({"visualize": {"units": ["features.28:3", "features.28:3"]}},
     "visualize.units: lists 'features.28:3' more than once; write each once"),
    # an experiment's figure would overwrite one of the workflow's own
    ({"experiments": {"frozen": {"figure": "learning_curves"}}},
     "experiments.frozen.figure: 'learning_curves' is the name of one of the workflow's own figures"),
    ({"experiments": {"frozen": {"figure": "metrics_scratch_seed0"}}}, "is the name of one of the workflow's own"),
    # the atlas's page is figures/atlas_<experiment>.html, with a log of the same name
    ({"experiments": {"frozen": {"figure": "atlas_scratch"}}}, "is the name of one of the workflow's own"),
    ({"experiments": {"frozen": {"table": "claims"}}},
     "experiments.frozen.table: 'claims' is the name of one of the workflow's own tables"),
    # a name a command line would read as a flag
    ({"experiments": {"-x": {"init": "random", "epochs": 1}}}, "(not first: a command line would read it as a flag)"),
    # the subset as one array, against this machine's memory, before the extraction allocates it
    ({"data": {"image_size": 100000}}, "data.image_size (100000): the subset's 1600 images would take"),
])
def test_numbers_patterns_duplicates_and_figure_names_are_refused_saying_what_to_write(workdir, override, message):
    proc = dry_run_with(workdir, override)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-2000:]


def test_every_schema_pattern_has_its_words():
    from featevo.config.settings import PATTERN_HELP, SCHEMA_FILE

    text = yaml.safe_load(SCHEMA_FILE.read_text())

    def patterns(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            for v in node.values():
                yield from patterns(v)
        elif isinstance(node, list):
            for v in node:
                yield from patterns(v)

    assert set(patterns(text)) == set(PATTERN_HELP)


def test_null_on_the_command_line_removes_an_experiment(workdir):
    proc = snakemake(workdir, "-n", "--config", "experiments={frozen: null}")
    assert "experiments.frozen" not in proc.stdout + proc.stderr
    assert "train/frozen/" not in proc.stdout and "train/scratch/" in proc.stdout


def test_demo_config_is_clean():
    assert check_config(demo_config()) == []


def test_semantic_checks():
    cfg = demo_config()
    cfg["reference"]["source"] = "torchvision"
    cfg["experiments"]["scratch"]["paper"] = {"epochs": [1, 2], "val_acc": [60]}
    cfg["experiments"]["pretrained"]["figure"] = "fig1"
    errors = "\n".join(check_config(cfg))
    assert "model.width_divisor 1" in errors
    assert "experiments.scratch.paper" in errors
    assert "experiments.pretrained.figure" in errors


def test_paper_config_dry_run_lists_the_paper_dag(tmp_path):
    """configs/paper.yaml: 23 + 20 + 20 epochs (scratch, pretrained, frozen), one seed, a
    visualization and the optional methods per checkpoint, figures and tables."""
    from snakemake_helpers import job_counts

    imagenet = tmp_path / "imagenet"
    for c in demo_config()["data"]["classes"]:  # listed at parse time: 1300 per synset
        (imagenet / c["wnid"]).mkdir(parents=True)
        for i in range(1300):
            (imagenet / c["wnid"] / f"{c['wnid']}_{i}.JPEG").touch()
    weights = tmp_path / "vgg16-397923af.pth"
    weights.write_bytes(b"a dry run reads no more than its size")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "-n", "--config", f"data={{imagenet: {imagenet}}}", f"reference={{weights: {weights}}}",
                     configs=[ROOT / "configs" / "paper.yaml"])
    counts = job_counts(proc.stdout)
    assert counts["train_epoch"] == 23 + 20 + 20
    assert counts["init_model"] == 3
    assert counts["visualize"] == counts["explain"] == 24 + 21 + 21
    assert counts["visualize_reference"] == 1 and counts["import_reference"] == 1
    assert counts["evolution_figure"] == 3 and counts["accuracy_table"] == 3
    assert counts["feature_metrics"] == counts["animation"] == 3 and counts["method_figure"] == 9
    assert "standin" not in counts and counts["extract_subset"] == 1


def test_missing_or_short_synsets_fail_at_parse_time(tmp_path):
    cfg = demo_config()
    cfg["data"].update(source="imagenet", imagenet=str(tmp_path), images_per_class=3, val_per_class=1)
    cfg["reference"]["source"] = "torchvision"
    cfg["model"].update(width_divisor=1, pool_size=7)
    wnids = [c["wnid"] for c in cfg["data"]["classes"]]
    for w in wnids[:3]:
        (tmp_path / w).mkdir()
        for i in range(3 if w != wnids[2] else 2):
            (tmp_path / w / f"{w}_{i}.JPEG").write_bytes(b"")
    errors = "\n".join(check_config(cfg))
    assert f"synset {wnids[3]} is not in" in errors
    assert f"data.images_per_class: synset {wnids[2]} has only 2 images" in errors
    assert wnids[0] not in errors and wnids[1] not in errors


def test_layer_counts_known_at_parse_time_match_the_models():
    from featevo.preflight.checks import CLASSIFIER_MODULES, FEATURE_MODULES
    from featevo.models.networks import ModelSpec, build_model

    for arch, n in FEATURE_MODULES.items():
        model = build_model(ModelSpec(arch=arch, width_divisor=64, pool_size=1))
        assert (len(model.features), len(model.classifier)) == (n, CLASSIFIER_MODULES), arch


def test_the_readme_s_nested_overrides_are_read_as_their_schema_types(workdir):
    """Snakemake passes nested --config values as strings ('false'); the schema's types apply."""
    proc = snakemake(workdir, "-n", "--config", "train={keep_checkpoints: false, threads: 2}",
                     "data={image_size: 40}", "gpu_wait=12.5", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_schema_error_is_named_at_once_in_a_few_lines(workdir):
    proc = dry_run_with(workdir, {"train": {"keep_checkpoints": "maybe", "batch_size": 0},
                                  "visualize": {"stepz": 3}})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # in words, saying what to write: no JSON-schema phrase ("is not of type", "Additional properties")
    for line in ("train.batch_size: 0 is out of range; write a value at least 1",
                 "train.keep_checkpoints: 'maybe' is not true or false; write true or false",
                 "visualize: 'stepz' is not a setting of this section; docs/config.md lists its keys"):
        assert line in out, out[-3000:]
    for phrase in ("is not of type", "Additional properties", "is less than the minimum", "was unexpected"):
        assert phrase not in out, phrase
    assert len(out[out.index("invalid configuration"):].splitlines()) < 12


def test_missing_or_empty_weights_are_named_at_parse_time(workdir, tmp_path):
    empty = tmp_path / "vgg16-397923af.pth"
    empty.touch()
    base = {"data": {"source": "standin"}, "model": {"width_divisor": 1, "pool_size": 7},
            "reference": {"source": "torchvision"}}
    for weights, says in ((str(tmp_path / "nowhere.pth"), "is not a file"), (str(empty), "is empty")):
        errors = "\n".join(check_config({**demo_config(), **{k: {**demo_config()[k], **v} for k, v in base.items()},
                                         "reference": {**demo_config()["reference"], "source": "torchvision",
                                                       "weights": weights}}))
        assert f"reference.weights: {weights} {says}" in errors


def test_two_classes_that_would_share_a_file_name_are_refused():
    cfg = demo_config()
    cfg["data"]["classes"][1]["name"] = "Tree-frog"
    errors = "\n".join(check_config(cfg))
    assert "give the same file name (tree_frog.png)" in errors


@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "../x", ""])
def test_a_run_name_that_would_leave_results_is_refused(name):
    """run_name names one folder under results/: never '.', '..', a hidden folder or a path."""
    from featevo.config.settings import SCHEMA_FILE, schema_errors

    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    cfg = {**demo_config(), "run_name": name}
    assert any(e.startswith("run_name:") for e in schema_errors(cfg, schema)), name
    assert not schema_errors({**demo_config(), "run_name": "my.run-2_b"}, schema)


def test_class_names_in_other_scripts_get_their_own_files_and_names_without_letters_are_refused():
    from featevo.config.plan import slug

    cfg = demo_config()
    for c, name in zip(cfg["data"]["classes"], ["雨蛙", "フラミンゴ", "гамбургер", "مسبح"]):
        c["name"] = name
    assert check_config(cfg) == []
    assert [slug(c["name"]) for c in cfg["data"]["classes"]] == ["雨蛙", "フラミンゴ", "гамбургер", "مسبح"]
    assert slug("../../etc/x") == "etc_x" and slug("a/b\\c.d") == "a_b_c_d"  # nothing leaves the folder
    cfg["data"]["classes"][0]["name"] = "?!"
    errors = "\n".join(check_config(cfg))
    assert "'?!'" in errors and "no letter or digit" in errors


def test_nested_overrides_under_experiments_are_read_as_their_schema_types():
    """--config "experiments={scratch: {epochs: 5}}" arrives as strings; experiments' entries are
    additionalProperties, whose schema applies as well as named properties'."""
    from featevo.config.settings import SCHEMA_FILE, coerce, schema_errors

    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    cfg = demo_config()
    cfg["experiments"]["scratch"] = {**cfg["experiments"]["scratch"], "epochs": "5",
                                     "paper": {"epochs": ["1"], "val_acc": ["60"]}}
    cfg["experiments"]["extra"] = {"init": "random", "epochs": "3", "freeze": "none"}
    fixed = coerce(cfg, schema, schema)
    assert fixed["experiments"]["scratch"]["epochs"] == 5 and fixed["experiments"]["extra"]["epochs"] == 3
    assert fixed["experiments"]["scratch"]["paper"]["val_acc"][0] == 60
    assert not schema_errors(fixed, schema)


def test_a_nested_experiments_override_works_through_snakemake(workdir):
    from snakemake_helpers import job_counts

    proc = snakemake(workdir, "-n", "--config", "experiments={scratch: {epochs: 5, init: random}}", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = job_counts(proc.stdout)
    assert counts["train_epoch"] == (5 + 6 + 6) * 2  # merged into config.yaml's: scratch 5, the others 6; two seeds
    assert proc.stdout.count("train/scratch/seed0/epoch_005.pt") and "scratch/seed0/epoch_006.pt" not in proc.stdout


def test_a_section_written_twice_in_one_file_is_named_with_its_line(workdir):
    """Snakemake's loader keeps the last of two equal keys: visualize.steps would have been lost."""
    (workdir / "twice.yaml").write_text("run_name: mine\nvisualize: {steps: 5}\nvisualize: {restarts: 3}\n")
    proc = snakemake(workdir, "-n", configs=[workdir / "twice.yaml"], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "twice.yaml:3: 'visualize' is written twice in one section (first at line 2)" \
        in out, out[-2000:]


@pytest.mark.parametrize("text, message", [
    ("- a\n- b\n", "the file is a list, not a mapping of settings"),
    ("", "the file is empty"),
    ("a: [\n", "bad.yaml:2: not valid YAML"),
    ("data:\n  seed: 1\n  seed: 2\n", "bad.yaml:3: 'seed' is written twice in one section"),
])
def test_config_file_problems_name_the_file_and_line(tmp_path, text, message):
    from featevo.config.settings import config_file_problems

    (tmp_path / "bad.yaml").write_text(text)
    problems = config_file_problems(tmp_path / "bad.yaml")
    assert len(problems) == 1 and message in problems[0], problems
    assert not config_file_problems(ROOT / "config.yaml", ROOT / "configs" / "paper.yaml")


def test_make_run_names_a_config_file_snakemake_cannot_read_before_snakemake_reads_it(tmp_path):
    """Snakemake's loader stops at an empty file, a list or bad YAML without naming the file or
    line ("Config file must be given as JSON or YAML with keys at top level"); `make run
    CONFIG=...` checks the files first, by name and line."""
    import subprocess
    import sys

    (tmp_path / "bad.yaml").write_text("data: {classes: [\n")
    (tmp_path / "list.yaml").write_text("- a\n")
    proc = subprocess.run([sys.executable, "-m", "featevo.config.settings", str(tmp_path / "bad.yaml"),
                           str(tmp_path / "list.yaml")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"error: {tmp_path / 'bad.yaml'}:2: not valid YAML" in proc.stderr, proc.stderr
    assert f"error: {tmp_path / 'list.yaml'}: the file is a list, not a mapping" in proc.stderr
    assert subprocess.run([sys.executable, "-m", "featevo.config.settings", str(ROOT / "config.yaml")]).returncode == 0
    for target in ("run", "report"):  # the check comes first, on the same files
        shown = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"CONFIG={tmp_path / 'bad.yaml'}"],
                               capture_output=True, text=True).stdout.splitlines()
        commands = [line for line in shown if "featevo.config.settings" in line or "snakemake" in line]
        assert "-m featevo.config.settings " + str(tmp_path / "bad.yaml") in commands[0], shown
        assert "snakemake" in commands[1], shown


def test_a_user_config_without_run_name_does_not_take_the_demo_s_folder(workdir):
    (workdir / "mine.yaml").write_text("data: {image_size: 48}\n")
    proc = snakemake(workdir, "-n", configs=[workdir / "mine.yaml"], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "set no run_name, so this run would write into the demo's folder " \
        "(results/demo/) though it changes data.image_size; add run_name:" in out, out[-2000:]
    (workdir / "mine.yaml").write_text("run_name: mine\ndata: {image_size: 48}\n")
    assert snakemake(workdir, "-n", configs=[workdir / "mine.yaml"], check=False).returncode == 0
    # a config that changes nothing a run computes may keep the demo's name
    (workdir / "mine.yaml").write_text("visualize: {steps: 10}\n")
    assert snakemake(workdir, "-n", configs=[workdir / "mine.yaml"], check=False).returncode == 0


def test_a_run_folder_holding_another_run_is_never_overwritten(tmp_path, monkeypatch):
    """results/<run_name>/run.json, written when a run starts, says what it computed: a
    config that computes other things under that name stops at parse time."""
    import json

    from featevo.preflight.checks import run_problems, write_run_identity

    monkeypatch.chdir(tmp_path)
    cfg = demo_config()
    assert run_problems(cfg, [], None) == []  # nothing there yet
    write_run_identity(cfg)
    stored = json.loads((tmp_path / "results" / "demo" / "run.json").read_text())
    assert stored["model"]["width_divisor"] == 8 and stored["experiments"]["frozen"] == {
        "init": "reference", "freeze": "features", "labels": "given"}
    assert run_problems(cfg, [], None) == []  # the same run: continued, not refused
    more = {**cfg, "experiments": {**cfg["experiments"], "scratch": {**cfg["experiments"]["scratch"], "epochs": 30}}}
    assert run_problems(more, [], None) == []  # more epochs continue the run
    moved = {**cfg, "data": {**cfg["data"], "imagenet": "/elsewhere"}}
    assert run_problems(moved, [], None) == []  # where the data lie is not what the run computes
    other = {**cfg, "model": {**cfg["model"], "arch": "vgg11"}}
    (err,) = run_problems(other, [], None)
    assert "results/demo/ holds a run made with other settings (model.arch)" in err and "run_name" in err
    write_run_identity(other)  # written once: the first run's identity stays
    assert json.loads((tmp_path / "results" / "demo" / "run.json").read_text()) == stored


def test_a_run_file_that_is_a_link_or_not_json_is_named_not_trusted(tmp_path, monkeypatch):
    from featevo.preflight.checks import run_problems

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "results" / "demo"
    run.mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_text("{}")
    (run / "run.json").symlink_to(tmp_path / "elsewhere.json")
    (err,) = run_problems(demo_config(), [], None)
    assert err.startswith("run_name: results/demo/run.json cannot be opened")
    (run / "run.json").unlink()
    (run / "run.json").write_text("not json")
    (err,) = run_problems(demo_config(), [], None)
    assert "is not the JSON the workflow writes" in err


def test_a_run_made_before_a_setting_existed_is_still_the_same_run():
    from featevo.config.plan import identity_differences, run_identity

    now = run_identity(demo_config())
    older = {**now, "model": {k: v for k, v in now["model"].items() if k != "init"},
             "experiments": {n: {k: v for k, v in e.items() if k != "labels"} for n, e in now["experiments"].items()}}
    assert identity_differences(older, now) == []
    changed = {**now, "experiments": {**now["experiments"], "scratch": {**now["experiments"]["scratch"],
                                                                        "labels": "shuffled"}}}
    assert identity_differences(now, changed) == ["experiments.scratch"]
    assert identity_differences(now, {**now, "experiments": {}}) == []  # experiments left out


def test_a_run_folder_that_is_a_link_is_not_written_into(tmp_path, monkeypatch):
    from featevo.preflight.checks import write_run_identity

    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "demo").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="results/demo is a link; the run's folder must be a folder of your own"):
        write_run_identity(demo_config())
    assert not (tmp_path / "elsewhere" / "run.json").exists()


def test_a_choice_between_forms_is_said_in_words():
    """JSON Schema's oneOf says "is valid under each of ..." or "not valid under any of the
    given schemas": the user reads what to write instead."""
    from featevo.config.settings import load_config, schema, schema_errors, with_defaults

    cfg = with_defaults(load_config(ROOT / "config.yaml"))
    cfg["experiments"]["scratch"]["checkpoints"] = "runs/x_{epoch}.pt"
    cfg["visualize"]["transforms"] = "jitter"
    errors = schema_errors(cfg, schema())
    assert "experiments.scratch: an experiment is trained here (init: random or reference) or is your own run's " \
           "checkpoints (checkpoints: a path with {epoch}); it sets both: keep one" in errors
    assert any(e.startswith("visualize.transforms: 'jitter' is not a set of transforms: write lucent") for e in errors)
    del cfg["experiments"]["scratch"]["init"]
    del cfg["experiments"]["scratch"]["checkpoints"]
    assert any(e.endswith("set one of them") for e in schema_errors(cfg, schema()))
    assert not any("valid under" in e for e in errors)

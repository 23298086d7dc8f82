# Configuration checks, paths and helpers shared by every stage.
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate, min_version

min_version("9.0")

# The package the rules call lives beside the rules; jobs find it (and the
# interpreter that runs Snakemake) without an install step.
# (A conda environment, with --sdm conda, comes first on the job's PATH.)
_PKG = str(Path(workflow.basedir) / "workflow")
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (_PKG, os.environ.get("PYTHONPATH")) if p),
    PATH=os.pathsep.join(
        (str(Path(sys.executable).parent), os.environ.get("PATH", ""))
    ),
)
sys.path.insert(0, _PKG)

from featevo.config import plan, reads  # noqa: E402
from featevo.jobs import watch  # noqa: E402
from featevo.jobs.files import file_fingerprint, torch_file_problem  # noqa: E402
from featevo.preflight.checks import (  # noqa: E402
    check_config,
    judge_sizes,
    imported_file,
    run_problems,
    write_run_identity,
)
from featevo.config.settings import (  # noqa: E402
    coerce,
    config_file_problems,
    schema,
    schema_errors,
    shared_device,
    with_defaults,
)

# what Snakemake's loader passes over silently: a section written twice in one file
_errors = config_file_problems(*workflow.configfiles)
if _errors:
    raise ValueError("invalid configuration file:\n  - " + "\n  - ".join(_errors))
# --config values arrive as strings where nested; the schema says what they are.
# Every schema error is named at once, before Snakemake's validate fills in the defaults.
_SCHEMA = schema()
config.update(coerce(dict(config), _SCHEMA, _SCHEMA))
# an experiment set to null in a later config file is left out (config files layer);
# on the command line (--config "experiments={frozen: null}") Snakemake hands the
# nested null over as the string "null"
_NULLS = ("null", "Null", "NULL", "~", "")
if isinstance(config.get("experiments"), dict):
    config["experiments"] = {
        k: v
        for k, v in config["experiments"].items()
        if v is not None and not (isinstance(v, str) and v.strip() in _NULLS)
    }
_errors = schema_errors(config, _SCHEMA)
if _errors:
    raise ValueError("invalid configuration:\n  - " + "\n  - ".join(_errors))
validate(config, "../schemas/config.schema.yaml")
# Snakemake's validate leaves out the defaults of settings defined under $defs (device,
# precision, threads, augment): every default the schema holds, under the config's values
config.update(with_defaults(shared_device(config)))
# the tars' members are listed by the Snakemake that plans the run, not by every job
_errors = check_config(config, deep=workflow.is_main_process)
if _errors:
    raise ValueError("invalid configuration:\n  - " + "\n  - ".join(_errors))
# a run never overwrites another's files: results/<run_name>/run.json says what it computed
_DEMO = Path("config.yaml")
_errors = run_problems(
    config,
    workflow.configfiles,
    _DEMO if any(Path(f) == _DEMO for f in workflow.configfiles) else None,
)
if _errors:
    raise ValueError("invalid configuration:\n  - " + "\n  - ".join(_errors))
# the judge's sizes, where null, follow the data (featevo.preflight.checks.judge_sizes):
# every job reads numbers
if config["judge"]["source"] == "train":
    config["judge"].update(judge_sizes(config))

ENV = "../../envs/featevo.yaml"
RUN = f"results/{config['run_name']}"
# Every file of a run, declared once: the rules' outputs are these patterns, and the
# input functions fill them in (path()), so that the layout is one table.
PATHS = {
    "standin": f"{RUN}/standin/{{pool}}",
    "images": f"{RUN}/data/{{subset}}/{{split}}_images.npy",
    "labels": f"{RUN}/data/{{subset}}/{{split}}_labels.npy",
    "manifest": f"{RUN}/data/{{subset}}/manifest.csv",
    "network": f"{RUN}/{{net}}/model.pt",  # the reference, and the judge
    "network_metrics": f"{RUN}/{{net}}/model.json",
    "checkpoint": f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_{{epoch}}.pt",
    "optimizer": f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_{{epoch}}.optim.pt",
    "epoch_metrics": f"{RUN}/train/{{exp}}/seed{{seed}}/epoch_{{epoch}}.json",
    "history": f"{RUN}/train/{{exp}}/seed{{seed}}/history.csv",
    "composite": f"{RUN}/viz/{{exp}}/seed{{seed}}/epoch_{{epoch}}/composite.png",
    "classes": f"{RUN}/viz/{{exp}}/seed{{seed}}/epoch_{{epoch}}/classes.npz",
    "represent": f"{RUN}/viz/{{exp}}/seed{{seed}}/epoch_{{epoch}}/represent.npz",
    "units_png": f"{RUN}/viz/{{exp}}/seed{{seed}}/epoch_{{epoch}}/units.png",
    "units": f"{RUN}/viz/{{exp}}/seed{{seed}}/epoch_{{epoch}}/units.npz",
    "reference_composite": f"{RUN}/viz/reference/composite.png",
    "reference_classes": f"{RUN}/viz/reference/classes.npz",
    "explained": f"{RUN}/explain/{{exp}}/epoch_{{epoch}}.npz",
    "feature_metrics": f"{RUN}/metrics/{{exp}}_seed{{seed}}.csv",
    "layer_metrics": f"{RUN}/metrics/cka_{{exp}}.csv",
    "settled": f"{RUN}/metrics/layers_{{exp}}.csv",
    "reference_metrics": f"{RUN}/metrics/reference.csv",
    "restart_metrics": f"{RUN}/metrics/{{exp}}_seed{{seed}}_restarts.csv",
    "reference_restarts": f"{RUN}/metrics/reference_restarts.csv",
    "judge_floor": f"{RUN}/metrics/judge.csv",
    "controls": f"{RUN}/metrics/controls.csv",
    "cues": f"{RUN}/data/cue_conflict.npz",
    "atlas_npz": f"{RUN}/atlas/{{exp}}/epoch_{{epoch}}.npz",
    # the sanity check: each experiment's last epoch re-initialized from the top (featevo.measures.sanity)
    "sanity_checkpoint": f"{RUN}/sanity/{{exp}}/{{level}}.pt",
    "sanity_composite": f"{RUN}/viz/sanity/{{exp}}/{{level}}/composite.png",
    "sanity_classes": f"{RUN}/viz/sanity/{{exp}}/{{level}}/classes.npz",
    "sanity_represent": f"{RUN}/viz/sanity/{{exp}}/{{level}}/represent.npz",
    "sanity_metrics": f"{RUN}/metrics/sanity.csv",
    "sanity_layers": f"{RUN}/metrics/sanity_layers.csv",
    "figure": f"{RUN}/figures/{{name}}.{{ext}}",
    "table": f"{RUN}/tables/{{table}}.{{ext}}",
    "log": f"{RUN}/logs/{{name}}.log",
    "benchmark": f"{RUN}/benchmarks/{{name}}.tsv",
}


def path(key, /, **wildcards):
    """PATHS[key] with the given wildcards filled in (an epoch number as three
    digits) and the others left as wildcards, for a rule's output or an input."""

    def value(m):
        key = m.group(1)
        if key not in wildcards:
            return m.group(0)
        v = wildcards[key]
        return f"{int(v):03d}" if key == "epoch" else str(v)

    return re.sub(r"{(\w+)}", value, PATHS[key])


# each class's id through the workflow: its wnid, or its sub-folder of data.path
# the sanity check's levels (sanity.levels), in the registry's order
SANITY_LEVELS = [l for l in plan.SANITY_LEVELS if l in config["sanity"]["levels"]]
WNIDS = plan.class_ids(config["data"])
EXPERIMENTS = config["experiments"]
# experiments whose checkpoints come from the user's own training run; the others train here
IMPORTED = [exp for exp, spec in EXPERIMENTS.items() if "checkpoints" in spec]
TRAINED = [exp for exp in EXPERIMENTS if exp not in IMPORTED]
# a rule's exp wildcard: one of them ("(?!)" matches nothing)
TRAINED_EXP = "|".join(TRAINED) or "(?!)"
IMPORTED_EXP = "|".join(IMPORTED) or "(?!)"
SEEDS = config["seeds"]
FIRST_SEED = SEEDS[0]  # the seed the figures show
METHODS_CFG = config["methods"]
# the optional methods, in the schema's order: its sections under methods with `enabled`
# (each one entry of featevo.measures.explain.METHODS)
ALL_METHODS = [
    name
    for name, node in _SCHEMA["properties"]["methods"]["properties"].items()
    if "enabled" in node.get("properties", {})
]
METHODS = [m for m in ALL_METHODS if METHODS_CFG[m]["enabled"]]
STANDIN = config["data"]["source"] == "standin"
FOLDER = config["data"]["source"] == "folder"  # your own classes under data.path
# the atlas (atlas.*): the experiment it shows, at every atlas.every-th epoch and the last
# (null: the first that trains, else the first: a run of one's own alone is shown too)
ATLAS_EXP = config["atlas"]["experiment"] or (TRAINED + IMPORTED + [None])[0]
ATLAS = config["atlas"]["enabled"] and ATLAS_EXP is not None


def atlas_epochs():
    """Every `atlas.every`-th epoch of the experiment's own (an imported run may start at 1), and the last."""
    return every_and_last(ATLAS_EXP, config["atlas"]["every"])


# the stand-in's cue-conflict images, read by every checkpoint (controls.cue_conflict)
CUES = STANDIN and config["controls"]["cue_conflict"] > 0
# Fig. 3 needs a reference network, and with ImageNet weights each class's unit
FIG3_MISSING = plan.fig3_missing(config)
if FIG3_MISSING and workflow.is_main_process:
    print(f"Fig. 3 is left out: {FIG3_MISSING}", file=sys.stderr)
KEEP_CHECKPOINTS = config["train"]["keep_checkpoints"]
# portable GPU request of the rules that can use one (SLURM and workstation profiles)
TRAIN_GPUS = 0 if config["train"]["device"] == "cpu" else 1
VIZ_GPUS = 0 if config["visualize"]["device"] == "cpu" else 1


# Snakemake's job groups, which only a cluster executor uses (a local run ignores them): each
# experiment and seed's epochs, cluster.epochs_per_submission at a time, with the jobs that read
# those checkpoints (visualizations, inner units, the atlas, the methods) go to the cluster as one
# submission, run in order inside it: a paper epoch's jobs take seconds on a GPU (docs/performance.md),
# against a queue's wait per submission (docs/operations.md)
def run_group(wildcards):
    seed = getattr(wildcards, "seed", FIRST_SEED)
    part = (
        int(getattr(wildcards, "epoch", 0))
        // config["cluster"]["epochs_per_submission"]
    )
    return f"{wildcards.exp}-seed{seed}-part{part}"


TRAIN_PRIORITY = 10 if KEEP_CHECKPOINTS else 0
# Settings of how jobs run, not of what they compute, reach the jobs through the
# environment, so that changing them reruns nothing: how long a job waits for a
# GPU, and the mark by which a job sees that this Snakemake is gone
# (featevo.jobs.watch.watch_snakemake).
os.environ.update(
    {
        "FEATEVO_GPU_WAIT": str(config["gpu_wait"]),
        watch.SNAKEMAKE_ENV: watch.this_process(),
    }
)


def settings_of(stage, **fill):
    """A rule's --settings: the parts of the config that featevo.config.reads.READS[stage] names,
    which the stage reads back (every setting reaches its stage this way; flags carry
    paths, wildcards and threads only).  ``fill``: the wildcards those parts name, each a
    function of the job's (exp=lambda w: w.exp).  A function itself, so that Snakemake
    reads no wildcard in the JSON (a checkpoints pattern's {epoch})."""
    return lambda w: reads.settings(config, stage, **{k: f(w) for k, f in fill.items()})


def stage(name):
    """The command that runs featevo.<name> as a job: a plain process that stops when
    this Snakemake is gone (featevo/__main__.py)."""
    return f"python -m featevo {name}"


def checkpoint_output(path):
    """With train.keep_checkpoints false, a checkpoint is deleted once its
    visualization and the next epoch have used it (Snakemake's temp())."""
    return path if KEEP_CHECKPOINTS else temp(path)


def optimizer_output(path):
    """An epoch's optimizer state: kept with train.keep_optimizer_state (so any
    epoch can be rerun at once), else deleted once the next epoch has used it;
    a rerun that needs a deleted state rebuilds it from the epochs before
    (Snakemake's temp()), so every rerun equals an uninterrupted run."""
    return (
        path
        if KEEP_CHECKPOINTS and config["train"]["keep_optimizer_state"]
        else temp(path)
    )


def optimizer_file(exp, epoch, seed):
    return path("optimizer", exp=exp, epoch=epoch, seed=seed)


def intact(path):
    """path, after checking that an existing checkpoint or optimizer state is whole
    (featevo.jobs.files.torch_file_problem), so that a damaged file is named
    before Snakemake deletes the valid outputs that depend on it."""
    problem = torch_file_problem(path)
    if problem:
        raise ValueError(
            f"{path} is damaged ({problem}). Nothing was changed. Delete it and rerun:"
            " Snakemake rebuilds it from the epoch before (and that epoch's optimizer"
            " state), equal to the first run"
        )
    return path


def epoch_inputs(wildcards):
    """Epoch e needs the checkpoint of e-1 and, from e = 2 on, its optimizer state."""
    previous = int(wildcards.epoch) - 1
    inputs = {
        "previous": intact(checkpoint_file(wildcards.exp, previous, wildcards.seed))
    }
    if previous > 0:
        inputs["previous_optim"] = intact(
            optimizer_file(wildcards.exp, previous, wildcards.seed)
        )
    return inputs


def logfile(name):
    return path("log", name=name)


def benchmark_file(name):
    """Snakemake's benchmark of a job (wall time, memory, I/O): benchmarks/<name>.tsv."""
    return path("benchmark", name=name)


def checkpoint_file(exp, epoch, seed):
    return path("checkpoint", exp=exp, epoch=epoch, seed=seed)


def metrics(exp, epoch, seed):
    return path("epoch_metrics", exp=exp, epoch=epoch, seed=seed)


def history(exp, seed):
    return path("history", exp=exp, seed=seed)


def composite(exp, epoch, seed):
    return path("composite", exp=exp, epoch=epoch, seed=seed)


def classes_npz(exp, epoch, seed):
    return path("classes", exp=exp, epoch=epoch, seed=seed)


def viz_inputs(wildcards):
    """A checkpoint, the validation split (each class unit's top images, and the fixed
    images its layers are read on) and, after the first epoch, the epoch before's
    checkpoint (each layer's weight change)."""
    e = int(wildcards.epoch)
    inputs = {
        "ckpt": intact(checkpoint_file(wildcards.exp, e, wildcards.seed)),
        "val": path("images", subset="main", split="val"),
        # visualize.maco.spectrum images: the run's training images (visualize.smk)
        "spectrum": SPECTRUM_IMAGES,
    }
    if CUES:
        inputs["cues"] = PATHS["cues"]
    if e > epochs(wildcards.exp)[0]:
        inputs["previous"] = intact(
            checkpoint_file(wildcards.exp, e - 1, wildcards.seed)
        )
    return inputs


def represent_npz(exp, epoch, seed):
    return path("represent", exp=exp, epoch=epoch, seed=seed)


def sanity_inputs(kind):
    """Per experiment: the trained last epoch's file (first seed), then each level's."""
    trained = "classes" if kind == "classes" else "represent"
    return [
        f
        for exp in EXPERIMENTS
        for f in [
            path(trained, exp=exp, epoch=epochs(exp)[-1], seed=FIRST_SEED),
            *[path(f"sanity_{kind}", exp=exp, level=level) for level in SANITY_LEVELS],
        ]
    ]


def explained(exp, epoch):
    return path("explained", exp=exp, epoch=epoch)


def explain_epochs(exp):
    """Every `methods.every`-th epoch of the experiment's own, and the last."""
    return every_and_last(exp, METHODS_CFG["every"])


def every_and_last(exp, every):
    """Every `every`-th of the experiment's epochs from its first (an imported run without an
    epoch 0 starts at 1), and the last."""
    own = epochs(exp)
    return sorted(set(own[::every]) | {own[-1]})


def epochs(exp):
    """Epochs 0 to the last (an imported experiment: from 1 when it has no epoch 0)."""
    first = 0
    if exp in IMPORTED and not imported_file(EXPERIMENTS[exp], 0).is_file():
        first = 1
    return range(first, EXPERIMENTS[exp]["epochs"] + 1)


def seeds_of(exp):
    """The seeds an experiment runs: every seed, or the one run of an imported experiment."""
    return plan.seeds_of(config, exp)


# Your ImageNet (or folder of classes) reaches the extraction through the environment,
# and its identity through a parameter (featevo.data.imagenet.fingerprint): a moved or copied
# ImageNet, or a restored path, reruns nothing; changed data reruns the extraction.
DATA_PATH = config["data"]["path"] if FOLDER else config["data"]["imagenet"]
LAYOUT = "folder" if FOLDER else config["data"]["layout"]
if not STANDIN:
    from featevo.data.imagenet import fingerprint  # noqa: E402

    os.environ.update(FEATEVO_IMAGENET=os.path.abspath(DATA_PATH))
    IMAGENET_ID = fingerprint(Path(DATA_PATH), LAYOUT, WNIDS)
    OWN_VAL = config["data"]["validation"] == "ilsvrc_val"
    if OWN_VAL:  # ILSVRC2012's validation images, by the same rule: what, not where
        os.environ.update(
            FEATEVO_IMAGENET_VAL=os.path.abspath(config["data"]["imagenet_val"]),
            FEATEVO_IMAGENET_VAL_LABELS=os.path.abspath(
                config["data"]["imagenet_val_labels"]
            ),
        )
        IMAGENET_ID += " val " + " ".join(
            fingerprint(Path(config["data"][key]), "flat", [])
            for key in ("imagenet_val", "imagenet_val_labels")
        )


# Your own training run, by the same rule: its checkpoints' pattern reaches the import
# jobs through the environment, and what each file holds through a parameter
# (featevo.jobs.files.file_fingerprint); a run folder copied or moved, and
# `checkpoints:` pointed at it, reruns nothing; a changed file reruns its epoch.
def imported_env(exp):
    """The environment variable that carries an imported experiment's pattern to its jobs."""
    return f"FEATEVO_CHECKPOINTS_{exp.encode().hex()}"


os.environ.update(
    {imported_env(exp): EXPERIMENTS[exp]["checkpoints"] for exp in IMPORTED}
)


def imported_content(wildcards):
    """A param: what the imported checkpoint of this epoch holds, not where it lies."""
    return file_fingerprint(
        imported_file(EXPERIMENTS[wildcards.exp], int(wildcards.epoch))
    )


def extract_inputs(wildcards):
    """The stand-in's folder of the subset; with your own folder of classes, the judge
    also takes the main subset's manifest, whose images it never takes."""
    inputs = {}
    if STANDIN:
        inputs["standin"] = path("standin", pool=wildcards.subset)
    elif FOLDER and wildcards.subset == "judge":
        inputs["exclude"] = path("manifest", subset="main")
    return inputs


JUDGE_TRAINED = config["judge"]["source"] == "train"


def judge_model():
    """The fixed network of the metrics: the judge trained here, or the reference."""
    return path("network", net="judge" if JUDGE_TRAINED else "reference")


def final_targets():
    out = []
    for exp, spec in EXPERIMENTS.items():
        if "figure" in spec:
            out += expand(path("figure", name=spec["figure"]), ext=["png", "pdf"])
        if "table" in spec:
            out += expand(path("table", table=spec["table"]), ext=["csv", "md", "tex"])
    out += expand(
        PATHS["figure"],
        name=["learning_curves"] + ([] if FIG3_MISSING else ["fig3"]),
        ext=["png", "pdf"],
    )
    out += [
        path("feature_metrics", exp=exp, seed=seed)
        for exp in EXPERIMENTS
        for seed in seeds_of(exp)
    ]
    out += expand(path("table", table="claims"), ext=["csv", "md"])
    out += [path("layer_metrics", exp=exp) for exp in EXPERIMENTS]
    out += [PATHS["sanity_metrics"], PATHS["sanity_layers"]]
    if ATLAS:
        out += [path("figure", name=f"atlas_{ATLAS_EXP}", ext="html")]
    out += expand(PATHS["figure"], name=["sanity"], ext=["png", "pdf"])
    out += expand(
        PATHS["figure"], name=[f"cka_{exp}" for exp in EXPERIMENTS], ext=["png", "pdf"]
    )
    out += expand(
        PATHS["figure"], name=[f"top_{exp}" for exp in EXPERIMENTS], ext=["png", "pdf"]
    )
    out += expand(
        PATHS["figure"],
        name=[
            f"{kind}_{exp}_seed{seed}"
            for kind in ("metrics", "confusion")
            for exp in EXPERIMENTS
            for seed in seeds_of(exp)
        ],
        ext=["png", "pdf"],
    )
    out += expand(
        PATHS["figure"],
        name=[f"evolution_{exp}" for exp in EXPERIMENTS],
        ext=["gif", "html"],
    )
    out += expand(
        PATHS["figure"],
        name=[f"{method}_{exp}" for method in METHODS for exp in EXPERIMENTS],
        ext=["png", "pdf"],
    )
    if config["visualize"][
        "units"
    ]:  # visualize.units: inner units, a figure per experiment
        out += expand(
            PATHS["figure"],
            name=[f"units_{exp}" for exp in EXPERIMENTS],
            ext=["png", "pdf"],
        )
    # every checkpoint is a product too: a deleted one is rebuilt, with what depends on it
    if KEEP_CHECKPOINTS:
        out += [
            checkpoint_file(exp, e, seed)
            for exp in TRAINED
            for seed in SEEDS
            for e in epochs(exp)
        ]
    return out


def experiment_of(kind, name):
    """The experiment whose `figure` (or `table`) is called name."""
    for exp, spec in EXPERIMENTS.items():
        if spec.get(kind) == name:
            return exp
    raise ValueError(f"no experiment has {kind}: {name}")


def init_inputs(wildcards):
    """Epoch 0 needs the validation split (its manifest names the classes), and the
    reference for `init: reference`."""
    inputs = {
        "val": path("images", subset="main", split="val"),
        "manifest": path("manifest", subset="main"),
    }
    if EXPERIMENTS[wildcards.exp]["init"] == "reference":
        inputs["reference"] = path("network", net="reference")
    return inputs


def folder_of(name):
    """A param: the folder of one named input (not a hard-coded path prefix)."""
    return lambda wildcards, input: os.path.dirname(input[name])


def flag_folder(flag, name):
    """A param: ``flag`` and the folder of one named input, or nothing where it is empty."""
    return lambda wildcards, input: (
        f"{flag} {os.path.dirname(input[name])}" if input[name] else ""
    )

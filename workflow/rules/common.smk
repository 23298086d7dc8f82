# Configuration checks, paths and helpers shared by every stage.
import os
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

from featevo import METHODS as ALL_METHODS, cli, runtime  # noqa: E402
import yaml  # noqa: E402

from featevo.config_checks import (  # noqa: E402
    check_config,
    coerce,
    schema_errors,
    torch_file_problem,
)

# --config values arrive as strings where nested; the schema says what they are.
# Every schema error is named at once, before Snakemake's validate fills in the defaults.
_SCHEMA = yaml.safe_load(
    (Path(workflow.basedir) / "workflow/schemas/config.schema.yaml").read_text()
)
config.update(coerce(dict(config), _SCHEMA, _SCHEMA))
_errors = schema_errors(config, _SCHEMA)
if _errors:
    raise ValueError("invalid configuration:\n  - " + "\n  - ".join(_errors))
validate(config, "../schemas/config.schema.yaml")
_errors = check_config(config)
if _errors:
    raise ValueError("invalid configuration:\n  - " + "\n  - ".join(_errors))

ENV = "../../envs/featevo.yaml"
RUN = f"results/{config['run_name']}"
CLASSES = config["data"]["classes"]
WNIDS = [c["wnid"] for c in CLASSES]
NAMES = [c["name"] for c in CLASSES]
EXPERIMENTS = config["experiments"]
SEEDS = config["seeds"]
FIRST_SEED = SEEDS[0]  # the seed the figures show
METHODS_CFG = config["methods"]
METHODS = [m for m in ALL_METHODS if METHODS_CFG[m]["enabled"]]
STANDIN = config["data"]["source"] == "standin"
KEEP_CHECKPOINTS = config["train"]["keep_checkpoints"]
# portable GPU request of the rules that can use one (SLURM and workstation profiles)
TRAIN_GPUS = 0 if config["train"]["device"] == "cpu" else 1
VIZ_GPUS = 0 if config["visualize"]["device"] == "cpu" else 1
TRAIN_PRIORITY = 10 if KEEP_CHECKPOINTS else 0
# Settings of how jobs run, not of what they compute, reach the jobs through the
# environment, so that changing them reruns nothing: `preload` (every job forked
# from a warm server that has torch imported, featevo.preload), and the mark by
# which a job sees that this Snakemake is gone (featevo.runtime.watch_snakemake).
os.environ.update(
    {
        "FEATEVO_PRELOAD": "1" if config["preload"] else "0",
        "FEATEVO_GPU_WAIT": str(config["gpu_wait"]),
        runtime.SNAKEMAKE_ENV: runtime.this_process(),
    }
)


def stage(name):
    """The command that runs featevo.<name>, through featevo.preload's launcher
    (in the job's own process, or forked from the warm server with `preload`)."""
    return f"python -m featevo.preload featevo.{name}"


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
    return f"{RUN}/train/{exp}/seed{seed}/epoch_{int(epoch):03d}.optim.pt"


def intact(path):
    """path, after checking that an existing checkpoint or optimizer state is whole
    (featevo.config_checks.torch_file_problem), so that a damaged file is named
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
    return f"{RUN}/logs/{name}.log"


def benchmark_file(name):
    """Snakemake's benchmark of a job (wall time, memory, I/O): benchmarks/<name>.tsv.
    With `preload`, memory and CPU are the launcher's; the wall time is the job's."""
    return f"{RUN}/benchmarks/{name}.tsv"


def checkpoint_file(exp, epoch, seed):
    return f"{RUN}/train/{exp}/seed{seed}/epoch_{int(epoch):03d}.pt"


def metrics(exp, epoch, seed):
    return f"{RUN}/train/{exp}/seed{seed}/epoch_{int(epoch):03d}.json"


def history(exp, seed):
    return f"{RUN}/train/{exp}/seed{seed}/history.csv"


def viz_dir(exp, seed):
    """One experiment's and seed's visualizations: epoch_NNN/ below it."""
    return f"{RUN}/viz/{exp}/seed{seed}"


def composite(exp, epoch, seed):
    return f"{viz_dir(exp, seed)}/epoch_{int(epoch):03d}/composite.png"


def explained(exp, epoch):
    return f"{RUN}/explain/{exp}/epoch_{int(epoch):03d}.npz"


def explain_epochs(exp):
    """Every `methods.every`-th epoch from 0, and the last."""
    last = EXPERIMENTS[exp]["epochs"]
    return sorted(set(range(0, last + 1, METHODS_CFG["every"])) | {last})


def epochs(exp):
    return range(EXPERIMENTS[exp]["epochs"] + 1)


def reference_wnids():
    return WNIDS + [
        w for w in config.get("standin", {}).get("extra_wnids", []) if w not in WNIDS
    ]


def reference_units():
    """Output unit of each class in the reference network (Fig. 3)."""
    if config["reference"]["source"] == "torchvision":
        return [c["imagenet_index"] for c in CLASSES]
    return [reference_wnids().index(w) for w in WNIDS]


def subset_spec(subset):
    d = config["data"]
    if subset == "main":
        return WNIDS, d["images_per_class"], d["val_per_class"]
    r = config["reference"]
    if subset == "judge":
        return WNIDS, config["judge"]["images_per_class"], r["val_per_class"]
    return reference_wnids(), r["images_per_class"], r["val_per_class"]


STANDIN_CFG = config.get("standin", {})


def imagenet_input(subset):
    return f"{RUN}/standin/{subset}" if STANDIN else config["data"]["imagenet"]


def standin_count(pool):
    if pool == "main":
        return STANDIN_CFG.get("images_per_class", config["data"]["images_per_class"])
    if pool == "judge":
        return config["judge"]["images_per_class"]
    return config["reference"]["images_per_class"]


JUDGE_TRAINED = config["judge"]["source"] == "train"


def judge_model():
    """The fixed network of the metrics: the judge trained here, or the reference."""
    return f"{RUN}/judge/model.pt" if JUDGE_TRAINED else f"{RUN}/reference/model.pt"


def judge_units():
    """Output unit of each class in the judge (its own four, or the reference's)."""
    return list(range(len(WNIDS))) if JUDGE_TRAINED else reference_units()


def final_targets():
    out = []
    for exp, spec in EXPERIMENTS.items():
        if "figure" in spec:
            out += expand(f"{RUN}/figures/{spec['figure']}.{{ext}}", ext=["png", "pdf"])
        if "table" in spec:
            out += expand(
                f"{RUN}/tables/{spec['table']}.{{ext}}", ext=["csv", "md", "tex"]
            )
    out += expand(
        f"{RUN}/figures/{{name}}.{{ext}}",
        name=["fig3", "learning_curves"],
        ext=["png", "pdf"],
    )
    out += expand(
        f"{RUN}/metrics/{{exp}}_seed{{seed}}.csv", exp=EXPERIMENTS, seed=SEEDS
    )
    out += expand(
        f"{RUN}/figures/{{kind}}_{{exp}}_seed{{seed}}.{{ext}}",
        kind=["metrics", "confusion"],
        exp=EXPERIMENTS,
        seed=SEEDS,
        ext=["png", "pdf"],
    )
    out += expand(
        f"{RUN}/figures/evolution_{{exp}}.{{ext}}", exp=EXPERIMENTS, ext=["gif", "html"]
    )
    out += expand(
        f"{RUN}/figures/{{method}}_{{exp}}.{{ext}}",
        method=METHODS,
        exp=EXPERIMENTS,
        ext=["png", "pdf"],
    )
    # every checkpoint is a product too: a deleted one is rebuilt, with what depends on it
    if KEEP_CHECKPOINTS:
        out += [
            checkpoint_file(exp, e, seed)
            for exp in EXPERIMENTS
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


def paper_args(exp):
    paper = EXPERIMENTS[exp].get("paper")
    if not paper:
        return ""
    return "--paper-epochs {} --paper-acc {}".format(
        " ".join(map(str, paper["epochs"])), " ".join(map(str, paper["val_acc"]))
    )


def init_inputs(wildcards):
    """Epoch 0 needs the validation split, and the reference for `init: reference`."""
    inputs = {"val": f"{RUN}/data/main/val_images.npy"}
    if EXPERIMENTS[wildcards.exp]["init"] == "reference":
        inputs["reference"] = f"{RUN}/reference/model.pt"
    return inputs


def folder_of(name):
    """A param: the folder of one named input (not a hard-coded path prefix)."""
    return lambda wildcards, input: os.path.dirname(input[name])

import os
import sys
from pathlib import Path

import pytest

from featevo import cli, visualize
from featevo.config_checks import schema_defaults

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
# snakemake's jobs call `python`: make it this interpreter
os.environ["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))


# The slow tier (`make test-all`, CI): whole modules that run the paper's config at full
# size, kill and rerun DAGs, start a real SLURM or Chromium, play a second user, or
# benchmark; `make test` (-m "not slow") leaves them out.  Single slow tests are marked
# @pytest.mark.slow where they stand.
SLOW_MODULES = {"test_paper_full", "test_faults", "test_slurm", "test_report", "test_shared_machine", "test_bench"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


def write_subset(folder: Path, n_train: int, n_val: int) -> Path:
    """A tiny extracted subset (as featevo.extract writes it): 3 classes told apart by colour."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir()
    for split, n in (("train", n_train), ("val", n_val)):
        labels = np.arange(n) % 3
        imgs = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
        imgs[np.arange(n), :, :, labels] += 150
        np.save(folder / f"{split}_images.npy", imgs)
        np.save(folder / f"{split}_labels.npy", labels.astype(np.int64))
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole DAG at toy size (tests/configs/tiny.yaml), run once per session:
    (workdir, run folder, the snakemake process)."""
    import shutil

    from snakemake_helpers import snakemake

    workdir = tmp_path_factory.mktemp("tiny")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    proc = snakemake(workdir, configs=[ROOT / "tests" / "configs" / "tiny.yaml"])
    return workdir, workdir / "results" / "tiny", proc


from featevo.fake import save_as_torchvision  # noqa: E402,F401  (the tests' name for it)


# the schema holds every setting's default; library calls in the tests take them from it
DEFAULTS = schema_defaults()


def viz_settings(**overrides) -> dict:
    """activation_maximization's settings: the schema's defaults on the CPU in fp32, then overrides."""
    v = DEFAULTS["visualize"]
    return {**{k: v[k] for k in visualize.SETTINGS}, "device": "cpu", "precision": "fp32", **overrides}


def extract_settings(**overrides) -> dict:
    """extract's settings: the schema's defaults of data.seed, layout, resize and skip_unreadable, then overrides."""
    d = DEFAULTS["data"]
    return {k: d[k] for k in ("seed", "layout", "resize", "skip_unreadable")} | overrides


def method_settings(**overrides) -> dict:
    """explain's settings: the schema's defaults of methods.occlusion and methods.inversion, then overrides."""
    m = DEFAULTS["methods"]
    inv = m["inversion"]
    return {"window": m["occlusion"]["window"], "stride": m["occlusion"]["stride"], "layers": tuple(inv["layers"]),
            "steps": inv["steps"], "lr": inv["lr"], "tv_weight": inv["tv_weight"], **overrides}


def train_args(command: str) -> list[str]:
    """featevo.train's settings for ``command`` (init, epoch, reference) as the rules pass
    them (featevo.cli, from the schema's defaults), on the CPU in fp32; a test appends its own after."""
    args = ["--seed", "0", "--device", "cpu", "--precision", "fp32"]
    if command in ("init", "reference"):
        args += cli.model(DEFAULTS).split()
    if command == "epoch":
        args += [*cli.epoch(DEFAULTS).split(), "--augment", DEFAULTS["train"]["augment"], "--freeze", "none"]
    if command == "reference":
        args += cli.reference(DEFAULTS).split()
    return args

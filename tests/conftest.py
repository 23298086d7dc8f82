import os
import sys
from pathlib import Path

import pytest

import json

from featevo.config.settings import Settings, schema_defaults

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


def pytest_addoption(parser):
    # `make test-cpus` runs the suite with 2 and with portable kernels, so that a test whose
    # outcome turns on float rounding fails here before it fails on another CPU in CI
    parser.addoption("--torch-threads", type=int, default=1,
                     help="torch's intra-op threads in every test (default 1)")


@pytest.fixture(autouse=True)
def _torch_threads(request):
    import torch

    torch.set_num_threads(request.config.getoption("--torch-threads"))
    yield


def tiny_model(classes: int = 4, seed: int = 0):
    """featevo's VGG-16 at a sixteenth of its widths, untrained, in eval mode."""
    from featevo.models.networks import ModelSpec, build_model

    return build_model(ModelSpec(num_classes=classes, width_divisor=16, pool_size=1), seed=seed).eval()


def quadrant_model(classes: int = 4, size: int = 32, gain: float = 4.0):
    """A network whose weights the test sets: class k's logit is ``gain`` times the mean
    of quadrant k (row-major) after ImageNet's normalization, for k < 4; no bias.

    Its logits are linear in the pixels and each class reads its own quadrant alone, so
    under projected ascent with a step that keeps each pixel gradient's sign (the RMS
    step, then clipping to [0, 1]) every step brightens the own quadrant and darkens or
    keeps the others: the own logit cannot fall and no other can rise, so logit, margin,
    log-softmax and softmax cannot fall either, on any CPU and at any thread count (a
    tiny VGG trained in the tests for it turned on the CPU's rounding: on an AMD EPYC one
    class's margin fell).
    """
    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, classes))
    h = size // 2
    with torch.no_grad():
        w = torch.zeros(classes, 3, size, size)
        for k in range(min(classes, 4)):
            r, c = divmod(k, 2)
            w[k, :, r * h:(r + 1) * h, c * h:(c + 1) * h] = gain / (3 * h * h)
        model[1].weight.copy_(w.flatten(1))
        model[1].bias.zero_()
    return model.eval()


def write_subset(folder: Path, n_train: int, n_val: int, classes=("n1", "n2", "n3")) -> Path:
    """A tiny extracted subset (as featevo.data.imagenet writes it): 3 classes told apart by colour,
    its manifest naming them (the networks' classes, in label order)."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir()
    for split, n in (("train", n_train), ("val", n_val)):
        labels = np.arange(n) % 3
        imgs = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
        imgs[np.arange(n), :, :, labels] += 150
        np.save(folder / f"{split}_images.npy", imgs)
        np.save(folder / f"{split}_labels.npy", labels.astype(np.int64))
    (folder / "manifest.csv").write_text("split,label,wnid,member\n" + "".join(
        f"train,{k},{c},{c}_1.JPEG\n" for k, c in enumerate(classes)))
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole DAG at toy size (tests/configs/tiny.yaml), run once per session:
    (workdir, run folder, the snakemake process)."""
    import shutil

    from snakemake_helpers import snakemake

    workdir = tmp_path_factory.mktemp("tiny")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    proc = snakemake(workdir, configs=TINY_RUN)
    return workdir, workdir / "results" / "tiny", proc


# the session's whole toy DAG: tiny.yaml, and the atlas and the cue-conflict set beside it
TINY_RUN = [ROOT / "tests" / "configs" / "tiny.yaml", ROOT / "tests" / "configs" / "tiny-full.yaml"]


sys.path.insert(0, str(ROOT / "benchmarks"))  # the fake ImageNet and weights (fake_imagenet), and bench
from fake_imagenet import save_as_torchvision  # noqa: E402,F401  (the tests' name for it)


# the schema holds every setting's default; library calls in the tests take them from it
DEFAULTS = schema_defaults()


def viz_settings(image_size: int = 32, device: str = "cpu", **overrides) -> dict:
    """activation_maximization's arguments: the schema's ``visualize`` defaults in fp32 with
    ``overrides`` as its recipe, then the image size and the device."""
    return {"recipe": {**DEFAULTS["visualize"], "precision": "fp32", **overrides}, "image_size": image_size,
            "device": device}


def extract_settings(**overrides) -> dict:
    """extract's settings: the schema's defaults of data.seed, layout, resize and skip_unreadable, then overrides."""
    d = DEFAULTS["data"]
    return {k: d[k] for k in ("seed", "layout", "resize", "skip_unreadable")} | overrides


def method_settings(**overrides) -> Settings:
    """explain's settings: the schema's ``methods`` section, then overrides of its keys
    (``saliency={"enabled": True}``), as the stage reads it."""
    m = DEFAULTS["methods"]
    return Settings({**m, **{k: {**m[k], **v} if isinstance(v, dict) else v for k, v in overrides.items()}},
                    "methods")


def train_settings(**sections) -> str:
    """featevo.models.train's ``--settings``: the schema's defaults (what a stage reads when a
    section is left out) on the CPU in fp32, then each section's given keys."""
    cfg = {"train": {"device": "cpu", "precision": "fp32"}}
    for name, keys in sections.items():
        cfg[name] = {**cfg.get(name, {}), **keys} if isinstance(keys, dict) else keys
    return json.dumps(cfg)


# ---- the package's import graph (test_layers, and test_settings' read check) ----

PKG = ROOT / "workflow" / "featevo"


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(module: str) -> Path | None:
    base = PKG.parent / module.replace(".", "/")
    return next((f for f in (base.with_suffix(".py"), base / "__init__.py") if f.is_file()), None)


def imports(path: Path) -> set[str]:
    """Every featevo module a file imports, at its top or inside a function."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("featevo"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if module_file(sub) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("featevo")}
    return found


def closure(module: str) -> set[Path]:
    """The files of ``module`` and of every featevo module it imports, transitively."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        f = module_file(todo.pop())
        if f and f not in seen:
            seen.add(f)
            todo += imports(f)
    return seen

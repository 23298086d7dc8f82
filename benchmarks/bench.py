"""Speed benchmarks, each measured side by side in one run on one machine.

1. visualization: our batched activation maximization, a naive per-class loop
   with a CPU median filter (the paper-era approach), and torch-lucent's
   ``render_vis``: milliseconds per class image per step; and our Fourier
   images against ``render_vis`` on the same work (a network trained here for
   a few epochs, its class units, size, steps, Lucent's transforms and Adam):
   images per second and the images' scores (the judge's, another network
   trained here; benchmarks/recipes.py's R, p, H and S), side by side;
2. training: our per-epoch path (subset in memory) against torchvision's
   ``ImageFolder`` + ``DataLoader`` decoding the JPEGs every epoch: images/s;
3. the model's achieved FLOP/s against a large matrix product;
4. the per-epoch job's fixed cost (process start, loading, saving) as a
   fraction of the epoch, for the demo and for full-size VGG-16;
5. the demo DAG's wall time.

Prints one table and writes it, with the machine described, to
``<out>/bench.md`` and ``<out>/bench.json``.  ``make bench`` runs it in an
environment of its own (torch-lucent needs an old kornia).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from featevo.models import checkpoint as ck
from featevo.config import reads as cli
from featevo.config.settings import load_config
from featevo.jobs.device import autocast, pick_device
from featevo.models.networks import ModelSpec, build_model, evaluated
from featevo.data.inputs import MEAN, STD, Subset, imagenet_normalize, to_uint8
from featevo.models.train import make_optimizer, train_one_epoch
from featevo.optvis.objectives import objective_values
from featevo.optvis.render import activation_maximization, initial_images

ROOT = Path(__file__).resolve().parents[1]
# the settings measured are the workflow's own: the demo's config.yaml, and the paper's
# configs/paper.yaml layered on it, read as Snakemake reads them
DEMO = load_config(ROOT / "config.yaml")
PAPER = load_config(ROOT / "config.yaml", ROOT / "configs" / "paper.yaml")
DEMO_WNIDS = [c["wnid"] for c in DEMO["data"]["classes"]]
# the targets: (row key, smallest ratio that meets it)
CPU_TARGETS = {"viz_vs_lucent": 3.0, "fourier_vs_lucent": 3.0, "train_vs_imagefolder": 1.5}
FIXED_COST_TARGET = 0.15  # of a demo epoch
GPU_TARGETS = {"viz_paper_seconds": 10.0, "train_flops_fraction": 0.40}


def model_spec(cfg: dict) -> ModelSpec:
    """The network a config trains (``model.*``, one output per class)."""
    m = cfg["model"]
    return ModelSpec(arch=m["arch"], num_classes=len(cfg["data"]["classes"]), width_divisor=m["width_divisor"],
                     pool_size=m["pool_size"], dropout=m["dropout"])


def viz_settings(cfg: dict, device, precision: str, **changes) -> dict:
    """activation_maximization's arguments as the workflow's visualize rule passes them."""
    # one image per class: the naive loop and Lucent draw one each (restarts multiply all alike)
    recipe = {**cfg["visualize"], "restarts": 1, "precision": precision, **changes}
    return {"recipe": recipe, "image_size": cfg["data"]["image_size"], "device": device}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int = 1, warmup: bool = True) -> float:
    """Best wall time of ``repeat`` calls, after one warm-up call (seconds)."""
    if warmup:
        fn()
        sync(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


# ---- 1. visualization --------------------------------------------------------------


def naive_visualization(model, units, image_size: int, steps: int, viz: dict, device):
    """One class at a time, weights' gradients computed too, and the median
    filter on the host with SciPy: how a notebook of the paper's era does it.
    Same start, objective and steps as activation_maximization."""
    from scipy.ndimage import median_filter as scipy_median

    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    out = []
    step_size, median_every, median_size = viz["step_size"], viz["median_every"], viz["median_size"]
    start = initial_images(len(units), image_size, viz["init"], viz["init_std"], viz["seed"])
    for k, unit in enumerate(units):
        x = start[k:k + 1].to(device)
        for step in range(1, steps + 1):
            x.requires_grad_(True)
            model.zero_grad()
            loss = objective_values(model(imagenet_normalize(x)), torch.tensor([unit], device=device),
                                    viz["objective"])[0]
            loss.backward()
            with torch.no_grad():
                g = x.grad
                x = (x + step_size * g / (g.pow(2).mean().sqrt() + 1e-12)).clamp(0, 1)
            if median_every and step % median_every == 0:
                host = scipy_median(x.cpu().numpy(), size=(1, 1, median_size, median_size), mode="mirror")
                x = torch.from_numpy(host).to(device)
        out.append(x.detach())
    return torch.cat(out)


def lucent_visualization(model, units, image_size, steps, device, freeze: bool, seed: int | None = None):
    """torch-lucent's render_vis with its defaults (Fourier-space image, Adam,
    jitter/scale/rotate), the batch holding one image per class, no upsampling.

    As its README uses it, the model is put in eval mode and nothing else, so
    every step also computes the weights' gradients; ``freeze`` turns those off
    by hand (render_vis does not)."""
    from lucent.optvis import objectives, param, render

    if seed is not None:  # Lucent draws its start from torch's global generator, its transforms from NumPy's
        torch.manual_seed(seed)
        np.random.seed(seed)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(not freeze)
    layer = "classifier_6"
    objective = sum((objectives.channel(layer, u, batch=i) for i, u in enumerate(units)),
                    start=objectives.channel(layer, units[0], batch=0) * 0)
    with torch.device(device):  # lucent builds its parameters on the current default device
        return render.render_vis(model, objective, param_f=lambda: param.image(image_size, batch=len(units)),
                                 thresholds=(steps,), show_image=False, progress=False,
                                 fixed_image_size=image_size)


def bench_visualization(spec: ModelSpec, image_size: int, steps: int, viz: dict, device, precision,
                        lucent: bool, log, rounds: int = 3) -> dict:
    model = build_model(spec, seed=0)
    units = list(range(spec.num_classes))
    n = len(units) * steps
    runs = {"ours": lambda: activation_maximization(
        model, units, **viz_settings({"data": {"image_size": image_size}, "visualize": viz}, device, precision,
                                     steps=steps)),
        "naive": lambda: naive_visualization(build_model(spec, seed=0), units, image_size, steps, viz, device)}
    if lucent:
        runs["lucent"] = lambda: lucent_visualization(build_model(spec, seed=0), units, image_size, steps, device,
                                                      freeze=False)
        runs["lucent_frozen"] = lambda: lucent_visualization(build_model(spec, seed=0), units, image_size, steps,
                                                             device, freeze=True)
    # interleaved rounds, best of each: a noisy machine slows all of them alike
    best = {k: float("inf") for k in runs}
    for k, fn in runs.items():
        fn()  # warm-up
    for _ in range(rounds):
        for k, fn in runs.items():
            best[k] = min(best[k], timed(fn, device, repeat=1, warmup=False))
    res = {f"{k}_ms": 1000 * v / n for k, v in best.items()}
    log("[bench] visualization, ms per class image per step: "
        + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
    return res


def bench_atlas(spec: ModelSpec, image_size: int, steps: int, viz: dict, device, precision, channels: int, log,
                rounds: int = 3) -> dict:
    """The atlas's rendering (featevo.measures.atlas): ``channels`` channels of the last
    convolution rendered in one batch, against the same channels one call each (the same
    recipe: Fourier images, one restart; the starts differ, as each call draws its own)."""
    from featevo.measures.atlas import atlas_layers
    from featevo.optvis.objectives import InnerUnit

    model = build_model(spec, seed=0)
    layer = atlas_layers(model, spec, image_size, None)[-1]
    units = [InnerUnit(layer, c) for c in range(channels)]
    recipe = viz_settings({"data": {"image_size": image_size}, "visualize": viz}, device, precision, steps=steps,
                          parameterization="fourier", median_every=0, restarts=1)
    runs = {"batched": lambda: activation_maximization(model, units, **recipe),
            "one_at_a_time": lambda: [activation_maximization(model, [u], **recipe) for u in units]}
    best = {k: float("inf") for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(rounds):
        for k, fn in runs.items():
            best[k] = min(best[k], timed(fn, device, repeat=1, warmup=False))
    res = {"layer": layer, "channels": channels, "steps": steps,
           **{f"{k}_channels_s": channels / v for k, v in best.items()}}
    log(f"[bench] atlas, {channels} channels of {layer}: batched {res['batched_channels_s']:.1f} channels/s, "
        f"one at a time {res['one_at_a_time_channels_s']:.1f}")
    return res


# the Fourier recipe measured against Lucent's render_vis: its defaults (Fourier image with
# decorrelated colours, Adam 0.05, its standard transforms), the class logit as objective
FOURIER = {"parameterization": "fourier", "optimizer": "adam", "step_size": 0.05, "transforms": "lucent",
           "median_every": 0, "objective": "logit", "restarts": 1}


def trained_networks(subset: Path, epochs: int, device, precision, log) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The demo's network and its judge's architecture (config.yaml), each trained here for
    ``epochs`` on the bench's stand-in subset, with another seed each, in the recipe the
    demo trains its reference and judge with (``reference.*``: it learns in a few epochs,
    Adadelta's does not): a network whose class units draw something, and a network apart
    that reads the images."""
    from dataclasses import replace

    from featevo.models.networks import kaiming_classifier

    data = Subset(subset, "train")
    r, t = DEMO["reference"], DEMO["train"]
    spec, j = replace(model_spec(DEMO), dropout=r["dropout"]), DEMO["judge"]
    judge_spec = replace(spec, arch=j["arch"], width_divisor=j["width_divisor"] or spec.width_divisor,
                         pool_size=j["pool_size"] or spec.pool_size)
    out = []
    for s, seed in ((spec, 0), (judge_spec, 1)):
        model = build_model(s, seed=seed)
        if r["classifier_init"] == "kaiming":
            kaiming_classifier(model, seed)
        model.to(device, memory_format=torch.channels_last)
        opt = make_optimizer(model, r["lr"], t["rho"], t["eps"], r["optimizer"])
        sched = None
        if r["schedule"] == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], pct_start=r["warmup"],
                                                        total_steps=epochs * -(-len(data) // r["batch_size"]))
        for epoch in range(1, epochs + 1):
            train_one_epoch(model, opt, data, epoch=epoch, seed=seed, batch_size=r["batch_size"], device=device,
                            precision=precision, augment=r["augment"], log=lambda m: None, scheduler=sched)
        out.append(model.eval().cpu())
    from featevo.models.train import evaluate

    val = Subset(subset, "val")
    acc = [evaluate(m, val, torch.device("cpu"), "fp32")["acc"] for m in out]
    log(f"[bench] trained the demo network and a {judge_spec.arch} judge for {epochs} epochs on the bench's "
        f"subset: validation accuracy {acc[0]:.3f} and {acc[1]:.3f}")
    return out[0], out[1]


def bench_fourier(model, judge, subset: Path, image_size: int, steps: int, per_class: int, device, precision,
                  lucent: bool, log, rounds: int = 5) -> dict:
    """Our Fourier images against Lucent's ``render_vis`` on the same work: ``per_class``
    images of each class unit in one batch, same steps and transforms, timed
    interleaved (best of ``rounds``, after a warm-up); each run starts from another seed,
    and every run's images (the warm-up's too) are scored.  Beside them, timed alike:
    ``network``, the network's own forward and backward of as many images for as many
    steps and nothing else (what any implementation of this work pays: the ceiling of
    the ratio), and on the CPU ``ours_bf16``, ours with ``visualize.precision: bf16``
    (other arithmetic, so apart from the verdict; Lucent's render_vis cannot run under
    autocast: it converts its bf16 image to NumPy)."""
    from recipes import image_scores
    from featevo.measures import scores

    n_classes = len(DEMO_WNIDS)
    units = list(range(n_classes)) * per_class
    val = Subset(subset, "val")
    real = {"images": val.images, "labels": val.labels, "features": scores.penultimate(judge, val.images)[0]}
    recipe = {**DEMO["visualize"], **FOURIER, "restarts": per_class, "steps": steps, "precision": precision}

    def ours(seed, precision=precision):
        return activation_maximization(model, list(range(n_classes)), {**recipe, "seed": seed, "precision": precision},
                                       image_size=image_size, device=device)["images"]

    def lucent_run(seed, freeze):
        out = lucent_visualization(copy.deepcopy(model), units, image_size, steps, device, freeze=freeze, seed=seed)
        return torch.from_numpy(np.asarray(out[-1])).permute(0, 3, 1, 2)

    target = torch.tensor(units, device=device)

    def network(seed):
        with evaluated(model, device, torch.channels_last):
            gen = torch.Generator().manual_seed(seed)
            x = torch.rand(len(units), 3, image_size, image_size, generator=gen).to(device)
            x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
            for _ in range(steps):
                torch.autograd.grad(model(imagenet_normalize(x)).gather(1, target[:, None]).sum(), x)
        return None

    runs = {"ours": ours, "network": network}
    if device.type == "cpu":
        runs["ours_bf16"] = lambda seed: ours(seed, "bf16")
    if lucent:
        runs["lucent"] = lambda seed: lucent_run(seed, False)
        runs["lucent_frozen"] = lambda seed: lucent_run(seed, True)
    best = {k: float("inf") for k in runs}
    images = {k: [] for k in runs}
    for i in range(rounds + 1):  # interleaved; the first round warms up
        for k, fn in runs.items():
            start = time.perf_counter()
            images[k].append(fn(i))
            sync(device)
            if i:
                best[k] = min(best[k], time.perf_counter() - start)
    res = {"images": len(units), "scored": len(units) * (rounds + 1), "steps": steps, "rounds": rounds}
    classes = np.tile(np.asarray(units), rounds + 1)
    for k in runs:
        res[f"{k}_img_s"] = len(units) / best[k]
        if k != "network":
            res[f"{k}_scores"] = image_scores(to_uint8(torch.cat(images[k]).float().cpu()), classes, judge,
                                              list(range(n_classes)), real)
    res["real_scores"] = image_scores(val.images, val.labels, judge, list(range(n_classes)), real)
    log("[bench] Fourier images, images/s: " + ", ".join(f"{k} {res[f'{k}_img_s']:.2f}" for k in runs))
    return res


# ---- 2. training ------------------------------------------------------------------


def write_jpegs(root: Path, per_class: int, size: int, log) -> None:
    from featevo.data.standin import write_standin

    std = DEMO["standin"]
    write_standin(root, DEMO_WNIDS, per_class, size, seed=std["seed"], clutter=std["clutter"],
                  processes=os.cpu_count() or 1, log=log)


def imagefolder_epoch(model, root: Path, image_size: int, batch_size: int, workers: int, device, precision) -> float:
    """One epoch the torchvision way: JPEGs decoded and resized by a DataLoader."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor(),
                             transforms.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), tf), batch_size=batch_size,
                                         shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=False)
    model.train()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-8)
    seen = 0
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, precision):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    sync(device)
    return seen / (time.perf_counter() - start)


def make_subset(jpegs: Path, out: Path, size: int, per_class: int, val_per_class: int) -> float:
    """The workflow's one-off extraction of the JPEGs into arrays in ``out``; its seconds."""
    from featevo.data.imagenet import extract

    start = time.perf_counter()
    d = DEMO["data"]
    extract(jpegs, out, DEMO_WNIDS, per_class=per_class, val_per_class=val_per_class, size=size, seed=d["seed"],
            layout=d["layout"], resize=d["resize"], skip_unreadable=d["skip_unreadable"],
            threads=os.cpu_count() or 1, log=lambda m: None)
    return time.perf_counter() - start


def bench_training(spec: ModelSpec, image_size: int, subset: Path, jpegs: Path, batch_size: int, work: Path,
                   device, precision, log) -> dict:
    res = {}
    data = Subset(subset, "train")
    res["images"] = len(data)

    def ours():
        model = build_model(spec, seed=0).to(device, memory_format=torch.channels_last)
        opt = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
        stats = train_one_epoch(model, opt, data, epoch=1, seed=0, batch_size=batch_size, device=device,
                                precision=precision, augment="none", log=lambda m: None)
        return len(data) / stats["train_seconds"]

    ours()  # warm-up
    res["ours_img_s"] = max(ours() for _ in range(2))
    log(f"[bench] training, ours: {res['ours_img_s']:.0f} img/s")
    # the ImageFolder baseline gets its best worker count
    flat = work / "imagefolder"  # ImageFolder wants class folders holding only the training images
    for w in DEMO_WNIDS:
        (flat / w).mkdir(parents=True, exist_ok=True)
    for w, member in train_members(subset):
        shutil.copy(jpegs / w / member, flat / w / member)
    for workers in sorted({0, min(2, os.cpu_count() or 1)}):
        rate = max(imagefolder_epoch(build_model(spec, seed=0).to(device), flat, image_size, batch_size, workers,
                                     device, precision) for _ in range(2))
        res[f"imagefolder_w{workers}_img_s"] = rate
        log(f"[bench] training, ImageFolder with {workers} workers: {rate:.0f} img/s")
    res["imagefolder_img_s"] = max(v for k, v in res.items() if k.startswith("imagefolder_w"))
    return res


def train_members(subset: Path) -> list[tuple[str, str]]:
    """(wnid, file name) of every training image, from the extraction's manifest."""
    import pandas as pd

    table = pd.read_csv(subset / "manifest.csv")
    train = table[table["split"] == "train"]
    return list(zip(train["wnid"], train["member"]))


# ---- 3. FLOP/s ----------------------------------------------------------------------


def step_flops(spec: ModelSpec, image_size: int, batch: int, train: bool) -> float:
    """FLOPs of one forward+backward of a batch, counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(spec, seed=0)
    x = torch.zeros(batch, 3, image_size, image_size, requires_grad=not train)
    if not train:
        for p in model.parameters():
            p.requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return float(counter.get_total_flops())


def matmul_peak(device, dtype: torch.dtype, n: int) -> float:
    """FLOP/s of an n x n matrix product: the machine's practical limit."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 3 if device.type == "cpu" else 50

    def run():
        for _ in range(reps):
            a @ b

    return 2 * n**3 * reps / timed(run, device, repeat=3)


# ---- 4. per-epoch fixed cost --------------------------------------------------------


def epoch_job(subset: Path, spec: ModelSpec, work: Path, device: str, threads: int, batch_size: int) -> dict:
    """Runs ``featevo.models.train epoch`` as the workflow does (a plain process) and splits its wall time."""
    prev = work / "epoch_000.pt"
    ck.save_checkpoint(prev, build_model(spec, seed=0), spec, epoch=0, classes=DEMO_WNIDS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "workflow"), os.environ.get("PYTHONPATH", "")])}
    # the rules' command
    cfg = {"train": {**DEMO["train"], "device": device, "batch_size": batch_size},
           "experiments": {"bench": {"epochs": 1, "init": "random", "freeze": "none"}}}
    cmd = [sys.executable, "-m", "featevo", "train", "epoch", "--experiment", "bench", "--data", str(subset),
           "--previous", str(prev), "--out", str(work / "epoch_001.pt"), "--optim-out",
           str(work / "epoch_001.optim.pt"), "--metrics", str(work / "epoch_001.json"), "--seed", "0",
           "--settings", cli.settings(cfg, "train epoch", exp="bench"), "--threads", str(threads)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - start
    m = json.loads((work / "epoch_001.json").read_text())
    work_s = m["train_seconds"] + m["eval_seconds"]
    return {"wall_s": wall, "work_s": work_s, "fixed_s": wall - work_s, "load_s": m["load_seconds"],
            "save_s": m["save_seconds"], "fixed_fraction": (wall - work_s) / wall}


def full_size_fixed_cost(image_size: int, device, precision, train_images: int, work: Path, log) -> dict:
    """Full VGG-16: the job's fixed cost measured (start, load, save of 528 MiB and
    its optimizer state); the epoch's work from the measured training rate."""
    spec = ModelSpec(num_classes=4)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import featevo.models.train"], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")})
    process_s = time.perf_counter() - start
    model = build_model(spec, seed=0)
    path = work / "full.pt"
    opt = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
    batch = 8 if device.type == "cpu" else 64
    x = torch.randn(batch, 3, image_size, image_size)
    y = torch.zeros(batch, dtype=torch.long)
    model.to(device, memory_format=torch.channels_last)

    def step():
        with autocast(device, precision):
            out = model(x.to(device).contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(out.float(), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step_s = timed(step, device, repeat=2 if device.type == "cpu" else 10)
    start = time.perf_counter()
    ck.atomic_save(opt.state_dict(), path.with_suffix(".optim.pt"))
    ck.save_checkpoint(path, model, spec, epoch=1, classes=DEMO_WNIDS)
    save_s = time.perf_counter() - start
    start = time.perf_counter()
    loaded, _ = ck.load_model(path)
    loaded.to(device)
    torch.load(path.with_suffix(".optim.pt"), map_location=device, weights_only=True)
    sync(device)
    load_s = time.perf_counter() - start
    epoch_s = train_images / (batch / step_s)
    fixed = process_s + load_s + save_s
    log(f"[bench] full-size VGG-16: {batch / step_s:.1f} img/s, fixed {fixed:.1f} s per epoch job")
    return {"img_s": batch / step_s, "process_s": process_s, "load_s": load_s, "save_s": save_s,
            "fixed_s": fixed, "epoch_work_s": epoch_s, "fixed_fraction": fixed / (fixed + epoch_s)}


# ---- 5. the demo DAG ----------------------------------------------------------------


def demo_dag_seconds(work: Path, cores: int, log) -> float:
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "-s", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config.yaml"),
           "--directory", str(work), "--cores", str(cores), "--quiet", "progress"]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    log(f"[bench] the demo DAG with {cores} cores (about 6 min on 2 cores)")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the demo DAG failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


# ---- the table ----------------------------------------------------------------------


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "NOT met"


def rows(r: dict, device: torch.device) -> list[tuple[str, str, str, str]]:
    """(measure, value, ratio, target) rows of the table."""
    out = []
    if "visualization" in r:
        v = r["visualization"]
        out.append((f"visualization, ours ({r['viz_shape']})", f"{v['ours_ms']:.2f} ms/class image/step", "1.00",
                    ""))
        out.append(("visualization, naive per-class loop + SciPy median", f"{v['naive_ms']:.2f} ms",
                    f"ours {v['naive_ms'] / v['ours_ms']:.2f}x faster", ""))
    if "lucent_ms" in r.get("visualization", {}):
        ratio = v["lucent_ms"] / v["ours_ms"]
        target = "" if device.type == "cuda" else f">= 3x: {verdict(ratio, 3.0)}"
        out.append(("visualization, torch-lucent render_vis as documented", f"{v['lucent_ms']:.2f} ms",
                    f"ours {ratio:.2f}x faster", target))
        out.append(("visualization, torch-lucent, weights frozen by hand", f"{v['lucent_frozen_ms']:.2f} ms",
                    f"ours {v['lucent_frozen_ms'] / v['ours_ms']:.2f}x faster", ""))
    if "atlas" in r:
        a = r["atlas"]
        ratio = a["batched_channels_s"] / a["one_at_a_time_channels_s"]
        out.append((f"atlas: {a['channels']} channels of {a['layer']} in one batch ({a['steps']} steps, Fourier)",
                    f"{a['batched_channels_s']:.1f} channels/s", "1.00", ""))
        out.append(("atlas: the same channels one call each", f"{a['one_at_a_time_channels_s']:.1f} channels/s",
                    f"batched {ratio:.2f}x faster", f">= 4x: {verdict(ratio, 4.0)}"))
    if "fourier" in r:
        out += fourier_rows(r["fourier"], device)
    if "training" not in r:  # --fourier-only
        return out
    t = r["training"]
    ratio = t["ours_img_s"] / t["imagefolder_img_s"]
    out.append((f"training, ours ({r['train_shape']})", f"{t['ours_img_s']:.0f} img/s", "1.00", ""))
    out.append(("training, ImageFolder + DataLoader (best worker count)", f"{t['imagefolder_img_s']:.0f} img/s",
                f"ours {ratio:.2f}x faster", "" if device.type == "cuda" else f">= 1.5x: {verdict(ratio, 1.5)}"))
    f = r["flops"]
    out.append((f"matrix product {f['matmul_n']}^2 ({f['matmul_dtype']})", f"{f['peak'] / 1e9:.1f} GFLOP/s",
                "1.00 (limit)", ""))
    target = f">= 40%: {verdict(f['train_fraction'], 0.4)}" if device.type == "cuda" else ""
    out.append(("training step, achieved", f"{f['train'] / 1e9:.1f} GFLOP/s", f"{f['train_fraction']:.1%} of limit",
                target))
    out.append(("visualization step, achieved", f"{f['viz'] / 1e9:.1f} GFLOP/s", f"{f['viz_fraction']:.1%} of limit",
                ""))
    e = r["epoch_job_demo"]
    out.append(("demo epoch job: fixed cost (start, imports, load, save)",
                f"{e['fixed_s']:.2f} s of {e['wall_s']:.2f} s", f"{e['fixed_fraction']:.1%}",
                f"<= 15%: {verdict(e['fixed_fraction'], FIXED_COST_TARGET, False)}"))
    if "epoch_job_full" in r:
        e = r["epoch_job_full"]
        out.append(("full VGG-16 epoch job: fixed cost", f"{e['fixed_s']:.1f} s of {e['fixed_s'] + e['epoch_work_s']:.0f} s",
                    f"{e['fixed_fraction']:.1%}", ""))
    if "paper_viz_seconds" in r:
        s = r["paper_viz_seconds"]
        out.append(("paper visualization: 4 classes x 1000 steps, VGG-16 224 px", f"{s:.1f} s",
                    f"{600 / s:.0f}x the paper's 600 s", f"<= 10 s: {verdict(s, 10.0, False)}"))
    if "demo_dag_s" in r:
        out.append(("demo DAG, make run after install", f"{r['demo_dag_s']:.0f} s", "", ""))
    return out


def _scores(v: dict) -> str:
    return f"R {v['R']:.2f}, p {v['p']:.2f}, H {v['H']:.2f}, S {v['S']:.2f}"


def no_worse(ours: dict, theirs: dict, permutations: int = 4000, alpha: float = 0.05) -> list[str]:
    """The scores where ours is worse than theirs beyond the draw's noise: for each of R
    (recognized or not), p, S and H (each image's |log10 of its high-frequency ratio|),
    a one-sided permutation test of the difference of the means over the images
    (seeded); worse where p < ``alpha``."""
    rng = np.random.default_rng(0)
    worse = []
    for key in ("R", "p", "S", "H"):
        a, b = np.asarray(ours["per_image"][key]), np.asarray(theirs["per_image"][key])
        both = np.concatenate([a, b])
        observed = b.mean() - a.mean()  # higher is better in each
        perm = np.array([rng.permutation(both) for _ in range(permutations)])
        diffs = perm[:, len(a):].mean(axis=1) - perm[:, :len(a)].mean(axis=1)
        if (1 + (diffs >= observed - 1e-12).sum()) / (1 + permutations) < alpha:
            worse.append(key)
    return worse


def fourier_rows(f: dict, device: torch.device) -> list[tuple[str, str, str, str]]:
    """Our Fourier images against Lucent's: images per second and the scores."""
    shape = (f"{f['images']} images a batch x {f['steps']} steps, Lucent's transforms and Adam; best of "
             f"{f.get('rounds', 3)} rounds; scores of {f['scored']} images")
    out = [(f"Fourier images, ours ({shape})", f"{f['ours_img_s']:.2f} img/s; {_scores(f['ours_scores'])}", "1.00", ""),
           ("Fourier images: real validation images' scores", _scores(f["real_scores"]), "", "")]
    lucent = f.get("lucent_img_s")
    if "network_img_s" in f:
        out.append(("Fourier images: the network's forward and backward alone, as many images and steps",
                    f"{f['network_img_s']:.2f} img/s", f"ours at {f['ours_img_s'] / f['network_img_s']:.0%} of it",
                    f"the ceiling: {f['network_img_s'] / lucent:.2f}x Lucent's" if lucent else ""))
    for key, label in (("lucent", "torch-lucent render_vis as documented"),
                       ("lucent_frozen", "torch-lucent render_vis, weights frozen by hand")):
        if f"{key}_img_s" not in f:
            continue
        ratio = f["ours_img_s"] / f[f"{key}_img_s"]
        worse = no_worse(f["ours_scores"], f[f"{key}_scores"])
        target = ""
        if key == "lucent" and device.type != "cuda":
            target = (f">= 3x: {verdict(ratio, 3.0)}; scores no worse (permutation tests, 5%): "
                      + ("met" if not worse else f"NOT met ({', '.join(worse)})"))
        out.append((f"Fourier images, {label}", f"{f[f'{key}_img_s']:.2f} img/s; {_scores(f[f'{key}_scores'])}",
                    f"ours {ratio:.2f}x faster", target))
    if "ours_bf16_img_s" in f:
        versus = ""
        if lucent:
            worse = no_worse(f["ours_bf16_scores"], f["lucent_scores"])
            versus = (f"{f['ours_bf16_img_s'] / lucent:.2f}x Lucent's (fp32); scores no worse: "
                      + ("yes" if not worse else f"no ({', '.join(worse)})"))
        out.append(("Fourier images, ours with visualize.precision: bf16 (other arithmetic: no verdict)",
                    f"{f['ours_bf16_img_s']:.2f} img/s; {_scores(f['ours_bf16_scores'])}",
                    f"{f['ours_bf16_img_s'] / f['ours_img_s']:.2f}x ours in fp32", versus))
    return out


def markdown(r: dict, table: list[tuple[str, str, str, str]]) -> str:
    m = r["machine"]
    lines = [f"# featevo benchmark ({time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['time']))} UTC)", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in m.items()), "",
             "| measure | value | ratio | target |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table]
    return "\n".join(lines) + "\n"


def write(r: dict, device: torch.device, out: Path) -> str:
    text = markdown(r, rows(r, device))
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(text)
    (out / "bench.json").write_text(json.dumps(r, indent=1, default=str) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--viz-steps", type=int, default=40)
    p.add_argument("--per-class", type=int, default=DEMO["data"]["images_per_class"],
                   help="stand-in images per class (default: the demo's data.images_per_class)")
    p.add_argument("--scale", choices=["demo", "paper"], default=None,
                   help="demo: the demo's network at 64 px (default on the CPU); paper: VGG-16 at 224 px "
                        "(default on CUDA)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (the best counts)")
    p.add_argument("--no-lucent", action="store_true", help="skip torch-lucent (not installed)")
    p.add_argument("--no-fourier", action="store_true", help="skip the Fourier images against Lucent")
    p.add_argument("--fourier-only", action="store_true",
                   help="only the Fourier images against Lucent (and the stand-in subset they are trained on)")
    p.add_argument("--fourier-steps", type=int, default=128, help="steps of the Fourier images (Lucent's: 512)")
    p.add_argument("--fourier-per-class", type=int, default=3,
                   help="Fourier images of each class, in one batch (the workflow's visualize.restarts)")
    p.add_argument("--fourier-rounds", type=int, default=5,
                   help="interleaved rounds of the Fourier images (the best counts; Lucent's times vary most)")
    p.add_argument("--fourier-epochs", type=int, default=10,
                   help="epochs of training of the network drawn and of its judge, on the bench's subset (10: "
                        "74%% and 98%% validation accuracy, measured; 4: 59%% and 86%%)")
    p.add_argument("--atlas-channels", type=int, default=32, help="channels of the atlas rows (0: none)")
    p.add_argument("--no-dag", action="store_true", help="skip the demo DAG's wall time")
    p.add_argument("--no-full", action="store_true", help="skip full-size VGG-16's per-epoch fixed cost")
    a = p.parse_args(argv)
    if not a.no_lucent:
        try:
            import lucent  # noqa: F401
        except ImportError:
            p.error("torch-lucent is not installed here; run `make bench` (it installs it in .venv-bench) "
                    "or pass --no-lucent")
    device = pick_device(a.device)
    torch.set_num_threads(a.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    scale = a.scale or ("paper" if device.type == "cuda" else "demo")
    cfg = DEMO if scale == "demo" else PAPER
    spec, size = model_spec(cfg), cfg["data"]["image_size"]
    # the paper's batch of 32 at 224 px takes minutes a round on a CPU: 8 there
    batch = 8 if scale == "paper" and device.type == "cpu" else cfg["train"]["batch_size"]
    if scale == "paper" and device.type == "cuda":
        batch = 64  # what an H100's throughput is measured at (the workflow's batch is the config's)
    precision = a.precision
    log = lambda m: print(m, flush=True)  # noqa: E731
    viz = cfg["visualize"]
    r = {"time": time.time(), "machine": machine(device), "scale": scale,
         "viz_shape": f"VGG-16/{spec.width_divisor} at {size} px, 4 classes, {a.viz_steps} steps",
         "train_shape": f"VGG-16/{spec.width_divisor} at {size} px, batch {batch}"}
    log(f"[bench] {r['machine']}; scale {scale}")
    if not a.fourier_only:
        r["visualization"] = bench_visualization(spec, size, a.viz_steps, viz, device, precision, not a.no_lucent,
                                                 log, rounds=a.rounds)
        if a.atlas_channels:
            r["atlas"] = bench_atlas(spec, size, a.viz_steps, viz, device, precision, a.atlas_channels, log,
                                     rounds=a.rounds)
    with tempfile.TemporaryDirectory(prefix="featevo-bench-") as tmp:
        work = Path(tmp)
        jpegs = work / "jpegs"  # the demo's stand-in classes as ImageNet-layout JPEGs
        write_jpegs(jpegs, a.per_class, DEMO["standin"]["image_size"], log=lambda m: None)
        # held out: the demo's share (data.val_per_class of data.images_per_class)
        val = a.per_class * DEMO["data"]["val_per_class"] // DEMO["data"]["images_per_class"]
        demo_data = subset = work / "demo_subset"
        extract_s = make_subset(jpegs, demo_data, DEMO["data"]["image_size"], a.per_class, val)
        if not a.no_fourier:  # the demo's network at the demo's size, whatever the scale
            model, judge = trained_networks(demo_data, a.fourier_epochs, device, precision, log)
            r["fourier"] = bench_fourier(model, judge, demo_data, DEMO["data"]["image_size"], a.fourier_steps,
                                         a.fourier_per_class, device, precision, not a.no_lucent, log,
                                         rounds=a.fourier_rounds)
        if a.fourier_only:
            text = write(r, device, a.out)
            print("\n" + text)
            return 0
        if size != DEMO["data"]["image_size"]:
            subset = work / "subset"
            make_subset(jpegs, subset, size, a.per_class, val)
        r["training"] = bench_training(spec, size, subset, jpegs, batch, work, device, precision, log)
        r["training"]["extract_once_s"] = extract_s
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        n = 8192 if device.type == "cuda" else 2048
        peak = matmul_peak(device, dtype, n)
        train_flops = step_flops(spec, size, 1, train=True) * r["training"]["ours_img_s"]
        viz_flops = step_flops(spec, size, 1, train=False) * 1000 / r["visualization"]["ours_ms"]
        r["flops"] = {"peak": peak, "matmul_n": n, "matmul_dtype": str(dtype).replace("torch.", ""),
                      "train": train_flops, "viz": viz_flops, "train_fraction": train_flops / peak,
                      "viz_fraction": viz_flops / peak}
        log(f"[bench] matrix product {peak / 1e9:.1f} GFLOP/s; training {train_flops / 1e9:.1f} GFLOP/s")
        # the demo's epoch job as the DAG runs it (one thread per job on the CPU)
        r["epoch_job_demo"] = e = epoch_job(demo_data, model_spec(DEMO), work / "epoch_job_demo", str(device),
                                            1 if device.type == "cpu" else a.threads, DEMO["train"]["batch_size"])
        log(f"[bench] demo epoch job: {e['fixed_s']:.2f} s fixed of {e['wall_s']:.2f} s")
        if not a.no_full:
            # the paper: 1300 images per class, 100 of them held out
            r["epoch_job_full"] = full_size_fixed_cost(224, device, precision, 4 * 1200, work, log)
        if device.type == "cuda":  # the paper's visualization job (hours on a CPU)
            t = timed(lambda: activation_maximization(build_model(model_spec(PAPER), seed=0), [0, 1, 2, 3],
                                                      **viz_settings(PAPER, device, precision)), device)
            r["paper_viz_seconds"] = t
        write(r, device, a.out)  # what is measured so far survives a failing DAG run
        if not a.no_dag:
            dag = work / "dag"
            dag.mkdir()
            r["demo_dag_s"] = demo_dag_seconds(dag, os.cpu_count() or 1, log)
    text = write(r, device, a.out)
    print("\n" + text)
    print(f"[bench] written to {a.out / 'bench.md'} and {a.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The first GPU's check: the paper's workload measured on a device, in minutes.

    python benchmarks/gpu_check.py --out results/gpu_check        # on CUDA: full size, <= 8 min
    python benchmarks/gpu_check.py --toy --out results/gpu_check  # anywhere: the same code, toy size

Writes ``check.md`` (one Markdown table, with the machine and the commit) and
``check.json``.  On CUDA, at the paper's size:

1. training: full VGG-16 at 224 px on synthetic data, Adadelta, batch 32:
   images per second in float32 with TF32 off (the paper's config) and in
   bf16 autocast, and the peak GPU memory of each;
2. one checkpoint's visualization as the paper does it: 4 classes x 1000 steps
   of the pre-softmax unit, the 5x5 median every 4 steps; seconds, achieved
   FLOP/s (PyTorch's FlopCounterMode counts a step) and its share of the card's
   matrix-product rate at that precision (measured here, stated in the table);
3. ``train.deterministic: true``: two one-epoch runs on a few batches equal
   bit for bit;
4. two jobs claiming one GPU at once (featevo.jobs.device.claim_gpu): the second
   waits, names the first, then runs;
5. the real workflow, ``configs/paper.yaml`` on a tiny fake ImageNet
   (benchmarks/fake_imagenet.py), end to end through snakemake on the device;
6. the atlas of one checkpoint (featevo.measures.atlas): every channel of VGG-16's 13
   convolutions (4,224) at 224 px, 512 steps of Fourier images, many channels a batch;
   seconds and channels per second (the target, to be measured on the first device:
   under 15 minutes on one H100).

``--toy`` runs every part on the CPU at toy size (the tests do), so the script
cannot rot; part 5 then runs the paper's config with its VGG-16 at 32 px, only
the scratch experiment, up to Fig. 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts: before any CUDA work

import torch  # noqa: E402

from featevo.config.settings import load_config  # noqa: E402
from featevo.jobs.device import autocast, configure  # noqa: E402
from featevo.models.networks import ModelSpec, build_model  # noqa: E402
from featevo.models.train import make_optimizer  # noqa: E402
from featevo.optvis.render import activation_maximization  # noqa: E402

PAPER_VIZ = load_config(ROOT / "config.yaml", ROOT / "configs" / "paper.yaml")["visualize"]

FULL = {"spec": ModelSpec(num_classes=4), "size": 224, "batch": 32, "train_steps": 20, "viz_steps": 1000,
        "det_batches": 4, "atlas_steps": 512, "atlas_batch": 256}
TOY = {"spec": ModelSpec(num_classes=4, width_divisor=16, pool_size=1), "size": 32, "batch": 4, "train_steps": 3,
       "viz_steps": 8, "det_batches": 2, "atlas_steps": 2, "atlas_batch": 132}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device):
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def train_rate(p: dict, device, precision: str) -> dict:
    """Images per second of Adadelta steps on synthetic data already on the device."""
    configure(device, None, precision=precision)
    model = build_model(p["spec"], seed=0).to(device, memory_format=torch.channels_last)
    opt = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
    x = torch.randn(p["batch"], 3, p["size"], p["size"], device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (p["batch"],), device=device)

    def step():
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    peak_reset(device)
    for _ in range(2):  # warm-up: kernels chosen, memory allocated
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(p["train_steps"]):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    return {"img_s": p["batch"] * p["train_steps"] / seconds, "peak_gib": peak_gib(device)}


def visualization(p: dict, device, precision: str) -> dict:
    """The paper's visualization of one checkpoint: 4 class units, one image each."""
    from bench import matmul_peak, step_flops

    configure(device, None, precision=precision)
    model = build_model(p["spec"], seed=0)
    # the paper's recipe (configs/paper.yaml), one image per class
    settings = {**PAPER_VIZ, "steps": p["viz_steps"], "restarts": 1, "precision": precision}
    activation_maximization(model, [0, 1, 2, 3], {**settings, "steps": 2}, image_size=p["size"], device=device)
    peak_reset(device)
    sync(device)
    start = time.perf_counter()
    activation_maximization(model, [0, 1, 2, 3], settings, image_size=p["size"], device=device)
    sync(device)
    seconds = time.perf_counter() - start
    flops = step_flops(p["spec"], p["size"], 4, train=False) * p["viz_steps"]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    peak = matmul_peak(device, dtype, 8192 if device.type == "cuda" else 1024)
    return {"seconds": seconds, "flop_per_step": flops / p["viz_steps"], "achieved": flops / seconds,
            "matmul_peak": peak, "share": flops / seconds / peak, "peak_gib": peak_gib(device)}


def atlas(p: dict, device, precision: str) -> dict:
    """Every channel of every convolution of one checkpoint, ``atlas_batch`` channels a
    batch (the forward pass stops at the deepest layer a batch needs)."""
    from featevo.measures.atlas import atlas_channels, atlas_layers
    from featevo.optvis.objectives import InnerUnit

    configure(device, None, precision=precision)
    model = build_model(p["spec"], seed=0)
    convs = [n for n in atlas_layers(model, p["spec"], p["size"], "all") if n.startswith("features.")]
    units = [InnerUnit(layer, c) for layer, c in atlas_channels(p["spec"], p["size"], convs, "all", 0)]
    recipe = {**PAPER_VIZ, "parameterization": "fourier", "optimizer": "adam", "step_size": 0.05, "median_every": 0,
              "transforms": "lucent", "restarts": 1, "steps": p["atlas_steps"], "precision": precision}
    peak_reset(device)
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(units), p["atlas_batch"]):
        activation_maximization(model, units[i:i + p["atlas_batch"]], recipe, image_size=p["size"], device=device,
                                key=f"atlas/{i}")
    sync(device)
    seconds = time.perf_counter() - start
    return {"channels": len(units), "layers": len(convs), "seconds": seconds, "channels_s": len(units) / seconds,
            "peak_gib": peak_gib(device)}


def deterministic(p: dict, device) -> dict:
    """Two one-epoch runs with deterministic algorithms: equal bit for bit?"""
    from featevo.models.train import train_one_epoch

    class Data:  # the uint8 NHWC arrays featevo.data.inputs.Subset holds
        def __init__(self, n):
            g = torch.Generator().manual_seed(0)
            self.images = torch.randint(0, 256, (n, p["size"], p["size"], 3), generator=g, dtype=torch.uint8).numpy()
            self.labels = (torch.arange(n) % 4).numpy()

        def __len__(self):
            return len(self.labels)

    data = Data(p["batch"] * p["det_batches"])
    runs = []
    configure(device, None, deterministic=True, precision="fp32")
    try:
        for _ in range(2):
            model = build_model(p["spec"], seed=0).to(device, memory_format=torch.channels_last)
            opt = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
            train_one_epoch(model, opt, data, epoch=1, seed=0, batch_size=p["batch"], device=device,
                            precision="fp32", augment="none", log=lambda m: None)
            runs.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    finally:
        torch.use_deterministic_algorithms(False)
    equal = all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    return {"equal": equal, "tensors": len(runs[0])}


def two_jobs(work: Path, hold: float = 3.0) -> dict:
    """Two processes claim the one GPU at once: the second waits, names the first, runs.

    Both import first and say so; only then does the first claim, and the second
    claims while the first holds.  (Holding for a fixed time from the first's claim
    raced the second's import: on a GPU machine ``import torch`` outlasted the hold,
    and the second found the GPU free.)"""
    code = ("import os, sys, time; from featevo.jobs import device; print('ready', flush=True); sys.stdin.readline(); "
            "t = time.monotonic(); i = device.claim_gpu(['0'], sys.argv[1], timeout=60); "
            f"print(os.getpid(), round(time.monotonic() - t, 2), flush=True); time.sleep({hold})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "workflow"),
                                                                     os.environ.get("PYTHONPATH")]))}
    locks = work / "locks"
    locks.mkdir(mode=0o700)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(locks)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    first, second = procs
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    first.stdin.write("go\n")
    first.stdin.flush()
    first_pid, _ = first.stdout.readline().split()  # the first holds the GPU from here for `hold` seconds
    second.stdin.write("go\n")
    second.stdin.flush()
    out, err = second.communicate(timeout=120)
    first.communicate(timeout=120)
    _, waited = out.split()
    return {"second_waited_s": float(waited), "named_first": f"pid {first_pid}" in err,
            "ok": second.returncode == 0 and float(waited) >= hold * 0.5 and f"pid {first_pid}" in err}


def workflow(work: Path, device, toy: bool) -> dict:
    """configs/paper.yaml end to end through snakemake on a tiny fake ImageNet."""
    import shutil

    import yaml

    import fake_imagenet as fake  # benchmarks/fake_imagenet.py

    shutil.copy(ROOT / "config.yaml", work / "config.yaml")
    override = {
        "data": {"imagenet": str(fake.train_tar(work, 10)), "images_per_class": 8, "val_per_class": 2},
        "experiments": {"scratch": {"epochs": 1}, "pretrained": {"epochs": 1}, "frozen": {"epochs": 1}},
        "train": {"threads": 2, "batch_size": 8, "device": str(device)},
        "visualize": {"steps": 8, "threads": 2, "restarts": 2, "top_k": 4, "device": str(device)},
        "methods": {"threads": 2, "device": str(device), "occlusion": {"window": 112, "stride": 112},
                    "inversion": {"steps": 2}},
    }
    if toy:  # 224 px would take minutes per job on a CPU: the same VGG-16 at 32 px, scratch only
        override["data"].update(image_size=32)
        override["methods"]["occlusion"] = {"window": 16, "stride": 16}
        override["experiments"] = {"scratch": {"epochs": 1}}
    weights, digest = fake.vgg16_weights(work)
    override.setdefault("reference", {}).update(weights=str(weights), sha256=digest)
    (work / "check.yaml").write_text(yaml.safe_dump(override))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(ROOT / "Snakefile"), "--directory", str(work),
           "--cores", "2", "--configfile", str(ROOT / "configs" / "paper.yaml"), str(work / "check.yaml")]
    if toy:
        cmd += ["--", "results/paper/figures/fig1.png"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    seconds = time.perf_counter() - start
    log = (proc.stdout + proc.stderr)[-3000:]
    done = [line for line in log.splitlines() if "steps (100%) done" in line]
    return {"ok": proc.returncode == 0, "seconds": seconds, "jobs": done[-1].strip() if done else "", "tail": log}


def own_folder(path: Path) -> str | None:
    """Make ``path`` (and its parents, as ``mkdir -p`` does); a problem if it is not a real
    folder of this user that only this user can write to (a planted link or an open folder
    would let another user put files where this check writes)."""
    import stat

    path.mkdir(parents=True, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return f"--out {path} is a link or not a folder; give a folder of your own"
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return f"--out {path} belongs to another user or others may write to it; give a folder of your own"
    return None


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(r: dict) -> str:
    lines = []
    for prec in ("fp32", "bf16") if "train" in r else ():
        t = r["train"][prec]
        lines.append(f"| training, {prec}{' (TF32 off, the paper)' if prec == 'fp32' else ' autocast'} | "
                     f"{t['img_s']:.1f} img/s | peak memory {t['peak_gib']:.2f} GiB |")
    for prec in ("fp32", "bf16") if "viz" in r else ():
        v = r["viz"][prec]
        lines.append(f"| visualization, {prec}: 4 classes x {r['params']['viz_steps']} steps | {v['seconds']:.1f} s | "
                     f"{v['achieved'] / 1e12:.2f} TFLOP/s = {v['share']:.0%} of the matrix-product rate measured "
                     f"here ({v['matmul_peak'] / 1e12:.1f} TFLOP/s); {v['flop_per_step'] / 1e9:.1f} GFLOP a step "
                     f"(FlopCounterMode); peak memory {v['peak_gib']:.2f} GiB |")
    d = r.get("deterministic")
    if d:
        lines.append(f"| train.deterministic: two runs | {'equal bit for bit' if d['equal'] else 'DIFFER'} | "
                     f"{d['tensors']} tensors compared |")
    j = r.get("two_jobs")
    if j:
        lines.append(f"| two jobs, one GPU | {'ok' if j['ok'] else 'FAILED'} | the second waited "
                     f"{j['second_waited_s']:.1f} s{' and named the first' if j['named_first'] else ', naming nobody'} |")
    if "atlas" in r:
        a = r["atlas"]
        lines.append(f"| atlas: every channel of {a['layers']} convolutions ({a['channels']}), "
                     f"{r['params']['atlas_steps']} steps, {r['params']['atlas_batch']} a batch | {a['seconds']:.0f} s | "
                     f"{a['channels_s']:.1f} channels/s; target under 900 s on one H100; peak memory "
                     f"{a['peak_gib']:.2f} GiB |")
    if "workflow" in r:
        w = r["workflow"]
        lines.append(f"| configs/paper.yaml on a fake ImageNet, end to end | {'ok' if w['ok'] else 'FAILED'} | "
                     f"{w['seconds']:.0f} s; {w['jobs']} |")
    head = (f"GPU check, {time.strftime('%Y-%m-%d')}, commit {commit()}, {r['machine']}"
            f"{' (toy size)' if r['toy'] else ''}\n\n")
    return head + "\n".join(["| check | value | notes |", "|---|---|---|", *lines]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--toy", action="store_true", help="toy size, on the CPU unless CUDA is there")
    ap.add_argument("--no-workflow", action="store_true", help="leave out part 5")
    ap.add_argument("--parts", default="1,2,3,4,5,6", help="the parts to run, e.g. 4,5 to rerun the last two")
    a = ap.parse_args(argv)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not a.toy:
        ap.error("no CUDA device here: use --toy to run the check's code at toy size on the CPU")
    p = TOY if a.toy else FULL
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    r = {"machine": f"{name}, torch {torch.__version__}", "toy": a.toy,
         "params": {k: v for k, v in p.items() if k != "spec"}}
    out_problem = own_folder(a.out)
    if out_problem:
        ap.error(out_problem)

    def log(m):
        print(f"[gpu_check] {m}", flush=True)

    parts = {int(x) for x in a.parts.split(",") if x.strip()}
    if 1 in parts:
        r["train"] = {prec: train_rate(p, device, prec) for prec in ("fp32", "bf16")}
        log(f"training {r['train']}")
    if 2 in parts:
        r["viz"] = {prec: visualization(p, device, prec) for prec in ("fp32", "bf16")}
        log(f"visualization {r['viz']}")
    if 3 in parts:
        r["deterministic"] = deterministic(p, device)
        log(f"deterministic {r['deterministic']}")
    if 4 in parts:
        with tempfile.TemporaryDirectory() as tmp:
            r["two_jobs"] = two_jobs(Path(tmp))
        log(f"two jobs {r['two_jobs']}")
    if 6 in parts:
        r["atlas"] = atlas(p, device, "bf16" if device.type == "cuda" else "fp32")
        log(f"atlas {r['atlas']}")
    if 5 in parts and not a.no_workflow:  # a new private folder each run: no path of an earlier run is reused
        work = Path(tempfile.mkdtemp(prefix="workflow-", dir=a.out))
        r["workflow"] = workflow(work, device, a.toy)
        log(f"workflow ok={r['workflow']['ok']} in {r['workflow']['seconds']:.0f} s")
    md = table(r)
    (a.out / "check.md").write_text(md)
    (a.out / "check.json").write_text(json.dumps(r, indent=1, default=str) + "\n")
    print(md)
    failed = (not r.get("deterministic", {"equal": True})["equal"] or not r.get("two_jobs", {"ok": True})["ok"]
              or not r.get("workflow", {"ok": True})["ok"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

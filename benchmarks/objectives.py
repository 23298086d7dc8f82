"""Measure activation maximization's recipes on a finished run's checkpoints.

For each objective and median filter, checkpoints of the first seed (every
``--every``-th epoch and the last) and the reference network (Fig. 3) are
visualized with the run's own ``visualize`` settings, and the images are read
by a fixed network: its probability of the image's class, its largest
probability of another class (leakage), the share of steps whose objective had
no gradient on its own unit (saturated), and the PNG ratio and total variation
(pixel complexity).  Prints one Markdown table and the criterion of
docs/visualization.md ("Choosing the demo's recipe without the judge").

The reader is the run's judge, or with ``--selector`` a network that no claim
reads (a VGG-13 / 8, seed 3, trained on the reference's own images): the
demo's recipe is chosen with the selector, so that the judge, whose readings
are the claims' evidence, never chose the images it reads.

    python benchmarks/objectives.py --run results/demo --config config.yaml --selector
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from featevo.models.checkpoint import load_model  # noqa: E402
from featevo.config.settings import schema_defaults  # noqa: E402
from featevo.data.inputs import Subset, to_uint8  # noqa: E402
from featevo.measures.metrics import fixed_network_measures, png_ratio, total_variation  # noqa: E402
from featevo.optvis.render import activation_maximization  # noqa: E402

SELECTOR = {"arch": "vgg13", "seed": 3, "epochs": 8}


def train_selector(run: Path, cfg: dict, log=print) -> tuple[torch.nn.Module, float]:
    """The selector: ``SELECTOR``'s network, trained in the reference's recipe on the
    reference's own images (its ten classes, the run's four first); no claim reads it."""
    from featevo.models.networks import ModelSpec, build_model, kaiming_classifier
    from featevo.models.train import evaluate, make_optimizer, train_one_epoch

    r, m = cfg["reference"], cfg["model"]
    data = run / "data" / "reference"
    train, val = Subset(data, "train"), Subset(data, "val")
    spec = ModelSpec(arch=SELECTOR["arch"], num_classes=int(train.labels.max()) + 1,
                     width_divisor=m["width_divisor"], pool_size=m["pool_size"], dropout=r["dropout"])
    model = build_model(spec, seed=SELECTOR["seed"])
    kaiming_classifier(model, SELECTOR["seed"])
    model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, r["lr"], 0.95, 1e-8, r["optimizer"])
    steps = SELECTOR["epochs"] * math.ceil(len(train) / r["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=steps, pct_start=r["warmup"])
    for epoch in range(1, SELECTOR["epochs"] + 1):
        train_one_epoch(model, opt, train, epoch=epoch, seed=SELECTOR["seed"], batch_size=r["batch_size"],
                        device=torch.device("cpu"), precision="fp32", augment=r["augment"], log=lambda *_: None,
                        scheduler=sched)
    acc = evaluate(model, val, torch.device("cpu"), "fp32")["acc"]
    log(f"selector: {SELECTOR['arch']} / {m['width_divisor']}, seed {SELECTOR['seed']}, {SELECTOR['epochs']} epochs "
        f"on {data}: validation accuracy {acc:.3f} on its {spec.num_classes} classes")
    return model.eval(), acc


def measure(model, units, reader, reader_units, settings: dict, image_size: int, key: str) -> dict:
    r = activation_maximization(model, units, settings, image_size=image_size, device="cpu", key=key)
    k = settings["restarts"]
    flat = to_uint8(r["images"])  # (restarts * units, H, W, 3), restart-major
    imgs = flat.reshape(k, len(units), *flat.shape[1:])
    m = fixed_network_measures(imgs, reader, reader_units)
    return {"prob": float(m["judge_prob"].mean()), "leak": float(m["judge_leak"].mean()),
            "saturated": float(r["saturated"].mean()),
            "png_ratio": float(np.mean([png_ratio(i) for i in flat])),
            "total_variation": float(np.mean([total_variation(i) for i in flat]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--config", type=Path, nargs="+", required=True, help="the run's config files, in order")
    p.add_argument("--objectives", nargs="+", default=["logit", "margin"])
    p.add_argument("--medians", nargs="+", default=["5:4", "3:8"], help="SIZE:EVERY median filters")
    p.add_argument("--every", type=int, default=3, help="every N-th epoch (and the last three)")
    p.add_argument("--selector", action="store_true", help="read the images with the selector, not the judge")
    p.add_argument("--set", nargs="*", default=[], help="visualize.KEY=VALUE overrides (YAML values)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = schema_defaults()
    for f in a.config:
        for k, v in yaml.safe_load(f.read_text()).items():
            cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    viz = {**schema_defaults()["visualize"], **cfg["visualize"]}
    for kv in a.set:
        key, value = kv.split("=", 1)
        viz[key] = yaml.safe_load(value)
    size = cfg["data"]["image_size"]
    n = len(cfg["data"]["classes"])
    if a.selector:
        reader, _ = train_selector(a.run, cfg)
        who = "selector"
    else:
        reader, _ = load_model(a.run / "judge" / "model.pt")
        who = "judge"
    reference, ref_ckpt = load_model(a.run / "reference" / "model.pt")
    ref_units = [ref_ckpt["classes"].index(c["wnid"]) for c in cfg["data"]["classes"]]
    print(f"settings: {viz}")
    print(f"| objective | median | network | epochs | {who} p(own) | {who} leak | saturated | PNG ratio | TV |")
    print("|---|---|---|---|---|---|---|---|---|")
    scores = {}
    for objective in a.objectives:
        for median in a.medians:
            size_, every = map(int, median.split(":"))
            s = {**viz, "precision": "fp32", "objective": objective, "median_size": size_, "median_every": every}
            label = f"{size_}x{size_} every {every}"
            chosen = []
            for exp in cfg["experiments"]:
                last = cfg["experiments"][exp]["epochs"]
                folder = a.run / "train" / exp / f"seed{cfg['seeds'][0]}"
                rows = {}
                for e in sorted(set(range(0, last + 1, a.every)) | set(range(max(0, last - 2), last + 1))):
                    model, _ = load_model(folder / f"epoch_{e:03d}.pt")
                    rows[e] = measure(model, list(range(n)), reader, list(range(n)), s, size, f"{exp}/{e}")
                for name, es in (("0-2", [e for e in rows if e <= 2]), ("last 3", sorted(rows)[-3:])):
                    mean = {k: np.mean([rows[e][k] for e in es]) for k in rows[es[0]]}
                    print(f"| {objective} | {label} | {exp} | {name} | {mean['prob']:.2f} | {mean['leak']:.2f} | "
                          f"{mean['saturated']:.2f} | {mean['png_ratio']:.2f} | {mean['total_variation']:.3f} |",
                          flush=True)
                if exp in ("scratch", "pretrained"):
                    chosen += [(rows[e]["prob"], rows[e]["saturated"]) for e in sorted(rows)[-3:]]
            m = measure(reference, ref_units, reader, list(range(n)), s, size, "reference")
            print(f"| {objective} | {label} | reference (Fig. 3) | - | {m['prob']:.2f} | {m['leak']:.2f} | "
                  f"{m['saturated']:.2f} | {m['png_ratio']:.2f} | {m['total_variation']:.3f} |", flush=True)
            scores[(objective, label)] = (float(np.mean([c[0] for c in chosen])), float(np.mean([c[1] for c in chosen])))
    print(f"\ncriterion: {who} p(own class), mean over the last 3 epochs of scratch and pretrained")
    for (objective, label), (score, sat) in sorted(scores.items(), key=lambda kv: -kv[1][0]):
        print(f"  {objective}, {label}: {score:.3f} (saturated {sat:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

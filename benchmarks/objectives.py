"""Measure activation maximization's objectives on a finished run's checkpoints.

For each objective, every checkpoint of the first seed (and the reference
network, Fig. 3) is visualized with the run's own ``visualize`` settings and
``restarts`` starts, and the images are read by the run's judge: its probability
of the image's class (recognizable to a network not trained here), its largest
probability of another class (leakage), the share of steps whose objective had
no gradient on its own unit (saturated), and the PNG ratio and total variation
(pixel complexity).  Prints one Markdown table (docs/visualization.md).

    python benchmarks/objectives.py --run results/demo --config config.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from featevo.checkpoint import load_model  # noqa: E402
from featevo.settings import schema_defaults  # noqa: E402
from featevo.inputs import to_uint8  # noqa: E402
from featevo.metrics import fixed_network_measures, png_ratio, total_variation  # noqa: E402
from featevo.visualize import activation_maximization  # noqa: E402


def measure(model, units, judge, judge_units, settings: dict, image_size: int) -> dict:
    r = activation_maximization(model, units, settings, image_size=image_size, device="cpu")
    k = settings["restarts"]
    flat = to_uint8(r["images"])  # (restarts * units, H, W, 3), restart-major
    imgs = flat.reshape(k, len(units), *flat.shape[1:])
    m = fixed_network_measures(imgs, judge, judge_units)
    return {"judge_prob": float(m["judge_prob"].mean()), "judge_leak": float(m["judge_leak"].mean()),
            "saturated": float(r["saturated"].mean()),
            "png_ratio": float(np.mean([png_ratio(i) for i in flat])),
            "total_variation": float(np.mean([total_variation(i) for i in flat]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--config", type=Path, nargs="+", required=True, help="the run's config files, in order")
    p.add_argument("--objectives", nargs="+", default=["logit", "margin", "log_softmax"])
    p.add_argument("--every", type=int, default=1, help="every N-th epoch (and the last)")
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
    settings = {**viz, "precision": "fp32"}
    size = cfg["data"]["image_size"]
    n = len(cfg["data"]["classes"])
    judge, _ = load_model(a.run / "judge" / "model.pt")
    reference, ref_ckpt = load_model(a.run / "reference" / "model.pt")
    ref_units = [ref_ckpt["classes"].index(c["wnid"]) for c in cfg["data"]["classes"]]
    print(f"settings: {settings}")
    print("| objective | network | epochs | judge p(own) | judge leak | saturated | PNG ratio | TV |")
    print("|---|---|---|---|---|---|---|---|")
    for objective in a.objectives:
        s = {**settings, "objective": objective}
        for exp in cfg["experiments"]:
            last = cfg["experiments"][exp]["epochs"]
            folder = a.run / "train" / exp / f"seed{cfg['seeds'][0]}"
            rows = {}
            for e in sorted(set(range(0, last + 1, a.every)) | {last}):
                model, _ = load_model(folder / f"epoch_{e:03d}.pt")
                rows[e] = measure(model, list(range(n)), judge, list(range(n)), s, size)
            for label, es in (("0-2", [e for e in rows if e <= 2]), (f"last 3", sorted(rows)[-3:])):
                mean = {k: np.mean([rows[e][k] for e in es]) for k in rows[es[0]]}
                print(f"| {objective} | {exp} | {label} | {mean['judge_prob']:.2f} | {mean['judge_leak']:.2f} | "
                      f"{mean['saturated']:.2f} | {mean['png_ratio']:.2f} | {mean['total_variation']:.3f} |",
                      flush=True)
        m = measure(reference, ref_units, judge, list(range(n)), s, size)
        print(f"| {objective} | reference (Fig. 3) | - | {m['judge_prob']:.2f} | {m['judge_leak']:.2f} | "
              f"{m['saturated']:.2f} | {m['png_ratio']:.2f} | {m['total_variation']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

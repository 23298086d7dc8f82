"""The ResNet-18 demo's class images under each candidate recipe, scored, and the
recipe the criterion of docs/visualization.md picks.

Run after the demo has trained (``snakemake --cores 2 --configfile
configs/resnet-demo.yaml``): it reads the run's last checkpoint of an experiment,
its judge and its validation and training images, renders every candidate from
the same seed, and writes ``<out>/recipes.md``, ``recipes.json`` and
``recipes.png`` (a row per candidate, the first restart of each class).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from featevo.measures import scores
from featevo.models.checkpoint import load_model
from featevo.config.settings import load_config
from featevo.data.inputs import Subset, to_uint8
from featevo.optvis.render import activation_maximization

ROOT = Path(__file__).resolve().parents[1]
LUCENT = "lucent"
NO_MEDIAN = {"median_every": 0}
# written down before measuring (docs/visualization.md); each changes the demo's visualize section
CANDIDATES = {
    "P": {},
    "P-T": {"transforms": LUCENT},
    "F": {"parameterization": "fourier", "optimizer": "adam", "step_size": 0.05, "transforms": LUCENT, **NO_MEDIAN},
    "F-near": {"parameterization": "fourier", "optimizer": "adam", "step_size": 0.05, **NO_MEDIAN,
               "transforms": [{"jitter": 4}, {"scale": [0.95, 1.05]}, {"rotate": 5}]},
    "M": {"parameterization": "maco", "optimizer": "adam", "step_size": 0.05, "transforms": LUCENT, **NO_MEDIAN},
    "M-fast": {"parameterization": "maco", "optimizer": "adam", "step_size": 0.2, "transforms": LUCENT, **NO_MEDIAN},
    "M-img": {"parameterization": "maco", "maco": {"spectrum": "images", "alpha": 1.0}, "optimizer": "adam",
              "step_size": 0.05, "transforms": LUCENT, **NO_MEDIAN},
}


def image_scores(images: np.ndarray, classes: np.ndarray, judge, judge_units: list[int], real: dict) -> dict:
    """The scores of uint8 (N, H, W, 3) images standing for ``classes`` (indices into
    ``judge_units``): R, the share the judge assigns to their class (argmax over the
    units); p, its mean probability of the class; H, the geometric mean of the
    high-frequency power ratios to the real images, and D = |log10 H|; S, the mean
    class-similarity percentile in the judge's penultimate features (and ``sim``,
    the mean cosine)."""
    feats, logits = scores.penultimate(judge, images)
    probs = torch.from_numpy(logits).softmax(dim=1).numpy()[:, judge_units]
    own = probs[np.arange(len(classes)), classes]
    ratio = scores.high_frequency_ratio(images, real["images"])
    sim = scores.class_similarity(feats, classes, real["features"], real["labels"])
    h = float(np.exp(np.log(ratio).mean()))
    hit = probs.argmax(axis=1) == classes
    return {"R": float(hit.mean()), "p": float(own.mean()), "H": h,
            "D": abs(math.log10(h)), "S": float(sim["percentile"].mean()), "sim": float(sim["similarity"].mean()),
            "per_class_R": [float(hit[classes == c].mean()) for c in np.unique(classes)],
            # each image's, for tests between recipes: higher is better in each
            "per_image": {"R": hit.astype(float).tolist(), "p": own.tolist(), "S": sim["percentile"].tolist(),
                          "H": (-np.abs(np.log10(ratio))).tolist()}}


def choose(table: dict[str, dict], baseline: str = "P", images: int = 32) -> tuple[str, list[str]]:
    """The criterion of docs/visualization.md: eligible when R >= the baseline's and D
    below it; the highest R wins, those within one image of it ranked by the smaller D,
    then the higher S.  The baseline when none is eligible; and the eligible."""
    base = table[baseline]
    eligible = [k for k, v in table.items() if k != baseline and v["R"] >= base["R"] and v["D"] < base["D"]]
    if not eligible:
        return baseline, []
    best_r = max(table[k]["R"] for k in eligible)
    near = [k for k in eligible if table[k]["R"] >= best_r - 1 / images + 1e-9]
    return min(near, key=lambda k: (table[k]["D"], -table[k]["S"])), eligible


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=Path("results/resnet-demo"))
    p.add_argument("--config", type=Path, nargs="+",
                   default=[ROOT / "config.yaml", ROOT / "configs" / "resnet-demo.yaml"],
                   help="the run's config files, in order (its classes and image size)")
    p.add_argument("--base", type=Path, default=ROOT / "config.yaml",
                   help="the config whose visualize section is P, the recipe every candidate changes (the VGG "
                        "demo's pixel recipe, which the ResNet demo used before it chose its own)")
    p.add_argument("--experiment", default="scratch")
    p.add_argument("--seed", type=int, default=0, help="the training seed whose checkpoint is drawn")
    p.add_argument("--epoch", type=int, help="default: the run's last")
    p.add_argument("--restarts", type=int, default=8)
    p.add_argument("--only", nargs="+", choices=list(CANDIDATES), help="some candidates (default: all)")
    p.add_argument("--out", type=Path, default=Path("results/recipes"))
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = load_config(*a.config)
    base = {**load_config(a.base)["visualize"], "restarts": a.restarts, "precision": "fp32", "device": "cpu"}
    size = cfg["data"]["image_size"]
    folder = a.run / "train" / a.experiment / f"seed{a.seed}"
    epoch = a.epoch if a.epoch is not None else max(int(f.stem.split("_")[1]) for f in folder.glob("epoch_*.pt")
                                                   if f.stem.split("_")[1].isdigit())
    model, _ = load_model(folder / f"epoch_{epoch:03d}.pt")
    judge, _ = load_model(a.run / "judge" / "model.pt")
    n_classes = len(cfg["data"]["classes"])
    units = list(range(n_classes))  # the experiments' and the trained judge's own class units
    val = Subset(a.run / "data" / "main", "val")
    train = Subset(a.run / "data" / "main", "train")
    real_feats, real_logits = scores.penultimate(judge, val.images)
    real = {"images": val.images, "labels": val.labels, "features": real_feats}
    classes = np.tile(np.arange(n_classes), a.restarts)
    print(f"[recipes] {folder / f'epoch_{epoch:03d}.pt'}: {len(CANDIDATES)} candidates, {a.restarts} restarts, "
          f"{base['steps']} steps, {size} px", flush=True)
    table = {"real (validation)": image_scores(val.images, val.labels, judge, units, real)}
    rows = []
    for name in a.only or CANDIDATES:
        recipe = {**base, **CANDIDATES[name]}
        start = time.perf_counter()
        result = activation_maximization(model, units, recipe, image_size=size, device="cpu",
                                         spectrum_images=train.images)
        seconds = time.perf_counter() - start
        images = to_uint8(result["images"])
        table[name] = {**image_scores(images, classes, judge, units, real), "seconds": seconds}
        rows.append(np.concatenate(list(images[:n_classes]), axis=1))
        print(f"[recipes] {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[name].items()
                                                 if isinstance(v, float)), flush=True)
    candidates = {k: v for k, v in table.items() if k in CANDIDATES}
    chosen, eligible = choose(candidates, images=len(classes)) if "P" in candidates else (None, [])
    a.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(a.out / "recipes.png")
    lines = [f"ResNet demo, {a.experiment} seed {a.seed} epoch {epoch}, {a.restarts} restarts x {n_classes} classes, "
             f"{base['steps']} steps", "",
             "| recipe | R (judge's argmax = class) | judge p(own) | H (HF power / real) | D = abs(log10 H) "
             "| S (similarity percentile) | cosine to class mean | seconds |", "|---|---|---|---|---|---|---|---|"]
    for k, v in table.items():
        lines.append(f"| {k} | {v['R']:.2f} | {v['p']:.2f} | {v['H']:.2f} | {v['D']:.2f} | {v['S']:.2f} "
                     f"| {v['sim']:.2f} | {v.get('seconds', float('nan')):.0f} |")
    lines += ["", f"eligible: {', '.join(eligible) or 'none'}; chosen: {chosen}"]
    (a.out / "recipes.md").write_text("\n".join(lines) + "\n")
    (a.out / "recipes.json").write_text(json.dumps({"table": table, "chosen": chosen, "eligible": eligible,
                                                    "candidates": CANDIDATES, "epoch": epoch}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

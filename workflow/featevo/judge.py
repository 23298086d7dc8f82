"""The judge's floor: what its readings are worth before any of them is evidence.

The judge is the fixed network that reads every checkpoint's class images
(featevo.metrics).  Two numbers say how far to trust it, written once per run
to ``metrics/judge.csv``:

* its accuracy on the run's validation images, among the classes' units (the
  argmax over the units the metrics read): a judge at chance reads nothing,
  and below ``judge.min_accuracy`` every verdict that rests on it is "not
  testable" (featevo.claims).  For a judge trained here the validation images
  are held out from it; torchvision's ImageNet network (``judge.source:
  reference`` with ``data.validation: subset``) was trained on them;
* its probability of each class on the ascent's starting noise (the
  visualize recipe's own starts, every restart): the reading an image gets
  before any network drew anything into it.  A judge that reads noise as
  flamingo with p near 1 makes a high p of a flamingo image worth nothing.

The reading of epoch 0's images (a network that learned nothing, or the
reference with a fresh output layer) is in each experiment's metrics.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("featevo.judge")
SECTIONS = ("visualize", "data", "judge")  # the config sections this stage reads


def floor(judge, units: list[int], names: list[str], val_images: np.ndarray, val_labels: np.ndarray,
          recipe, image_size: int, min_accuracy: float, batch: int = 128):
    """Per class: the judge's accuracy on the class's validation images (argmax among
    ``units``), its mean probability of the class on the starting noise, and the same
    for all classes together (class ``all``); ``testable``: accuracy >= min_accuracy."""
    import pandas as pd
    import torch

    from featevo.inputs import imagenet_normalize, to_input
    from featevo.visualize import initial_images, start_seed

    sel = torch.tensor(units)
    with torch.no_grad():
        preds = [judge(to_input(val_images[i:i + batch], torch.device("cpu"))).float()[:, sel].argmax(1)
                 for i in range(0, len(val_images), batch)]
        pred = torch.cat(preds).numpy() if preds else np.zeros(0, int)
        n = len(units) * recipe.restarts
        starts = initial_images(n, image_size, recipe.init, recipe.init_std, start_seed(recipe.seed, "judge floor"))
        noise = judge(imagenet_normalize(starts)).float().softmax(1)[:, sel].numpy()  # (images, classes)
    rows = []
    for k, name in enumerate(names):
        mine = val_labels == k
        rows.append({"class": name, "unit": units[k], "val_images": int(mine.sum()),
                     "accuracy": float((pred[mine] == k).mean()) if mine.any() else np.nan,
                     "noise_prob": float(noise[:, k].mean()), "noise_prob_max": float(noise[:, k].max())})
    acc = float((pred == val_labels).mean()) if len(pred) else np.nan
    rows.append({"class": "all", "unit": -1, "val_images": int(len(pred)), "accuracy": acc,
                 "noise_prob": float(noise.max(1).mean()), "noise_prob_max": float(noise.max())})
    df = pd.DataFrame(rows)
    df["chance"] = 1 / len(units)
    df["min_accuracy"] = min_accuracy
    df["testable"] = bool(np.isfinite(acc) and acc >= min_accuracy)
    return df


def main(argv: list[str] | None = None) -> int:
    from featevo.checkpoint import load_model
    from featevo.inputs import Subset
    from featevo.settings import parse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--judge", type=Path, required=True, help="the judge's checkpoint")
    p.add_argument("--units", type=int, nargs="+", required=True, help="its output unit of each class")
    p.add_argument("--names", nargs="+", required=True, help="the class names, in label order")
    p.add_argument("--val", type=Path, required=True, help="the run's folder of featevo.extract (its val split)")
    p.add_argument("--settings", type=lambda text: parse(text, *SECTIONS), default="{}",
                   help="visualize (the starting noise), data.image_size and judge.min_accuracy as JSON, or @FILE")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if len(a.units) != len(a.names):
        p.error("one --names per --units")
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    judge, _ = load_model(a.judge)
    val = Subset(a.val, "val")
    s = a.settings
    df = floor(judge, a.units, a.names, val.images, val.labels, s.visualize, s.data.image_size,
               s.judge.min_accuracy)
    df.to_csv(a.out, index=False)
    summary = df[df["class"] == "all"].iloc[0]
    log.info(f"judge accuracy {summary['accuracy']:.3f} on {summary['val_images']} validation images "
             f"(chance {summary['chance']:.2f}, needed {summary['min_accuracy']:.2f}: "
             f"{'testable' if summary['testable'] else 'NOT testable'}); p(class | starting noise) "
             f"{dict(zip(df['class'][:-1], df['noise_prob'][:-1].round(3)))} -> {a.out}")
    return 0


if __name__ == "__main__":
    from featevo.runtime import configure_logging

    configure_logging()
    sys.exit(main())

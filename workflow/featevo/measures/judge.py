"""The judge's floor: what its readings are worth before any of them is evidence.

The judge is the fixed network that reads every checkpoint's class images
(featevo.measures.metrics).  Two numbers say how far to trust it, written once per run
to ``metrics/judge.csv``:

* its accuracy on the run's validation images, among the classes' units (the
  argmax over the units the metrics read): a judge at chance reads nothing,
  and below ``judge.min_accuracy`` every verdict that rests on it is "not
  testable" (featevo.measures.claims).  For a judge trained here the validation images
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

import logging

import numpy as np

log = logging.getLogger("featevo.measures.judge")


def floor(judge, units: list[int], names: list[str], val_images: np.ndarray, val_labels: np.ndarray,
          recipe, image_size: int, min_accuracy: float, batch: int = 128):
    """Per class: the judge's accuracy on the class's validation images (argmax among
    ``units``), its mean probability of the class on the starting noise, and the same
    for all classes together (class ``all``); ``testable``: accuracy >= min_accuracy."""
    import pandas as pd
    import torch

    from featevo.data.inputs import imagenet_normalize, to_input
    from featevo.optvis.render import initial_images, start_seed

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

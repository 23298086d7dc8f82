"""Measure what the paper argued by eye: feature complexity and feature confusion.

For every checkpoint's class visualizations (``classes.npz``):

* complexity of each image, three ways, all growing with structure:
  - ``png_ratio``: PNG-compressed size over raw size (a computable stand-in for
    Kolmogorov complexity: flat images compress well, intricate ones do not);
  - ``hf_energy``: share of the spectral energy (mean removed) above half the
    Nyquist frequency (fine detail versus blobs);
  - ``total_variation``: mean absolute difference of neighbouring pixels, in
    [0, 1] units (edges and texture);
* ``saturated``: the share of the ascent's steps whose objective had no
  gradient left on the image's own unit;
* the checkpoint's own probability of the image's class (``own_prob``) and the
  largest it gives another class (``leak_prob``): circular (the images were
  made to raise that very network's unit), kept for reference, never evidence;
* ``top_jaccard``: how much each unit's top validation images changed from the
  epoch before (Jaccard of the two sets);
* against a fixed network, the judge, which does not change during training
  (in the demo a network trained apart from the reference, of another
  architecture, seed and images, so that it did not initialize the pretrained
  experiments whose images it reads; with ImageNet weights, the reference):
  - ``judge_prob``: its probability of the image's class, i.e. whether the
    features drawn are recognizable to a network that was not trained here;
  - ``judge_leak``: its largest probability of another class (leakage: class
    j's features in class i's image);
  - ``judge_similarity``: the largest cosine similarity, in its penultimate
    features, between this class's image and another class's image of the
    same epoch (features shared between classes);
  - ``restart_spread`` and ``change``: in its penultimate features, the mean
    distance between restarts of one checkpoint, and between restarts of this
    epoch and the epoch before;
  - ``change_p``, ``change_q`` and ``changed``: whether the images changed from
    the epoch before beyond the restarts' own spread, by an exact permutation
    test of the between-epoch against the within-epoch distances (every split
    of the two epochs' restarts; each restart starts from noise of its own),
    ``change_q`` its Benjamini-Hochberg adjustment over the run's class-epochs,
    ``changed`` when q < 0.05 (featevo.measures.stats);
* ``top_purity``: the share of each unit's top validation images (ranked by the
  objective the images maximized) that are of its class.

Every measure of the images is the mean over the restarts; the per-restart
values the claims test go to a second table (:func:`restart_table`).
"""

from __future__ import annotations

import logging
import io
from pathlib import Path

import numpy as np

from featevo.data.spectra import centered_power, frequencies
import pandas as pd
from PIL import Image


log = logging.getLogger("featevo.measures.metrics")

MEASURES = ("png_ratio", "hf_energy", "total_variation")


def png_ratio(img: np.ndarray) -> float:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG", optimize=True)
    return len(buf.getvalue()) / img.nbytes


def hf_energy(img: np.ndarray) -> float:
    gray = img.astype(np.float64).mean(axis=2) / 255
    power = centered_power(gray)
    total = power.sum()
    return float(power[frequencies(*gray.shape, np, norm="max") > 0.25].sum() / total) if total > 0 else 0.0


def total_variation(img: np.ndarray) -> float:
    x = img.astype(np.float64) / 255
    return float((np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2)


MEASURE = {"png_ratio": png_ratio, "hf_energy": hf_energy, "total_variation": total_variation}


def restart_complexity(d: dict) -> np.ndarray:
    """(restarts, classes, measures): each restart's image measured by :data:`MEASURES`."""
    stack = d["restart_images"] if "restart_images" in d else d["images"][None]
    return np.array([[[MEASURE[m](img) for m in MEASURES] for img in row] for row in stack], float)


def checkpoint_rows(npz: Path | dict, epoch: int, complexity: np.ndarray | None = None) -> list[dict]:
    """The measures of one checkpoint's ``classes.npz`` (a path, or its loaded arrays) that
    need no other network: pixel complexity (mean over the restarts; ``complexity``:
    :func:`restart_complexity` when already computed), the share of saturated steps,
    the checkpoint's own probabilities (``own_prob``, ``leak_prob``: read by the network
    whose units the images maximize, so circular: not evidence), and the purity of
    each unit's top validation images."""
    d = np.load(npz) if isinstance(npz, (str, Path)) else npz
    probs, units = d["probs"], d["units"]
    parts = parts_share(d["cue_probs"], d["cue_parts"], d["cue_surfaces"], units) if "cue_probs" in d else None
    complexity = restart_complexity(d) if complexity is None else complexity
    saturated = d["saturated"].mean(axis=0) if "saturated" in d else np.full(len(units), np.nan)
    rows = []
    for i, name in enumerate(d["names"]):
        others = np.delete(probs[i], units[i])
        rows.append({"epoch": epoch, "class": str(name),
                     **{m: float(complexity[:, i, j].mean()) for j, m in enumerate(MEASURES)},
                     "saturated": float(saturated[i]), "own_prob": float(probs[i, units[i]]),
                     "leak_prob": float(others.max()) if len(others) else 0.0,
                     **({"top_purity": float(d["top_purity"][i])} if "top_purity" in d else {}),
                     **({"parts_share": float(parts[i])} if parts is not None else {})})
    return rows


def parts_share(probs: np.ndarray, parts: np.ndarray, surfaces: np.ndarray, units) -> np.ndarray:
    """Per class, over the cue-conflict images of its parts in another class's colours
    (featevo.data.standin.cue_conflict): of the network's decisions among the classes'
    units that name either cue, the share that name the parts' class (Geirhos et al.
    2019's shape bias).  NaN where no decision names either."""
    decided = np.argmax(probs[:, np.asarray(units)], axis=1)  # the class whose unit is highest
    out = np.full(len(units), np.nan)
    for k in range(len(units)):
        mine = parts == k
        follows_parts = decided[mine] == k
        either = follows_parts | (decided[mine] == surfaces[mine])
        if either.any():
            out[k] = float(follows_parts[either].mean())
    return out


def fixed_network_measures(images: np.ndarray, judge, units: list[int], batch: int = 64,
                           real: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The judge's reading of (epochs, restarts, classes, H, W, 3) uint8 images (or
    (epochs, classes, H, W, 3): one restart), each (epochs, classes) unless said:

    * ``judge_prob``: its probability of the image's class, mean over restarts
      (``judge_prob_sd``: their standard deviation; ``restart_prob`` (epochs,
      restarts, classes): each restart's);
    * ``judge_leak``: its largest probability of another class, mean over restarts
      (``restart_leak``: each restart's);
    * ``judge_matrix`` (epochs, classes, classes): p(class j | image of class i);
    * ``judge_similarity``: the largest cosine similarity, in its penultimate
      features, between this class's image and another class's of the same epoch
      and restart, mean over restarts;
    * ``restart_spread``: the mean cosine distance between two restarts' images of
      the class (NaN with one restart);
    * ``change``: the mean cosine distance between a restart's image at this epoch
      and one at the epoch before (NaN at the first), comparable with the spread:
      with nothing changed between the epochs, both estimate the same distance;
    * ``change_p``: the exact permutation test of that (:func:`featevo.measures.stats.split_test`
      on the two epochs' restarts: is the between-epoch distance larger than the
      within-epoch one?), NaN at the first epoch and with fewer than 2 restarts.

    With ``real`` (the run's validation images, uint8 NHWC, and their labels, in the
    classes' order), every image is scored against them (:mod:`featevo.measures.scores`), mean
    over restarts and per restart (``restart_*``):

    * ``real_percentile``: where the image's similarity to its class's real images, in
      the judge's penultimate features, falls among the real images' own (about 0.5:
      the judge treats it as a typical real image of the class; 0: less like the class
      than any real one);
    * ``hf_ratio``: its high-frequency power over the real images' mean (1: as much
      fine detail as they have).
    """
    import torch

    from featevo.data.inputs import to_input
    from featevo.models.hooks import hooked
    from featevo.models.networks import head_name
    from featevo.measures.stats import split_test

    if images.ndim == 5:
        images = images[:, None]
    e, k, n = images.shape[:3]
    head = head_name(judge)
    feats, probs = [], []
    store = {}
    flat = images.reshape(e * k * n, *images.shape[3:])
    with hooked(judge, [head], store.__setitem__, inputs=True), torch.no_grad():
        for i in range(0, len(flat), batch):
            probs.append(judge(to_input(flat[i:i + batch], torch.device("cpu"))).float().softmax(1))
            feats.append(torch.nn.functional.normalize(store[head].float(), dim=1))
    probs = torch.cat(probs).view(e, k, n, -1)[..., torch.tensor(units)]  # (e, k, i, j): p(class j | image i)
    f = torch.cat(feats).view(e, k, n, -1)
    own = probs.diagonal(dim1=2, dim2=3)  # (e, k, n)
    others = probs.clone()
    others.diagonal(dim1=2, dim2=3).fill_(-1.0)
    leak = others.amax(3) if n > 1 else torch.zeros(e, k, n)  # (e, k, n)
    sim = f @ f.transpose(2, 3)  # (e, k, classes, classes)
    sim.diagonal(dim1=2, dim2=3).fill_(-1.0)
    per_class = f.transpose(1, 2)  # (e, n, k, d)
    within = 1 - per_class @ per_class.transpose(2, 3)  # (e, n, k, k) cosine distances
    pairs = torch.triu_indices(k, k, 1)
    spread = within[..., pairs[0], pairs[1]].mean(-1) if k > 1 else torch.full((e, n), float("nan"))
    change = torch.full((e, n), float("nan"))
    change_p = np.full((e, n), np.nan)
    for t in range(1, e):
        change[t] = (1 - per_class[t] @ per_class[t - 1].transpose(1, 2)).mean(dim=(1, 2))
        for c in range(n):
            both = torch.cat([per_class[t - 1, c], per_class[t, c]]).double()
            change_p[t, c] = split_test((1 - both @ both.T).clamp_min(0).numpy(), k).p
    scored = {}
    if real is not None:
        from featevo.measures import scores

        classes = np.tile(np.arange(n), e * k)  # flat is (epoch, restart, class)-major
        pct = scores.class_similarity(torch.cat(feats).numpy(), classes, scores.penultimate(judge, real[0])[0],
                                      np.asarray(real[1]))["percentile"].reshape(e, k, n)
        hf = scores.high_frequency_ratio(flat, real[0]).reshape(e, k, n)
        scored = {"real_percentile": pct.mean(1), "restart_percentile": pct,
                  "hf_ratio": hf.mean(1), "restart_hf": hf}
    return {**scored, "judge_prob": own.mean(1).numpy(), "judge_prob_sd": own.std(1, unbiased=False).numpy(),
            "judge_leak": leak.mean(1).numpy(), "restart_prob": own.numpy(), "restart_leak": leak.numpy(),
            "judge_matrix": probs.mean(1).numpy(),
            "judge_similarity": (sim.amax(3).mean(1) if n > 1 else torch.zeros(e, n)).numpy(),
            "restart_spread": spread.numpy(), "change": change.numpy(), "change_p": change_p}


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a | b| of two sets of indices."""
    a, b = set(a.tolist()), set(b.tolist())
    return len(a & b) / len(a | b) if a | b else 1.0


# fixed_network_measures' (epochs, restarts, classes) arrays, and their columns in the per-restart table
PER_RESTART = {"restart_prob": "judge_prob", "restart_leak": "judge_leak", "restart_percentile": "real_percentile",
               "restart_hf": "hf_ratio"}


def measure(npzs: list[Path], epochs: list[int], judge=None, units: list[int] | None = None,
            real: tuple[np.ndarray, np.ndarray] | None = None,
            ) -> tuple[pd.DataFrame, dict[int, np.ndarray], pd.DataFrame]:
    """The measures per (epoch, class), each epoch's probability matrix (the judge's with
    a judge, else the checkpoint's own), and the measures per (epoch, class, restart)
    that the claims test (:func:`restart_table`); with a judge and ``real`` (the
    validation images and labels), every image's scores against them."""
    from featevo.measures.stats import ALPHA, bh

    rows, matrices, stacks, tops, complexity = [], {}, [], [], []
    for epoch, npz in zip(epochs, npzs):
        d = dict(np.load(npz))
        complexity.append(restart_complexity(d))
        rows += checkpoint_rows(d, int(epoch), complexity[-1])
        matrices[int(epoch)] = d["probs"]
        stacks.append(d["restart_images"] if "restart_images" in d else d["images"][None])
        tops.append(d.get("top_index"))
    df = pd.DataFrame(rows)
    n = df["class"].nunique()
    if all(t is not None for t in tops) and len(tops) > 1:
        df["top_jaccard"] = [np.nan] * n + [jaccard(tops[e][i], tops[e - 1][i]) for e in range(1, len(tops))
                                            for i in range(n)]
    fixed = {}
    if judge is not None:
        if len({s.shape for s in stacks}) > 1:
            raise ValueError("the checkpoints' classes.npz hold different numbers of restarts or sizes; "
                             "rerun their visualize jobs with one visualize.restarts")
        fixed = fixed_network_measures(np.stack(stacks), judge, units, real=real)
        for e, epoch in enumerate(epochs):
            matrices[int(epoch)] = fixed["judge_matrix"][e]
        for col, values in fixed.items():
            if col != "judge_matrix" and col not in PER_RESTART:
                df[col] = values.reshape(-1)  # rows are epoch-major, classes in order, like checkpoint_rows
        # an epoch's change counts when its permutation test survives the run's correction
        df["change_q"] = bh(df["change_p"].to_numpy())
        df["changed"] = df["change_q"] < ALPHA
    return df, matrices, restart_table(epochs, list(df["class"].iloc[:n]), np.stack(complexity), fixed)


def restart_table(epochs: list[int], names: list[str], complexity: np.ndarray, fixed: dict) -> pd.DataFrame:
    """One row per (epoch, class, restart): each restart's pixel complexity and, with a
    judge, its reading (``judge_prob``, ``judge_leak``): the units the claims' tests
    resample.  ``complexity``: (epochs, restarts, classes, measures)."""
    rows = []
    for e, epoch in enumerate(epochs):
        for r in range(complexity.shape[1]):
            for c, name in enumerate(names):
                row = {"epoch": int(epoch), "class": name, "restart": r,
                       **{m: float(complexity[e, r, c, j]) for j, m in enumerate(MEASURES)}}
                row.update({col: float(fixed[key][e, r, c]) for key, col in PER_RESTART.items() if key in fixed})
                rows.append(row)
    return pd.DataFrame(rows)


def feature_metrics(npzs: list[Path], history: pd.DataFrame, judge=None, units: list[int] | None = None,
                    real: tuple[np.ndarray, np.ndarray] | None = None,
                    ) -> tuple[pd.DataFrame, dict[int, np.ndarray], pd.DataFrame]:
    """The measures per (epoch, class) with each epoch's validation accuracy, each epoch's
    probability matrix, and the measures per restart."""
    if len(npzs) != len(history):
        raise ValueError(f"{len(npzs)} classes.npz for the {len(history)} epochs of the history")
    df, matrices, restarts = measure(npzs, [int(e) for e in history["epoch"]], judge, units, real)
    return df.merge(history[["epoch", "val_acc"]], on="epoch"), matrices, restarts



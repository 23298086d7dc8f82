"""Measure what the paper argued by eye: feature complexity and feature confusion.

For every checkpoint's class visualizations (``classes.npz``):

* complexity of each image, three ways, all growing with structure:
  - ``png_ratio``: PNG-compressed size over raw size (a computable stand-in for
    Kolmogorov complexity: flat images compress well, intricate ones do not);
  - ``hf_energy``: share of the spectral energy (mean removed) above half the
    Nyquist frequency (fine detail versus blobs);
  - ``total_variation``: mean absolute difference of neighbouring pixels, in
    [0, 1] units (edges and texture);
* confusion: the checkpoint's own probability of the image's class
  (``own_prob``) and the largest probability it gives any other class
  (``leak_prob``), from the saved class-by-class probability matrix (drawn
  per epoch in the confusion figure);
* against a fixed network, the judge, which does not change during training
  (in the demo a network trained apart from the reference, of another
  architecture, seed and images, so that it did not initialize the pretrained
  experiments whose images it reads; with ImageNet weights, the reference):
  - ``judge_prob``: its probability of the image's class, i.e. whether the
    features drawn are recognizable to a network that was not trained here;
  - ``judge_similarity``: the largest cosine similarity, in its penultimate
    features, between this class's image and another class's image of the
    same epoch (features shared between classes).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from featevo.plots import save  # noqa: E402

MEASURES = ("png_ratio", "hf_energy", "total_variation")


def png_ratio(img: np.ndarray) -> float:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG", optimize=True)
    return len(buf.getvalue()) / img.nbytes


def hf_energy(img: np.ndarray) -> float:
    gray = img.astype(np.float64).mean(axis=2) / 255
    power = np.abs(np.fft.fft2(gray - gray.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(gray.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(gray.shape[1]))[None, :]
    total = power.sum()
    return float(power[np.maximum(fy, fx) > 0.25].sum() / total) if total > 0 else 0.0


def total_variation(img: np.ndarray) -> float:
    x = img.astype(np.float64) / 255
    return float((np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2)


def checkpoint_rows(npz: Path | dict, epoch: int) -> list[dict]:
    """The measures of one checkpoint's ``classes.npz`` (a path, or its loaded arrays)."""
    d = np.load(npz) if isinstance(npz, (str, Path)) else npz
    probs, units = d["probs"], d["units"]
    rows = []
    for i, (img, name) in enumerate(zip(d["images"], d["names"])):
        others = np.delete(probs[i], units[i])
        rows.append({"epoch": epoch, "class": str(name), "png_ratio": png_ratio(img), "hf_energy": hf_energy(img),
                     "total_variation": total_variation(img), "own_prob": float(probs[i, units[i]]),
                     "leak_prob": float(others.max()) if len(others) else 0.0})
    return rows


def fixed_network_measures(images: np.ndarray, judge, units: list[int], batch: int = 64) -> dict:
    """``judge_prob`` and ``judge_similarity`` of (epochs, classes, H, W, 3) uint8 images."""
    import torch

    from featevo.models import last_linear_name
    from featevo.inputs import to_input

    e, n = images.shape[:2]
    head = judge.get_submodule(last_linear_name(judge))
    feats, probs = [], []
    store = {}
    handle = head.register_forward_pre_hook(lambda m, args: store.__setitem__("x", args[0]))
    flat = images.reshape(e * n, *images.shape[2:])
    try:
        with torch.no_grad():
            for i in range(0, len(flat), batch):
                probs.append(judge(to_input(flat[i:i + batch], torch.device("cpu"))).softmax(1))
                feats.append(torch.nn.functional.normalize(store["x"], dim=1))
    finally:
        handle.remove()
    probs = torch.cat(probs).view(e, n, -1)
    f = torch.cat(feats).view(e, n, -1)
    sim = f @ f.transpose(1, 2)  # (epochs, classes, classes) cosine similarities
    sim.diagonal(dim1=1, dim2=2).fill_(-1.0)
    own = probs[:, torch.arange(n), torch.tensor(units)]
    return {"judge_prob": own.numpy(), "judge_similarity": sim.amax(dim=2).numpy() if n > 1 else np.zeros((e, n))}


def feature_metrics(npzs: list[Path], history: pd.DataFrame, judge=None, units: list[int] | None = None,
                    ) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """The measures per (epoch, class), and each epoch's probability matrix."""
    rows, matrices, images = [], {}, []
    if len(npzs) != len(history):
        raise ValueError(f"{len(npzs)} classes.npz for the {len(history)} epochs of the history")
    for epoch, npz in zip(history["epoch"], npzs):
        d = dict(np.load(npz))
        rows += checkpoint_rows(d, int(epoch))
        matrices[int(epoch)] = d["probs"]
        images.append(d["images"])
    df = pd.DataFrame(rows)
    if judge is not None:
        fixed = fixed_network_measures(np.stack(images), judge, units)
        for col, values in fixed.items():
            df[col] = values.reshape(-1)  # rows are epoch-major, classes in order, like checkpoint_rows
    return df.merge(history[["epoch", "val_acc"]], on="epoch"), matrices


def plot_confusion(matrices: dict[int, np.ndarray], names: list[str], experiment: str, outputs: list[Path],
                   max_cols: int = 8) -> None:
    """Per epoch: the checkpoint's class probabilities (columns) on each class's
    visualization (rows).  A perfect visualization set is the identity."""
    epochs = sorted(matrices)
    cols = min(max_cols, len(epochs))
    rows = -(-len(epochs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.75 * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, e in zip(axes.flat, epochs):
        m = matrices[e]
        ax.imshow(m[:, :len(names)] if m.shape[1] >= len(names) else m, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"epoch {e}", fontsize=7)
    short = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
    fig.suptitle(f"{experiment}: the checkpoint's probabilities (columns) on each class's visualization (rows)"
                 f"\n{short}; bright diagonal = each image is its own class", fontsize=8)
    fig.tight_layout()
    save(fig, outputs)


def plot(df: pd.DataFrame, experiment: str, outputs: list[Path]) -> None:
    panels = [*MEASURES, "own_prob", "leak_prob", *[c for c in ("judge_prob", "judge_similarity") if c in df]]
    fig, axes = plt.subplots(2, -(-len(panels) // 2), figsize=(3.2 * -(-len(panels) // 2), 6.2), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    axes = axes.flat
    for ax, col in zip(axes, panels):
        for name, g in df.groupby("class", sort=False):
            ax.plot(g["epoch"], g[col], "-o", ms=2, lw=1, label=name)
        # the mean over the classes: a confident judge reads each single image as 0 or 1
        mean = df.groupby("epoch", sort=True)[col].mean()
        ax.plot(mean.index, mean.values, color="k", lw=2, label="mean")
        ax.set(title=col, xlabel="epoch")
        acc = ax.twinx()  # validation accuracy beside every measure
        per_epoch = df.drop_duplicates("epoch")
        acc.plot(per_epoch["epoch"], per_epoch["val_acc"] * 100, color="0.6", ls="--", lw=1)
        acc.set_ylim(0, 100)
        acc.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{experiment}: complexity and confusion of the class visualizations per epoch "
                 "(grey dashes: validation accuracy, %)", fontsize=9)
    fig.tight_layout()
    save(fig, outputs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--npz", type=Path, nargs="+", required=True, help="classes.npz of each epoch of --history, in order")
    p.add_argument("--history", type=Path, required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--figure", type=Path, nargs="+", required=True)
    p.add_argument("--confusion", type=Path, nargs="+", help="figure of the per-epoch probability matrices")
    p.add_argument("--judge", type=Path, help="the fixed network's checkpoint (judge_prob, judge_similarity)")
    p.add_argument("--judge-units", type=int, nargs="+", help="its output unit of each class")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    judge = None
    if a.judge:
        import torch

        from featevo.checkpoint import load_model

        if a.threads:
            torch.set_num_threads(a.threads)
        judge, _ = load_model(a.judge)
        if not a.judge_units:
            p.error("--judge needs --judge-units")
    df, matrices = feature_metrics(a.npz, pd.read_csv(a.history), judge, a.judge_units)
    df.to_csv(a.csv, index=False)
    plot(df, a.experiment, a.figure)
    if a.confusion:
        names = list(dict.fromkeys(df["class"]))
        plot_confusion(matrices, names, a.experiment, a.confusion)
    last = df[df["epoch"] == df["epoch"].max()]
    print(f"[metrics] {a.experiment}: {df['epoch'].nunique()} epochs; last epoch own_prob "
          f"{last['own_prob'].round(3).tolist()} -> {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

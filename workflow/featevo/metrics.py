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
  (``leak_prob``), from the saved class-by-class probability matrix.
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


def checkpoint_rows(npz: Path, epoch: int) -> list[dict]:
    d = np.load(npz)
    probs, units = d["probs"], d["units"]
    rows = []
    for i, (img, name) in enumerate(zip(d["images"], d["names"])):
        others = np.delete(probs[i], units[i])
        rows.append({"epoch": epoch, "class": str(name), "png_ratio": png_ratio(img), "hf_energy": hf_energy(img),
                     "total_variation": total_variation(img), "own_prob": float(probs[i, units[i]]),
                     "leak_prob": float(others.max()) if len(others) else 0.0})
    return rows


def feature_metrics(viz_dir: Path, history: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for epoch in history["epoch"]:
        rows += checkpoint_rows(viz_dir / f"epoch_{int(epoch):03d}" / "classes.npz", int(epoch))
    df = pd.DataFrame(rows)
    return df.merge(history[["epoch", "val_acc"]], on="epoch")


def plot(df: pd.DataFrame, experiment: str, outputs: list[Path]) -> None:
    panels = [*MEASURES, "own_prob", "leak_prob"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, col in zip(axes, panels):
        for name, g in df.groupby("class", sort=False):
            ax.plot(g["epoch"], g[col], "-o", ms=2, lw=1, label=name)
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
    for out in outputs:
        fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viz", type=Path, required=True, help="folder with epoch_NNN/classes.npz")
    p.add_argument("--history", type=Path, required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--figure", type=Path, nargs="+", required=True)
    a = p.parse_args(argv)
    df = feature_metrics(a.viz, pd.read_csv(a.history))
    df.to_csv(a.csv, index=False)
    plot(df, a.experiment, a.figure)
    last = df[df["epoch"] == df["epoch"].max()]
    print(f"[metrics] {a.experiment}: {df['epoch'].nunique()} epochs; last epoch own_prob "
          f"{last['own_prob'].round(3).tolist()} -> {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

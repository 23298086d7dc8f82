"""The paper's figures: evolution of the class visualizations (Fig. 1, 2), the
reference network's visualization (Fig. 3), and learning curves.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from featevo.tables import table_epochs  # noqa: E402
from featevo.visualize import grid_positions  # noqa: E402


def _order_note(names: list[str]) -> str:
    if len(names) == 4:
        return "Classes from upper left (clockwise): " + ", ".join(names)
    return "Classes in reading order: " + ", ".join(names)


def _save(fig, outputs: list[Path]) -> None:
    for out in outputs:
        fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)


def evolution(history: pd.DataFrame, viz_dir: Path, experiment: str, names: list[str],
              outputs: list[Path], max_cols: int = 5) -> list[int]:
    """Composites at the table's epochs, each labelled with epoch and accuracy."""
    epochs = table_epochs(history)
    acc = history.set_index("epoch")["val_acc"]
    cols = min(max_cols, len(epochs))
    rows = math.ceil(len(epochs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, e in zip(axes.flat, epochs):
        img = np.asarray(Image.open(viz_dir / f"epoch_{e:03d}" / "composite.png"))
        ax.imshow(img, interpolation="nearest")
        ax.set_title(f"epoch {e}\nval. acc. {acc[e] * 100:.1f}%", fontsize=9)
    fig.suptitle(f"{experiment}: visualizations at each epoch where validation accuracy rose\n"
                 f"{_order_note(names)}", fontsize=9)
    _save(fig, outputs)
    return epochs


def reference(npz: Path, names: list[str], source: str, outputs: list[Path]) -> None:
    data = np.load(npz)
    images, own = data["images"], data["own_prob"]
    pos = grid_positions(len(images))
    rows, cols = max(r for r, _ in pos) + 1, max(c for _, c in pos) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for img, (r, c), name, p, unit in zip(images, pos, names, own, data["units"]):
        axes[r, c].imshow(img, interpolation="nearest")
        axes[r, c].set_title(f"{name} (unit {unit}), p={p:.2f}", fontsize=8)
    what = "VGG-16 trained on ImageNet" if source == "torchvision" else "reference network trained on every class"
    fig.suptitle(f"Visualization of the {what}, no fine-tuning\n{_order_note(names)}", fontsize=9)
    _save(fig, outputs)


def curves(histories: list[pd.DataFrame], experiments: list[str], outputs: list[Path]) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for h, name, colour in zip(histories, experiments, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        t = h[h["epoch"] >= 1]
        ax_loss.plot(t["epoch"], t["train_loss"], "--", color=colour, label=f"{name} train")
        ax_loss.plot(h["epoch"], h["val_loss"], "-o", ms=3, color=colour, label=f"{name} validation")
        ax_acc.plot(t["epoch"], t["train_acc"] * 100, "--", color=colour, label=f"{name} train")
        ax_acc.plot(h["epoch"], h["val_acc"] * 100, "-o", ms=3, color=colour, label=f"{name} validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, outputs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("evolution")
    e.add_argument("--history", type=Path, required=True)
    e.add_argument("--viz", type=Path, required=True, help="folder with epoch_NNN/composite.png")
    e.add_argument("--experiment", required=True)
    e.add_argument("--names", nargs="+", required=True)
    e.add_argument("--out", type=Path, nargs="+", required=True)
    r = sub.add_parser("reference")
    r.add_argument("--npz", type=Path, required=True)
    r.add_argument("--names", nargs="+", required=True)
    r.add_argument("--source", default="train")
    r.add_argument("--out", type=Path, nargs="+", required=True)
    c = sub.add_parser("curves")
    c.add_argument("--history", type=Path, nargs="+", required=True)
    c.add_argument("--experiments", nargs="+", required=True)
    c.add_argument("--out", type=Path, nargs="+", required=True)
    a = p.parse_args(argv)
    if a.cmd == "evolution":
        shown = evolution(pd.read_csv(a.history), a.viz, a.experiment, a.names, a.out)
        print(f"[figures] {a.experiment}: epochs {shown} -> {a.out}")
    elif a.cmd == "reference":
        reference(a.npz, a.names, a.source, a.out)
        print(f"[figures] reference -> {a.out}")
    else:
        curves([pd.read_csv(h) for h in a.history], a.experiments, a.out)
        print(f"[figures] learning curves -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

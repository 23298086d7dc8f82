"""What every figure shares, without torch: the class grid of the composites
and the one way a figure is written (matplotlib, Agg, one resolution).

matplotlib is imported on first use (:func:`pyplot`, :func:`save`) only: the
visualization jobs use the grid alone, and importing matplotlib cost each of them
0.6 s (measured)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

DPI = 150


def pyplot():
    """matplotlib's pyplot, on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, outputs: list[Path]) -> None:
    """Write fig to every output (PNG, PDF: by suffix) and close it."""
    import matplotlib.pyplot as plt

    for out in outputs:
        fig.savefig(out, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def grid_positions(n: int) -> list[tuple[int, int]]:
    """(row, col) of each class image in the composite.

    Four classes: clockwise from upper left (the paper's order: tree frog
    upper left, flamingo upper right, hamburger lower right, pool table lower
    left).  Otherwise row-major in a near-square grid.
    """
    if n == 4:
        return [(0, 0), (0, 1), (1, 1), (1, 0)]
    cols = math.ceil(math.sqrt(n))
    return [(i // cols, i % cols) for i in range(n)]


def order_note(names: list[str]) -> str:
    """The caption line that says where each class is in a composite."""
    if len(names) == 4:
        return "Classes from upper left (clockwise): " + ", ".join(names)
    return "Classes in reading order: " + ", ".join(names)


def composite(images: np.ndarray) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one picture by ``grid_positions``."""
    n, h, w, _ = images.shape
    pos = grid_positions(n)
    rows, cols = max(r for r, _ in pos) + 1, max(c for _, c in pos) + 1
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for img, (r, c) in zip(images, pos):
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return out

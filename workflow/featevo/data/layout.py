"""Where each class's image sits: the paper's composite of one image per class (2 x 2 for
four classes, clockwise from the upper left) and the grid positions it follows.
NumPy only: the visualization jobs write composites, the figures draw them."""

from __future__ import annotations

import math

import numpy as np


def composite(images: np.ndarray) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one picture by ``grid_positions``."""
    n, h, w, _ = images.shape
    pos = grid_positions(n)
    rows, cols = max(r for r, _ in pos) + 1, max(c for _, c in pos) + 1
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for img, (r, c) in zip(images, pos):
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return out


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

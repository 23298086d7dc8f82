"""What every figure shares, without torch: the class grid of the composites
and the one way a figure is written (matplotlib, Agg, one resolution).

matplotlib is imported on first use (:func:`pyplot`, :func:`save`) only: the
visualization jobs use the grid alone, and importing matplotlib cost each of them
0.6 s (measured)."""

from __future__ import annotations

from pathlib import Path


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


def order_note(names: list[str]) -> str:
    """The caption line that says where each class is in a composite."""
    if len(names) == 4:
        return "Classes from upper left (clockwise): " + ", ".join(names)
    return "Classes in reading order: " + ", ".join(names)



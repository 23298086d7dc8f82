"""Training history and the paper's accuracy tables (Tables 1 and 2).

A table lists the epochs where validation accuracy reached a new maximum, plus
the last epoch when it ended lower (as Table 2 shows epoch 20).  Written as
CSV, Markdown (with the paper's values beside ours) and LaTeX.
"""

from __future__ import annotations

import logging
import json
from pathlib import Path

import pandas as pd

log = logging.getLogger("featevo.figures.tables")

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]

# The paper's published validation accuracy (%), epoch -> value: Table 1 (VGG-16 from
# scratch) and Table 2 (from ImageNet weights).  Facts of the paper, not settings: an
# experiment whose table is named table1 or table2 shows them beside its own
# (experiments.*.paper gives other numbers to compare with).
PUBLISHED = {
    "table1": {1: 60, 2: 80, 4: 83, 6: 88, 8: 89, 12: 90, 13: 91, 18: 92, 23: 93},
    "table2": {1: 59, 2: 89, 6: 91, 7: 95, 8: 96, 14: 96, 20: 93},
}


def read_history(metrics_files: list[Path]) -> pd.DataFrame:
    rows = [json.loads(Path(f).read_text()) for f in metrics_files]
    df = pd.DataFrame(rows).sort_values("epoch").reset_index(drop=True)
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise ValueError(f"metrics files lack {missing}")
    if df["epoch"].duplicated().any():
        raise ValueError(f"an epoch appears twice in {metrics_files}")
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


def across_seeds(histories: list[pd.DataFrame], seeds: list[int]) -> pd.DataFrame:
    """One history per epoch: the mean validation accuracy over the seeds (the
    table's epochs are chosen on it), its spread, and each seed's value."""
    if len(histories) != len(seeds):
        raise ValueError(f"{len(histories)} histories for {len(seeds)} seeds")
    epochs = [set(h["epoch"]) for h in histories]
    if any(e != epochs[0] for e in epochs):
        raise ValueError("the seeds' histories cover different epochs")
    acc = pd.concat([h.set_index("epoch")["val_acc"].rename(f"val_acc_seed{s}") for h, s in zip(histories, seeds)],
                    axis=1).sort_index()
    # the other columns (train loss and accuracy, validation loss): averaged too
    cols = {c: pd.concat([h.set_index("epoch")[c] for h in histories], axis=1).mean(axis=1)
            for c in COLUMNS if c not in ("epoch", "val_acc")}
    out = pd.DataFrame({"val_acc": acc.mean(axis=1), "val_acc_std": acc.std(axis=1, ddof=1).fillna(0.0),
                        "val_acc_min": acc.min(axis=1), "val_acc_max": acc.max(axis=1), **cols})
    out = pd.concat([out, acc], axis=1).rename_axis("epoch").reset_index()
    return out


def table_epochs(history: pd.DataFrame) -> list[int]:
    """Epochs (from 1) where val_acc beat every earlier epoch, plus the last if lower."""
    h = history[history["epoch"] >= 1].sort_values("epoch")
    chosen, best = [], float("-inf")
    for epoch, acc in zip(h["epoch"], h["val_acc"]):
        if acc > best:
            chosen.append(int(epoch))
            best = acc
    if len(h) and h["val_acc"].iloc[-1] < best:
        chosen.append(int(h["epoch"].iloc[-1]))
    return chosen


def accuracy_table(history: pd.DataFrame) -> pd.DataFrame:
    epochs = table_epochs(history)
    h = history.set_index("epoch").loc[epochs]
    best = h["val_acc"].cummax()
    table = pd.DataFrame({
        "epoch": epochs,
        "val_acc": h["val_acc"].to_numpy(),
        "val_acc_percent": (h["val_acc"] * 100).round(1).to_numpy(),
        "why": ["new maximum" if a >= b else "last epoch" for a, b in zip(h["val_acc"], best)],
    })
    spread = [c for c in h.columns if c.startswith("val_acc_")]  # across seeds, when there are several
    for c in spread:
        table[c] = h[c].to_numpy()
    return table


def _cell(history: pd.DataFrame, epoch: int) -> str:
    """'93.5%', or with several seeds '93.5 ± 1.2% (92.7 / 94.3)'."""
    row = history.set_index("epoch").loc[epoch]
    seeds = [c for c in history.columns if c.startswith("val_acc_seed")]
    if len(seeds) < 2:
        return f"{row['val_acc'] * 100:.1f}%"
    each = " / ".join(f"{row[c] * 100:.1f}" for c in seeds)
    return f"{row['val_acc'] * 100:.1f} ± {row['val_acc_std'] * 100:.1f}% ({each})"


def markdown(table: pd.DataFrame, history: pd.DataFrame, experiment: str,
             paper: dict[int, float] | None) -> str:
    ours = history.set_index("epoch")["val_acc"] * 100
    seeds = [c.removeprefix("val_acc_seed") for c in history.columns if c.startswith("val_acc_seed")]
    over = (f" Mean ± standard deviation over seeds {', '.join(seeds)} (each seed's value in brackets); the "
            "epochs are chosen on the mean." if len(seeds) > 1 else "")
    lines = [f"## Validation accuracy: {experiment}", "",
             "Epochs where validation accuracy reached a new maximum, and the last epoch if it ended lower "
             "(column why; a row without one is an epoch of the paper's table only)." + over + " "
             + ("The paper's value is shown at the epochs its table lists." if paper else ""), ""]
    rows = sorted(set(table["epoch"]) | set(paper or {}))
    head = "| epoch | ours | why |" + (" paper |" if paper else "")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    why = dict(zip(table["epoch"], table["why"]))
    for e in rows:
        cell = _cell(history, e) if e in ours.index else "–"
        row = f"| {e} | {cell} | {why.get(e, '')} |"
        if paper:
            row += f" {paper[e]:g}% |" if e in paper else " – |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def latex(table: pd.DataFrame, caption: str) -> str:
    if "val_acc_std" in table and table.filter(like="val_acc_seed").shape[1] > 1:
        cells = [f"{v:.0f}$\\pm${sd * 100:.0f}\\%" for v, sd in zip(table["val_acc_percent"], table["val_acc_std"])]
    else:
        cells = [f"{v:.0f}\\%" for v in table["val_acc_percent"]]
    wide = pd.DataFrame([cells],
                        columns=[str(e) for e in table["epoch"]], index=["Validation Accuracy"])
    wide.columns.name = "Epoch"
    return wide.to_latex(caption=caption, position="h", column_format="l" + "c" * len(table))

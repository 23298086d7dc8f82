"""Training history and the paper's accuracy tables (Tables 1 and 2).

A table lists the epochs where validation accuracy reached a new maximum, plus
the last epoch when it ended lower (as Table 2 shows epoch 20).  Written as
CSV, Markdown (with the paper's values beside ours) and LaTeX.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def read_history(metrics_files: list[Path]) -> pd.DataFrame:
    rows = [json.loads(Path(f).read_text()) for f in metrics_files]
    df = pd.DataFrame(rows).sort_values("epoch").reset_index(drop=True)
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise ValueError(f"metrics files lack {missing}")
    if df["epoch"].duplicated().any():
        raise ValueError(f"an epoch appears twice in {metrics_files}")
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


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
    return pd.DataFrame({
        "epoch": epochs,
        "val_acc": h["val_acc"].to_numpy(),
        "val_acc_percent": (h["val_acc"] * 100).round(1).to_numpy(),
        "why": ["new maximum" if a >= b else "last epoch" for a, b in zip(h["val_acc"], best)],
    })


def markdown(table: pd.DataFrame, history: pd.DataFrame, experiment: str,
             paper: dict[int, float] | None) -> str:
    ours = history.set_index("epoch")["val_acc"] * 100
    lines = [f"## Validation accuracy: {experiment}", "",
             "Epochs where validation accuracy reached a new maximum, and the last epoch if it ended lower "
             "(marked *). "
             + ("The paper's value is shown at the epochs its table lists." if paper else ""), ""]
    rows = sorted(set(table["epoch"]) | set(paper or {}))
    head = "| epoch | ours | in our table |" + (" paper |" if paper else "")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    chosen = set(table["epoch"])
    for e in rows:
        cell = f"{ours[e]:.1f}%" if e in ours.index else "–"
        mark = "*" if e in chosen else ""
        row = f"| {e} | {cell} | {mark} |"
        if paper:
            row += f" {paper[e]:g}% |" if e in paper else " – |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def latex(table: pd.DataFrame, caption: str) -> str:
    wide = pd.DataFrame([[f"{v:.0f}\\%" for v in table["val_acc_percent"]]],
                        columns=[str(e) for e in table["epoch"]], index=["Validation Accuracy"])
    wide.columns.name = "Epoch"
    return wide.to_latex(caption=caption, position="h", column_format="l" + "c" * len(table))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("history", help="collect per-epoch metrics into one CSV")
    h.add_argument("--metrics", type=Path, nargs="+", required=True)
    h.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table", help="the paper's table from a history CSV")
    t.add_argument("--history", type=Path, required=True)
    t.add_argument("--experiment", required=True)
    t.add_argument("--paper-epochs", type=int, nargs="*", default=[])
    t.add_argument("--paper-acc", type=float, nargs="*", default=[])
    t.add_argument("--out", type=Path, nargs=3, required=True, metavar=("CSV", "MD", "TEX"))
    a = p.parse_args(argv)
    if a.cmd == "history":
        df = read_history(a.metrics)
        df.to_csv(a.out, index=False)
        print(f"[tables] {len(df)} epochs -> {a.out}")
        return 0
    if len(a.paper_epochs) != len(a.paper_acc):
        p.error("--paper-epochs and --paper-acc differ in length")
    history = pd.read_csv(a.history)
    table = accuracy_table(history)
    paper = dict(zip(a.paper_epochs, a.paper_acc)) or None
    csv, md, tex = a.out
    table.to_csv(csv, index=False)
    Path(md).write_text(markdown(table, history, a.experiment, paper))
    Path(tex).write_text(latex(table, f"Validation accuracy during training ({a.experiment})."))
    print(f"[tables] {a.experiment}: epochs {table['epoch'].tolist()} -> {csv}, {md}, {tex}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training history and the paper's accuracy tables (Tables 1 and 2).

The command line of ``featevo tables``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.figures.tables`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from featevo.figures.tables import (
    PUBLISHED,
    accuracy_table,
    across_seeds,
    latex,
    markdown,
    read_history,
)
from featevo.stages import read_settings, settings_argument, stage_parser

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo tables's command line: paths and names as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("history", help="collect per-epoch metrics into one CSV")
    h.add_argument("--metrics", type=Path, nargs="+", required=True)
    h.add_argument("--out", type=Path, required=True)
    settings_argument(h, "tables history")
    t = sub.add_parser("table", help="the paper's table from a history CSV")
    t.add_argument("--history", type=Path, nargs="+", required=True, help="one per seed (featevo.config.plan.seeds_of)")
    t.add_argument("--experiment", required=True, help="the experiment whose table it is")
    t.add_argument("--table", required=True, help="the table's name: table1 and table2 are the paper's (PUBLISHED)")
    settings_argument(t, "tables table")
    t.add_argument("--out", type=Path, nargs=3, required=True, metavar=("CSV", "MD", "TEX"))
    return p


def main(argv: list[str] | None = None) -> int:
    from featevo.config.plan import seeds_of

    p = parser()
    a = p.parse_args(argv)
    if a.cmd == "history":
        read_settings(a.settings, "tables history")
        df = read_history(a.metrics)
        df.to_csv(a.out, index=False)
        log.info(f"{len(df)} epochs -> {a.out}")
        return 0
    s = read_settings(a.settings, "tables table", exp=a.experiment)
    seeds = seeds_of(s, a.experiment)
    if len(seeds) != len(a.history):
        p.error(f"{len(a.history)} histories for the seeds {seeds} of {a.experiment}")
    given = s.experiments[a.experiment].get("paper")
    if given and len(given.epochs) != len(given.val_acc):
        p.error(f"experiments.{a.experiment}.paper: epochs and val_acc differ in length")
    history = across_seeds([pd.read_csv(h) for h in a.history], seeds)
    table = accuracy_table(history)
    paper = (dict(zip(map(int, given.epochs), map(float, given.val_acc))) if given else {}) or PUBLISHED.get(a.table)
    csv, md, tex = a.out
    table.to_csv(csv, index=False)
    Path(md).write_text(markdown(table, history, a.experiment, paper))
    Path(tex).write_text(latex(table, f"Validation accuracy during training ({a.experiment})."))
    log.info(f"{a.experiment}: epochs {table['epoch'].tolist()} -> {csv}, {md}, {tex}")
    return 0

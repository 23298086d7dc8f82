"""Measure what the paper argued by eye: feature complexity and feature confusion.

The command line of ``featevo metrics``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.measures.metrics`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from featevo.config.plan import judge_units
from featevo.figures.measures import metrics_figure, plot_confusion
from featevo.measures.metrics import feature_metrics, measure
from featevo.stages import (
    read_settings,
    settings_argument,
    stage_parser,
    threads_argument,
)

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo metrics's command line: paths and the label as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    p.add_argument("--npz", type=Path, nargs="+", required=True, help="classes.npz of each epoch of --history, in order")
    p.add_argument("--history", type=Path, help="the experiment's history; without it, one network's npz (Fig. 3)")
    p.add_argument("--experiment", required=True, help="a label: the experiment and seed (or reference)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--figure", type=Path, nargs="+", help="the measures per epoch (with --history)")
    p.add_argument("--confusion", type=Path, nargs="+", help="figure of the per-epoch probability matrices")
    p.add_argument("--judge", type=Path, help="the fixed network's checkpoint (judge_* columns)")
    settings_argument(p, "metrics")
    p.add_argument("--restarts-csv", type=Path, help="the measures of every restart (the claims' tests)")
    p.add_argument("--floor", type=Path, help="the judge's floor (featevo.measures.judge), drawn in the figure")
    p.add_argument("--val", type=Path, help="a folder of featevo extract: every image scored against its validation "
                   "images (real_percentile, hf_ratio; with --judge)")
    threads_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    s = read_settings(a.settings, "metrics")
    judge, units = None, None
    if a.judge:
        from featevo.jobs.device import set_threads
        from featevo.models.checkpoint import load_model

        set_threads(a.threads)
        judge, _ = load_model(a.judge)
        units = judge_units(s)
    real = None
    if a.val is not None and judge is not None:
        from featevo.data.inputs import Subset

        val = Subset(a.val, "val")
        real = (val.images, val.labels)
    if a.history is None:
        if len(a.npz) != 1:
            p.error("without --history, one --npz")
        df, _, restarts = measure(a.npz, [0], judge, units, real)
        df.drop(columns=["epoch"]).to_csv(a.csv, index=False)
        if a.restarts_csv:
            restarts.drop(columns=["epoch"]).to_csv(a.restarts_csv, index=False)
        log.info(f"{a.experiment}: judge p(own class) "
                 f"{df['judge_prob'].round(3).tolist() if 'judge_prob' in df else 'n/a'} -> {a.csv}")
        return 0
    df, matrices, restarts = feature_metrics(a.npz, pd.read_csv(a.history), judge, units, real)
    df.to_csv(a.csv, index=False)
    if a.restarts_csv:
        restarts.to_csv(a.restarts_csv, index=False)
    if a.figure:
        metrics_figure(df, a.experiment, a.figure, pd.read_csv(a.floor) if a.floor else None)
    if a.confusion:
        names = list(dict.fromkeys(df["class"]))
        plot_confusion(matrices, names, a.experiment, a.confusion, judged=judge is not None)
    last = df[df["epoch"] == df["epoch"].max()]
    col = "judge_prob" if "judge_prob" in df else "own_prob"
    log.info(f"{a.experiment}: {df['epoch'].nunique()} epochs; last epoch {col} "
             f"{last[col].round(3).tolist()} -> {a.csv}")
    return 0

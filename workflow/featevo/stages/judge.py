"""The judge's floor: what its readings are worth before any of them is evidence.

The command line of ``featevo judge``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.measures.judge`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from featevo.measures.judge import floor
from featevo.stages import (
    read_settings,
    settings_argument,
    stage_parser,
    threads_argument,
)

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo judge's command line: paths as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    p.add_argument("--judge", type=Path, required=True, help="the judge's checkpoint")
    p.add_argument("--val", type=Path, required=True, help="the run's folder of featevo extract (its val split)")
    settings_argument(p, "judge")
    p.add_argument("--out", type=Path, required=True)
    threads_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from featevo.config.plan import judge_units, names
    from featevo.data.inputs import Subset
    from featevo.models.checkpoint import load_model

    a = parser().parse_args(argv)
    s = read_settings(a.settings, "judge")
    from featevo.jobs.device import set_threads

    set_threads(a.threads)
    judge, _ = load_model(a.judge)
    val = Subset(a.val, "val")
    df = floor(judge, judge_units(s), names(s.data), val.images, val.labels, s.visualize, s.data.image_size,
               s.judge.min_accuracy)
    df.to_csv(a.out, index=False)
    summary = df[df["class"] == "all"].iloc[0]
    log.info(f"judge accuracy {summary['accuracy']:.3f} on {summary['val_images']} validation images "
             f"(chance {summary['chance']:.2f}, needed {summary['min_accuracy']:.2f}: "
             f"{'testable' if summary['testable'] else 'NOT testable'}); p(class | starting noise) "
             f"{dict(zip(df['class'][:-1], df['noise_prob'][:-1].round(3)))} -> {a.out}")
    return 0


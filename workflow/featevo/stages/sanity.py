"""The sanity check: what every measure reads for a network that learned nothing.

The command line of ``featevo sanity``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.measures.sanity`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from featevo.figures.measures import sanity_figure
from featevo.measures.sanity import cmd_measure, cmd_randomize
from featevo.stages import (
    read_settings,
    settings_argument,
    stage_parser,
    threads_argument,
)


def parser() -> argparse.ArgumentParser:
    """featevo sanity's command line: paths as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("randomize", help="the last checkpoint, re-initialized at each level")
    r.add_argument("--checkpoint", type=Path, required=True)
    r.add_argument("--out", type=Path, nargs="+", required=True, help="one checkpoint per level of sanity.levels")
    settings_argument(r, "sanity randomize")
    m = sub.add_parser("measure", help="the trained and re-initialized networks' images and layers, side by side")
    m.add_argument("--npz", type=Path, nargs="+", required=True,
                   help="per experiment: the trained last epoch's classes.npz, then each level's")
    m.add_argument("--represent", type=Path, nargs="+", required=True, help="the same, their represent.npz")
    m.add_argument("--judge", type=Path, required=True)
    settings_argument(m, "sanity measure")
    m.add_argument("--csv", type=Path, required=True)
    m.add_argument("--layers-csv", type=Path, required=True)
    m.add_argument("--figure", type=Path, nargs="+", required=True)
    threads_argument(m)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if getattr(a, "threads", None):
        from featevo.jobs.device import set_threads

        set_threads(a.threads)
    a.settings = read_settings(a.settings, f"sanity {a.cmd}")
    if a.cmd == "randomize":
        cmd_randomize(a)
    else:
        shown, levels = cmd_measure(a)
        sanity_figure(shown, levels, a.figure)
    return 0


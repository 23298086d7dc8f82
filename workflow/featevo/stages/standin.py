"""Procedural stand-in for ImageNet, written in ImageNet's training layout.

The command line of ``featevo standin``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.data.standin`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from featevo.config.plan import SUBSETS as POOLS
from featevo.data.standin import write_standin
from featevo.stages import read_settings, settings_argument, stage_parser

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo standin's command line: a folder per pool, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    for pool in POOLS:
        p.add_argument(f"--{pool}", type=Path, help=f"the {pool} pool's root folder (<wnid>/<wnid>_<n>.JPEG)")
    settings_argument(p, "standin")
    p.add_argument("--processes", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    from featevo.config.plan import standin_pool

    a = parser().parse_args(argv)
    s = read_settings(a.settings, "standin")
    for pool in POOLS:  # one after the other, each with every process
        out = getattr(a, pool)
        if out is None:
            continue
        wnids, per_class, seed = standin_pool(s, pool)
        n = write_standin(out, wnids, per_class, s.standin.image_size, seed, s.standin.clutter,
                          processes=a.processes, log=log.info, palette=s.standin.palette, tilt=s.standin.tilt)
        log.info(f"wrote {n} images under {out}")
    return 0

"""Positive controls: images of known complexity, ordered by each complexity measure.

The command line of ``featevo controls``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.measures.controls`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from featevo.measures.controls import complexity_controls, known_complexity
from featevo.stages import read_settings, settings_argument, stage_parser

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo controls's command line: the output as a flag, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    settings_argument(p, "controls")
    p.add_argument("--out", type=Path, required=True, help="CSV: one row per measure")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    s = read_settings(a.settings, "controls")
    c = s.controls
    images, counts = known_complexity(c.parts, c.images_per_count, s.data.image_size, c.seed)
    df = complexity_controls(images, counts)
    df.to_csv(a.out, index=False)
    for r in df.itertuples():
        log.info(f"{r.measure}: rho {r.rho:.2f} with the number of parts (p {r.p:.3g}; {r.means_by_parts}): "
                 f"{'passes' if r.passes else 'FAILS: no verdict rests on it'}")
    return 0

"""The stand-in's cue-conflict images: each class's parts painted in another's colours.

The command line of ``featevo cues``: its arguments and its main, on
:mod:`featevo.stages` (the library is :func:`featevo.data.standin.cue_conflict`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from featevo.config.plan import class_ids, names
from featevo.data.standin import as_extracted, cue_conflict
from featevo.stages import read_settings, settings_argument, stage_parser

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo cues's command line: the output as a flag, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    settings_argument(p, "cues")
    p.add_argument("--out", type=Path, required=True, help=".npz: images, parts, surfaces, names")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    s = read_settings(a.settings, "cues")
    if s.data.source != "standin":
        p.error("the cue-conflict images are drawn by the stand-in (data.source: standin)")
    drawn, parts, surfaces = cue_conflict(class_ids(s.data), s.controls.cue_conflict, s.standin.image_size,
                                          s.standin.seed)
    # through a JPEG and the extraction's decoding, as the network's own images came to it
    images = as_extracted(drawn, s.data.image_size, s.data.resize)
    np.savez_compressed(a.out, images=images, parts=parts, surfaces=surfaces,
                        names=np.asarray(names(s.data)))
    log.info(f"{len(images)} cue-conflict images ({s.controls.cue_conflict} per ordered pair of "
             f"{len(names(s.data))} classes) -> {a.out}")
    return 0

"""Extract the class subset: pick images, split, decode and resize once.

The command line of ``featevo extract``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.data.imagenet`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from featevo.config.plan import SUBSETS
from featevo.data.imagenet import ExtractionError, extract
from featevo.stages import read_settings, settings_argument, stage_parser

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo extract's command line: paths and the subset as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    p.add_argument("--subset", required=True, choices=SUBSETS, help="the experiments', the reference's or the judge's")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    settings_argument(p, "extract <subset>")
    p.add_argument("--val-images", type=Path, help="ILSVRC2012's validation images (data.validation: ilsvrc_val)")
    p.add_argument("--val-labels", type=Path, help="their labels: LOC_val_solution.csv or the devkit's ground truth")
    p.add_argument("--exclude", type=Path, help="another subset's manifest.csv: none of its images are taken")
    p.add_argument("--threads", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    from featevo.config.plan import subset_spec

    a = parser().parse_args(argv)
    s = read_settings(a.settings, f"extract {a.subset}")
    d = s.data
    wnids, per_class, val_per_class = subset_spec(s, a.subset)
    if a.subset == "main" and d.validation == "ilsvrc_val" and a.val_images is None:
        raise SystemExit("error: data.validation is ilsvrc_val: give --val-images and --val-labels")
    try:
        extract(a.input, a.out, wnids, per_class=per_class, val_per_class=val_per_class, size=d.image_size,
                seed=d.seed, layout="folder" if d.source == "folder" else d.layout, resize=d.resize,
                skip_unreadable=d.skip_unreadable, threads=a.threads, exif=d.exif_orientation, val_images=a.val_images,
                val_labels_file=a.val_labels, exclude=a.exclude, log=log.info)
    except ExtractionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

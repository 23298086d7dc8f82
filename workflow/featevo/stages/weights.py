"""Import torchvision's ImageNet weights of ``model.arch`` as a featevo checkpoint.

The command line of ``featevo weights``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.models.weights`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from featevo.models.weights import WeightsError, import_weights
from featevo.stages import read_settings, settings_argument, stage_parser

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo weights's command line: paths as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)
    settings_argument(p, "weights")
    return p


def main(argv: list[str] | None = None) -> int:

    a = parser().parse_args(argv)
    s = read_settings(a.settings, "weights")
    try:
        info = import_weights(s.reference.weights, a.out, s.reference.sha256, s.model.arch, s.data.image_size)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    a.metrics.write_text(json.dumps(info, indent=1) + "\n")
    log.info(f"{info['source']} (sha256 {info['sha256'][:12]}...) -> {a.out}")
    return 0

"""What changed in the network itself, layer by layer: linear CKA over the epochs.

The command line of ``featevo represent``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.measures.represent`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from featevo.figures.measures import cka_figure
from featevo.measures.represent import _seed, compare, settle_epochs
from featevo.stages import read_settings, settings_argument, stage_parser

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo represent's command line: paths and the experiment (a wildcard) as flags;
    ``--settings`` reads nothing (what was read is in each .npz, written by the visualize jobs)."""
    p = stage_parser(__doc__)
    p.add_argument("--npz", type=Path, nargs="+", required=True,
                   help="represent.npz of every epoch and seed of one experiment (each says which)")
    p.add_argument("--experiment", required=True, help="a wildcard: the experiment's name")
    p.add_argument("--csv", type=Path, required=True, help="per seed, epoch and layer")
    p.add_argument("--layers-csv", type=Path, required=True, help="per seed and layer: when it settled")
    p.add_argument("--figure", type=Path, nargs="+", required=True)
    settings_argument(p, "represent")
    return p


def main(argv: list[str] | None = None) -> int:

    p = parser()
    a = p.parse_args(argv)
    read_settings(a.settings, "represent")  # refuses what the stage does not read
    runs: dict[int, dict[int, dict]] = {}
    for f in a.npz:
        d = dict(np.load(f))
        runs.setdefault(_seed(str(d["key"])), {})[int(d["epoch"])] = d
    epochs = sorted(next(iter(runs.values())))
    if any(sorted(r) != epochs for r in runs.values()):
        p.error(f"the seeds have different epochs: { {s: sorted(r) for s, r in runs.items()} }")
    ordered = {s: [r[e] for e in epochs] for s, r in sorted(runs.items())}
    df = compare(ordered, epochs)
    df.insert(0, "experiment", a.experiment)
    df.to_csv(a.csv, index=False)
    settle = settle_epochs(df, ordered, epochs)
    settle.insert(0, "experiment", a.experiment)
    settle.to_csv(a.layers_csv, index=False)
    cka_figure(df, a.experiment, a.figure)
    last = df[df["epoch"] == df["epoch"].max()].groupby("layer", sort=False)["cka_start"].mean()
    log.info(f"{a.experiment}: CKA of the last epoch with the start per layer {last.round(3).to_dict()}; "
             f"settled from epoch {settle.groupby('layer', sort=False)['settle_epoch'].mean().to_dict()}")
    return 0


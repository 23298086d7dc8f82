"""Training: epoch 0 (initial weights), one epoch at a time, and the reference net.

The command line of ``featevo train``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.models.train`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from featevo.data.inputs import subset_classes
from featevo.models.train import cmd_epoch, cmd_import, cmd_init, cmd_reference
from featevo.stages import (
    read_settings,
    settings_argument,
    stage_parser,
    threads_argument,
)


def _common(p: argparse.ArgumentParser, reads: str, seed: bool = True) -> None:
    p.add_argument("--data", type=Path, required=True, help="folder written by featevo extract (its manifest "
                   "gives the network's classes, in label order)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="JSON file for this checkpoint's metrics")
    if seed:
        p.add_argument("--seed", type=int, required=True, help="this network's seed (an experiment's seed wildcard)")
    settings_argument(p, reads)
    threads_argument(p)


def parser() -> argparse.ArgumentParser:
    """featevo train's command line: paths and wildcards as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    init = sub.add_parser("init", help="write epoch 0")
    _common(init, "train init")
    init.add_argument("--from-checkpoint", type=Path, help="initialize from this network (all but the head)")
    ep = sub.add_parser("epoch", help="train checkpoint e-1 for one epoch")
    _common(ep, "train epoch")
    ep.add_argument("--experiment", required=True, help="the experiment (its freeze setting; a wildcard)")
    ep.add_argument("--previous", type=Path, required=True)
    ep.add_argument("--previous-optim", type=Path, default=None,
                    help="optimizer state of the previous epoch (none for epoch 0, whose state is fresh)")
    ep.add_argument("--optim-out", type=Path, required=True, help="where this epoch's optimizer state goes")
    imp = sub.add_parser("import", help="one checkpoint of your own training run (experiments.*.checkpoints)")
    _common(imp, "train import")
    which = imp.add_mutually_exclusive_group(required=True)
    which.add_argument("--source", type=Path, help="a state dict, or a Lightning checkpoint")
    which.add_argument("--checkpoints", help="experiments.*.checkpoints: a path with {epoch}, filled in with --epoch")
    imp.add_argument("--epoch", type=int, required=True)
    ref = sub.add_parser("reference", help="train the demo's reference network (or the judge) on every class")
    _common(ref, "train reference", seed=False)
    ref.add_argument("--net", choices=("reference", "judge"), default="reference")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.cmd == "epoch":
        a.settings = read_settings(a.settings, "train epoch", exp=a.experiment)
        a.freeze = a.settings.experiments[a.experiment].freeze
        a.labels = a.settings.experiments[a.experiment].labels
        a.tag = f"{a.experiment} seed {a.seed}"
    elif a.cmd == "reference":  # the reference takes the first seed, the judge a seed of its own
        a.settings = read_settings(a.settings, f"train {a.net}")
        a.seed = a.settings.seeds[0] if a.net == "reference" else a.settings.judge.seed
    else:
        a.settings = read_settings(a.settings, f"train {a.cmd}")
    if a.cmd != "epoch":
        a.classes = subset_classes(a.data)
    {"init": cmd_init, "epoch": cmd_epoch, "reference": cmd_reference, "import": cmd_import}[a.cmd](a)
    return 0

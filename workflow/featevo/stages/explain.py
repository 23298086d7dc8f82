"""The paper's future work, per checkpoint, on a fixed set of validation images.

The command line of ``featevo explain``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.measures.explain`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from featevo.data.inputs import Subset, fixed_images
from featevo.jobs.device import configure, pick_device
from featevo.measures.explain import METHODS, enabled, explain
from featevo.models.checkpoint import load_model
from featevo.stages import (
    read_settings,
    settings_argument,
    stage_parser,
    threads_argument,
)

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo explain's command line: paths as flags, settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="folder with val_images.npy (featevo.data.imagenet)")
    p.add_argument("--out", type=Path, required=True)
    settings_argument(p, "explain")
    threads_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    m = read_settings(a.settings, "explain").methods
    if not enabled(m):
        raise SystemExit("error: no method is enabled; set methods.<name>.enabled: true for one of "
                         + ", ".join(METHODS))
    device = pick_device(m.device)
    configure(device, a.threads, precision="fp32")  # its maps are float32 throughout
    model, ckpt = load_model(a.checkpoint)
    names = {n for n, _ in model.named_modules()}
    val = Subset(a.data, "val")
    layers = m.inversion.layers
    if m.inversion.enabled and layers is None:  # the network's own stages, as the paper's are VGG-16's
        from featevo.models.networks import ModelSpec, inversion_layers

        layers = inversion_layers(ModelSpec(**ckpt["spec"]), val.images.shape[1])
        m = m.replace(inversion=m.inversion.replace(layers=layers).to_dict())
        log.info("methods.inversion.layers null: the network's own stage ends %s", layers)
    bad = [layer for layer in layers or () if layer not in names]
    if m.inversion.enabled and bad:
        raise SystemExit(f"error: methods.inversion.layers: {bad} are not layers of {a.checkpoint}; "
                         f"e.g. {[n for n in names if n.startswith('features.')][:6]}")
    if m.inversion.enabled and not layers:
        raise SystemExit("error: methods.inversion.layers is empty")
    idx = fixed_images(val.labels, m.images_per_class, len(ckpt["classes"]), refuse="methods.images_per_class")
    log.info("%s (epoch %s) on %s: %s, %d images", a.checkpoint, ckpt["epoch"], device, enabled(m), len(idx))
    out = explain(model, val.images[idx], val.labels[idx], m, device=device, log=log.info)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, epoch=ckpt["epoch"], index=idx, **out)
    log.info("-> %s", a.out)
    return 0

"""Activation maximization of class units, as in the paper (Sec. III).

The command line of ``featevo visualize``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.optvis.render`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from featevo.config.plan import names as class_names
from featevo.config.plan import reference_units
from featevo.data.inputs import Subset
from featevo.jobs.device import configure, pick_device
from featevo.models.checkpoint import load_model
from featevo.models.networks import num_outputs
from featevo.optvis.objectives import InnerUnit
from featevo.optvis.outputs import top_images, write_outputs, write_unit_outputs
from featevo.optvis.render import activation_maximization, log
from featevo.stages import (
    read_settings,
    settings_argument,
    stage_parser,
    threads_argument,
)


def parser() -> argparse.ArgumentParser:
    """featevo visualize's command line: paths as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out-png", type=Path, required=True, help="the composite; class images go beside it")
    p.add_argument("--out-npz", type=Path, required=True)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--reference", action="store_true",
                       help="the reference network: each class's unit in it (Fig. 3), not the checkpoint's own")
    which.add_argument("--inner", action="store_true", help="the inner units of visualize.units, not the classes")
    settings_argument(p, "visualize")
    p.add_argument("--val", type=Path, help="a folder of featevo extract: each unit's top validation images")
    p.add_argument("--cues", type=Path, help="the stand-in's cue-conflict images (featevo cues): the checkpoint's "
                   "decisions on them go into --out-npz (cue_probs)")
    p.add_argument("--spectrum-images", type=Path,
                   help="a folder of featevo extract: MACO's magnitude, from its training images "
                        "(visualize.maco.spectrum: images)")
    p.add_argument("--key", default="", help="what is visualized (experiment/seed/epoch, a wildcard): seeds its "
                   "starting noise")
    p.add_argument("--represent", type=Path,
                   help="also read the checkpoint's layers on fixed validation images (featevo.measures.represent) into this "
                        ".npz (needs --val)")
    p.add_argument("--previous", type=Path, help="the epoch before's checkpoint: each layer's weight change")
    threads_argument(p)
    return p


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    s = read_settings(a.settings, "visualize units" if a.inner else "visualize reference" if a.reference else "visualize")
    v = s.visualize
    if a.inner:
        if not v.units:
            p.error("--inner: visualize.units is empty")
        units = [InnerUnit.parse(u) for u in v.units]
    else:
        names = class_names(s.data)
        units = reference_units(s) if a.reference else list(range(len(names)))
        if not units:
            p.error("--reference: the reference network has no unit of these classes (featevo.config.plan.fig3_missing)")
    device = pick_device(v.device)
    configure(device, a.threads, precision=v.precision)
    model, ckpt = load_model(a.checkpoint)
    if not a.inner:
        out_dim = num_outputs(model)
        bad = [u for u in units if not 0 <= u < out_dim]
        if bad:
            raise SystemExit(f"error: units {bad} do not exist in {a.checkpoint} ({out_dim} outputs)")
    log.info("%s (epoch %s) on %s: units %s, %s steps, objective %s; %s image, %s, transforms %s", a.checkpoint,
             ckpt["epoch"], device, [str(u) for u in units], v.steps, "mean activation" if a.inner else v.objective,
             v.parameterization, v.optimizer, v.to_dict()["transforms"])
    spectrum = Subset(a.spectrum_images, "train").images if a.spectrum_images else None
    result = activation_maximization(model, units, v, image_size=s.data.image_size, device=device,
                                     log=log.info, key=a.key, spectrum_images=spectrum)
    val = Subset(a.val, "val") if a.val is not None else None
    if a.inner:
        write_unit_outputs(result, units, a.out_png, a.out_npz, v)
        labels = [str(u) for u in units]
    else:
        top = None
        if val is not None:
            top = top_images(model, val.images, units, v.top_k, device, v.precision, v.objective)
        cues = None
        if a.cues is not None:
            from featevo.measures.scores import penultimate

            c = np.load(a.cues)
            logits = penultimate(model, c["images"], device=device)[1]
            cues = {"cue_probs": softmax(logits), "cue_parts": c["parts"], "cue_surfaces": c["surfaces"]}
        write_outputs(result, units, names, a.out_png, a.out_npz, top, None if val is None else val.labels, v,
                      extra=cues)
        labels = names
    if a.represent:
        if val is None:
            p.error("--represent needs --val")
        from featevo.measures.represent import read_checkpoint
        from featevo.models.checkpoint import load_checkpoint

        previous = load_checkpoint(a.previous)["model"] if a.previous else None
        read = read_checkpoint(model, previous, val.images, val.labels, len(labels), s.represent,
                               device=device, precision=v.precision)
        np.savez(a.represent, key=a.key, epoch=ckpt["epoch"], **read)
    saturated = result["saturated"].reshape(v.restarts, -1).mean(axis=0)
    log.info("done in %.1f s, %s restarts; share of steps with no gradient on the own unit %s -> %s",
             result["seconds"], v.restarts, dict(zip(labels, np.round(saturated, 3).tolist())), a.out_png)
    return 0

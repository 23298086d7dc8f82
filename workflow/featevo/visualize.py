"""Activation maximization of class units, as in the paper (Sec. III).

Gradient ascent on the input pixels from noise, all classes in one batch (one
image per class unit): after each step the pixels are clipped to the valid
range, and every ``median_every`` steps a ``median_size`` x ``median_size``
median filter is applied.  The objective is a class unit of the last layer:
its raw logit, its log-softmax, or its softmax probability.

Writes, per checkpoint: one PNG per class, the composite (2 x 2 for four
classes, clockwise from upper left as in the paper's figures) and an ``.npz``
with the images, the units, and the checkpoint's own class probabilities on
each image (row = image, column = class).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from featevo.checkpoint import load_model
from featevo.config_checks import slug
from featevo.device import autocast, configure, pick_device
from featevo.models import evaluated, last_linear_name
from featevo.inputs import imagenet_normalize, to_uint8
from featevo.plots import composite

OBJECTIVES = ("logit", "log_softmax", "softmax")
KEEP = ("last", "best")  # visualize.keep
# activation_maximization's arguments that are `visualize.*` settings of the workflow
SETTINGS = ("steps", "step_size", "normalize", "median_every", "median_size", "objective", "init", "init_std", "seed",
            "keep")


def _batcher_pairs(m: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort of m = 2^p inputs."""
    pairs, p = [], 1
    while p < m:
        k = p
        while k >= 1:
            for j in range(k % p, m - k, 2 * k):
                for i in range(min(k, m - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The comparators of a sorting network that the middle of n values depends on.

    Batcher's network for the next power of two, minus the comparators that
    touch the padding (as if padded with +inf, they never move anything) and
    those the middle output does not depend on; each kept comparator says
    whether its min, its max, or both are needed.  9 values: 24 comparators;
    25 values: 113.
    """
    pairs = [(i, j) for i, j in _batcher_pairs(1 << (n - 1).bit_length()) if j < n]
    need, kept = {n // 2}, []
    for i, j in reversed(pairs):
        if i in need or j in need:
            kept.append((i, j, i in need, j in need))
            need |= {i, j}
    return tuple(reversed(kept))


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel median over a size x size window, edges mirrored.

    Same as ``scipy.ndimage.median_filter(x, size=(1, 1, size, size), mode="mirror")``
    for odd sizes (torch's ``reflect`` padding is scipy's ``mirror``).  A
    min/max selection network over the shifted images, on whatever device x
    is: 5-7x faster on the CPU than ``unfold(...).median()``.
    """
    if size % 2 == 0 or size < 1:
        raise ValueError(f"visualize.median_size must be odd and positive, got {size}")
    if size == 1:
        return x
    r = size // 2
    padded = F.pad(x, (r, r, r, r), mode="reflect")
    h, w = x.shape[-2:]
    v = [padded[..., i:i + h, j:j + w] for i in range(size) for j in range(size)]
    for i, j, lo, hi in median_network(size * size):
        a, b = v[i], v[j]
        if lo:
            v[i] = torch.minimum(a, b)
        if hi:
            v[j] = torch.maximum(a, b)
    return v[size * size // 2]


def objective_values(logits: torch.Tensor, units: torch.Tensor, objective: str) -> torch.Tensor:
    """Per-image value of its own unit under the chosen objective."""
    logits = logits.float()
    if objective == "logit":
        scores = logits
    elif objective == "log_softmax":
        scores = logits.log_softmax(dim=1)
    elif objective == "softmax":
        scores = logits.softmax(dim=1)
    else:
        raise ValueError(f"visualize.objective: unknown {objective!r}; choose one of {OBJECTIVES}")
    return scores.gather(1, units.view(-1, 1)).squeeze(1)


def initial_images(n: int, image_size: int, init: str, init_std: float, seed: int) -> torch.Tensor:
    """The (n, 3, H, W) pixels in [0, 1] that the ascent starts from, seeded."""
    gen = torch.Generator().manual_seed(seed)
    if init == "noise":
        x = 0.5 + init_std * torch.randn(n, 3, image_size, image_size, generator=gen)
    elif init == "uniform":
        x = torch.rand(n, 3, image_size, image_size, generator=gen)
    elif init == "gray":
        x = torch.full((n, 3, image_size, image_size), 0.5)
    else:
        raise ValueError(f"visualize.init: unknown {init!r}; choose noise, uniform or gray")
    return x.clamp_(0, 1)


def activation_maximization(model: torch.nn.Module, units: list[int], *, image_size: int, steps: int,
                            step_size: float, normalize: str, median_every: int, median_size: int, objective: str,
                            init: str, init_std: float, seed: int, keep: str, device: torch.device | str,
                            precision: str, log=None, log_every: int = 50) -> dict:
    """Images in [0, 1] (N, 3, H, W) that maximize each unit, and the trace of the objective.

    Args:
        model: the network; its mode, gradients and place are restored on return.
        units: the output unit to maximize in each image (one image per unit).
        image_size, steps, step_size, normalize, median_every, median_size, objective,
        init, init_std, seed, precision: the ``visualize`` settings of the workflow's
            schema (which holds their defaults; see its descriptions).
        keep: ``last``, the image after the last step (the paper), or ``best``, each
            image's highest-objective one among those the median filter has just
            smoothed and the last.  Unfiltered iterates are left out: the highest
            objective of all came a few steps after a filter, as high-frequency noise
            (measured on the demo's reference: p = 1.00 on images of pure noise).
        device: where the ascent runs.
        log: called with a progress line every ``log_every`` steps, if given.

    Returns:
        ``images`` (N, 3, H, W) float in [0, 1] on the CPU, the network's ``probs`` and
        ``logits`` on them, the objective's ``trace`` (steps, N) and ``seconds``.

    ``normalize="rms"`` divides each image's gradient by its root mean square, so
    the step size is in pixel units whatever the scale of the network's logits.
    The caller's model is left as it was found (:func:`featevo.models.evaluated`).
    """
    device = torch.device(device)
    with evaluated(model, device, torch.channels_last):
        return _ascend(model, units, image_size, steps, step_size, normalize, median_every, median_size,
                       objective, init, init_std, seed, keep, device, precision, log, log_every)


def _ascend(model, units, image_size, steps, step_size, normalize, median_every, median_size, objective, init,
            init_std, seed, keep, device, precision, log, log_every) -> dict:
    if keep not in KEEP:
        raise ValueError(f"visualize.keep: unknown {keep!r}; choose one of {', '.join(KEEP)}")
    n = len(units)
    x = initial_images(n, image_size, init, init_std, seed).to(device).contiguous(memory_format=torch.channels_last)
    target = torch.tensor(units, device=device)
    trace = []
    best_x, best_value = x, torch.full((n,), -math.inf, device=device)  # keep="best": no iterate yet
    start = time.monotonic()
    for step in range(1, steps + 1):
        x.requires_grad_(True)
        with autocast(device, precision):
            logits = model(imagenet_normalize(x))
        value = objective_values(logits, target, objective)
        if keep == "best" and (not median_every or (step > 1 and (step - 1) % median_every == 0)):
            best_x, best_value = _better(best_x, best_value, x, value)
        (grad,) = torch.autograd.grad(value.sum(), x)  # images are independent: one backward for all
        with torch.no_grad():
            if normalize == "rms":
                grad = grad / (grad.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-12)
            elif normalize != "none":
                raise ValueError(f"visualize.normalize: unknown {normalize!r}; choose rms or none")
            x = (x.detach() + step_size * grad).clamp_(0.0, 1.0)  # clip to the valid pixel range
            if median_every and step % median_every == 0:
                x = median_filter(x, median_size).contiguous(memory_format=torch.channels_last)
        trace.append(value.detach().float())  # stays on the device: no host round trip per step
        if log and (step % log_every == 0 or step == steps):
            log(f"[visualize] step {step}/{steps} objective {[round(v, 3) for v in trace[-1].tolist()]} "
                f"{step / (time.monotonic() - start):.1f} steps/s")
    with torch.no_grad(), autocast(device, precision):
        final = model(imagenet_normalize(x)).float()
        if keep == "best":
            best_x, _ = _better(best_x, best_value, x, objective_values(final, target, objective))
            x = best_x
            final = model(imagenet_normalize(x)).float()
    return {
        "images": x.detach().float().cpu(),
        "probs": final.softmax(dim=1).cpu(),
        "logits": final.cpu(),
        "trace": torch.stack(trace).cpu().numpy() if trace else np.zeros((0, n), np.float32),
        "seconds": time.monotonic() - start,
    }


def _better(best_x: torch.Tensor, best_value: torch.Tensor, x: torch.Tensor, value: torch.Tensor):
    """Per image, whichever of the kept and the new iterate has the higher objective."""
    better = value.detach() > best_value
    mask = better.view(-1, 1, 1, 1)
    return torch.where(mask, x.detach(), best_x), torch.where(better, value.detach(), best_value)


# ---- outputs -------------------------------------------------------------------


def write_outputs(result: dict, units: list[int], names: list[str], out_png: Path, out_npz: Path) -> None:
    images = to_uint8(result["images"])
    out_png.parent.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images, names):
        Image.fromarray(img).save(out_png.parent / f"{slug(name)}.png")
    Image.fromarray(composite(images)).save(out_png)
    probs = result["probs"].numpy()
    np.savez_compressed(out_npz, images=images, units=np.asarray(units), names=np.asarray(names),
                        probs=probs, own_prob=probs[np.arange(len(units)), units],
                        logits=result["logits"].numpy(), trace=result["trace"])


def parser() -> argparse.ArgumentParser:
    """featevo.visualize's command line; workflow settings are required (tests/test_settings.py)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out-png", type=Path, required=True, help="the composite; class images go beside it")
    p.add_argument("--out-npz", type=Path, required=True)
    p.add_argument("--units", type=int, nargs="+", required=True, help="output unit of each class")
    p.add_argument("--names", nargs="+", required=True, help="class names, same order as --units")
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--step-size", type=float, required=True)
    p.add_argument("--normalize", required=True)
    p.add_argument("--median-every", type=int, required=True)
    p.add_argument("--median-size", type=int, required=True)
    p.add_argument("--objective", required=True, choices=OBJECTIVES)
    p.add_argument("--init", required=True)
    p.add_argument("--init-std", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--keep", required=True, choices=KEEP)  # workflow settings: the schema holds their defaults
    p.add_argument("--device", required=True)
    p.add_argument("--precision", required=True, choices=["auto", "fp32", "bf16"])
    p.add_argument("--threads", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    if len(a.units) != len(a.names):
        p.error("--units and --names must have the same length")
    device = pick_device(a.device)
    configure(device, a.threads, precision=a.precision)
    model, ckpt = load_model(a.checkpoint)
    out_dim = model.get_submodule(last_linear_name(model)).out_features
    bad = [u for u in a.units if not 0 <= u < out_dim]
    if bad:
        raise SystemExit(f"error: units {bad} do not exist in {a.checkpoint} ({out_dim} outputs)")
    print(f"[visualize] {a.checkpoint} (epoch {ckpt['epoch']}) on {device}: units {a.units}, {a.steps} steps, "
          f"objective {a.objective}", flush=True)
    result = activation_maximization(model, a.units, image_size=a.image_size, steps=a.steps, step_size=a.step_size,
                                     normalize=a.normalize, median_every=a.median_every,
                                     median_size=a.median_size, objective=a.objective, init=a.init,
                                     init_std=a.init_std, seed=a.seed, keep=a.keep, device=device,
                                     precision=a.precision,
                                     log=lambda m: print(m, flush=True))
    write_outputs(result, a.units, a.names, a.out_png, a.out_npz)
    own = result["probs"].numpy()[np.arange(len(a.units)), a.units]
    print(f"[visualize] done in {result['seconds']:.1f} s; own-class probability "
          f"{dict(zip(a.names, np.round(own, 3).tolist()))} -> {a.out_png}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

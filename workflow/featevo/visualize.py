"""Activation maximization of class units, as in the paper (Sec. III).

Gradient ascent on the input pixels from noise, all classes in one batch (one
image per class unit): after each step the pixels are clipped to the valid
range, and every ``median_every`` steps a ``median_size`` x ``median_size``
median filter is applied.  The objective is a class unit of the last layer:
its raw logit before the softmax (the paper's a_i(x)), its margin over the
largest other logit, its log-softmax, or its softmax probability.

Each checkpoint is visualized ``restarts`` times from different starting noise,
all in one batch, so that the change between epochs can be set against the
spread of the ascent itself.  Per image the share of steps whose objective had
no gradient left on its own unit is recorded (``saturated``): log-softmax and
softmax stop climbing in float32 once p rounds to 1.

Writes, per checkpoint: one PNG per class and the composite (2 x 2 for four
classes, clockwise from upper left as in the paper's figures) of the first
restart, and an ``.npz`` with every restart's images, the units, the
checkpoint's own class probabilities on each image (row = image, column =
class), and, given the validation split, each unit's top-k validation images.
"""

from __future__ import annotations

import argparse
import functools
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
from featevo.inputs import Subset, imagenet_normalize, to_input, to_uint8
from featevo.plots import composite

OBJECTIVES = ("logit", "margin", "log_softmax", "softmax")
# activation_maximization's arguments that are `visualize.*` settings of the workflow
SETTINGS = ("steps", "step_size", "normalize", "median_every", "median_size", "objective", "init", "init_std", "seed",
            "restarts")


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
    elif objective == "margin":  # own logit minus the largest other one: never flat, never capped
        own = logits.gather(1, units.view(-1, 1)).squeeze(1)
        if logits.shape[1] == 1:
            return own
        others = logits.scatter(1, units.view(-1, 1), float("-inf")).amax(dim=1)
        return own - others
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
                            init: str, init_std: float, seed: int, restarts: int, device: torch.device | str,
                            precision: str, log=None, log_every: int = 50) -> dict:
    """Images in [0, 1] that maximize each unit, ``restarts`` of each, and the trace of the objective.

    Args:
        model: the network; its mode, gradients and place are restored on return.
        units: the output unit to maximize in each image (one image per unit and restart).
        image_size, steps, step_size, normalize, median_every, median_size, objective,
        init, init_std, seed, restarts, precision: the ``visualize`` settings of the
            workflow's schema (which holds their defaults; see its descriptions).  Every
            restart starts from its own noise (one generator seeded with ``seed`` draws
            them all); the image kept is always the one after the last step (the paper).
        device: where the ascent runs.
        log: called with a progress line every ``log_every`` steps, if given.

    Returns:
        ``images`` (restarts * N, 3, H, W) float in [0, 1] on the CPU, restart-major
        (the first N are the first restart), the network's ``probs`` and ``logits`` on
        them, the objective's ``trace`` (steps, restarts * N), ``saturated`` (restarts * N):
        the share of steps whose objective had a gradient of exactly zero on the
        image's own unit, and ``seconds``.

    ``normalize="rms"`` divides each image's gradient by its root mean square, so
    the step size is in pixel units whatever the scale of the network's logits.
    The caller's model is left as it was found (:func:`featevo.models.evaluated`).
    """
    if restarts < 1:
        raise ValueError(f"visualize.restarts must be at least 1, got {restarts}")
    device = torch.device(device)
    with evaluated(model, device, torch.channels_last):
        return _ascend(model, list(units) * restarts, image_size, steps, step_size, normalize, median_every,
                       median_size, objective, init, init_std, seed, device, precision, log, log_every)


def _ascend(model, units, image_size, steps, step_size, normalize, median_every, median_size, objective, init,
            init_std, seed, device, precision, log, log_every) -> dict:
    n = len(units)
    x = initial_images(n, image_size, init, init_std, seed).to(device).contiguous(memory_format=torch.channels_last)
    target = torch.tensor(units, device=device)
    trace = []
    flat = torch.zeros(n, device=device)  # steps whose objective had no gradient on its own unit
    start = time.monotonic()
    for step in range(1, steps + 1):
        x.requires_grad_(True)
        with autocast(device, precision):
            logits = model(imagenet_normalize(x))
        value = objective_values(logits, target, objective)
        # one backward for all images (they are independent), to the pixels and to the logits
        grad, dlogits = torch.autograd.grad(value.sum(), (x, logits))
        with torch.no_grad():
            flat += dlogits.float().gather(1, target.view(-1, 1)).squeeze(1) == 0
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
                f"saturated {[round(v, 2) for v in (flat / step).tolist()]} "
                f"{step / (time.monotonic() - start):.1f} steps/s")
    with torch.no_grad(), autocast(device, precision):
        final = model(imagenet_normalize(x)).float()
    return {
        "images": x.detach().float().cpu(),
        "probs": final.softmax(dim=1).cpu(),
        "logits": final.cpu(),
        "trace": torch.stack(trace).cpu().numpy() if trace else np.zeros((0, n), np.float32),
        "saturated": (flat / max(1, steps)).cpu().numpy(),
        "seconds": time.monotonic() - start,
    }


@torch.no_grad()
def top_images(model: torch.nn.Module, images: np.ndarray, units: list[int], k: int, device: torch.device | str,
               precision: str, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N, k) of the k images (uint8 NHWC) that raise each unit most, and their logits.

    The real-image side of the synthetic one: which validation images the unit
    responds to at this checkpoint (ties broken by index, so the set is stable)."""
    device = torch.device(device)
    with evaluated(model, device, torch.channels_last):
        out = []
        for i in range(0, len(images), batch):
            with autocast(device, precision):
                out.append(model(to_input(images[i:i + batch], device)).float()[:, units].cpu())
    scores = torch.cat(out).numpy().T if out else np.zeros((len(units), 0), np.float32)  # (N, images)
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


# ---- outputs -------------------------------------------------------------------


def write_outputs(result: dict, units: list[int], names: list[str], out_png: Path, out_npz: Path,
                  top: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """The first restart's class PNGs and composite, and every restart in the ``.npz``:
    ``images`` (N, H, W, 3) and ``probs`` (N, classes) are the first restart's,
    ``restart_images`` (restarts, N, H, W, 3), ``restart_probs`` and ``saturated``
    (restarts, N) all of them; ``top_index`` / ``top_logit`` (N, k) with ``top``."""
    n = len(units)
    images = to_uint8(result["images"])
    restarts = len(images) // n
    out_png.parent.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images[:n], names):
        Image.fromarray(img).save(out_png.parent / f"{slug(name)}.png")
    Image.fromarray(composite(images[:n])).save(out_png)
    probs = result["probs"].numpy().reshape(restarts, n, -1)
    extra = {} if top is None else {"top_index": top[0], "top_logit": top[1]}
    np.savez_compressed(out_npz, images=images[:n], units=np.asarray(units), names=np.asarray(names),
                        probs=probs[0], own_prob=probs[0][np.arange(n), units],
                        restart_images=images.reshape(restarts, n, *images.shape[1:]), restart_probs=probs,
                        saturated=result["saturated"].reshape(restarts, n),
                        logits=result["logits"].numpy().reshape(restarts, n, -1)[0], trace=result["trace"], **extra)


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
    p.add_argument("--restarts", type=int, required=True)  # workflow settings: the schema holds their defaults
    p.add_argument("--val", type=Path, help="a folder of featevo.extract: each unit's top validation images")
    p.add_argument("--top-k", type=int, required=True, help="how many top validation images per unit (with --val)")
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
                                     init_std=a.init_std, seed=a.seed, restarts=a.restarts, device=device,
                                     precision=a.precision,
                                     log=lambda m: print(m, flush=True))
    top = None
    if a.val is not None:
        top = top_images(model, Subset(a.val, "val").images, a.units, a.top_k, device, a.precision)
    write_outputs(result, a.units, a.names, a.out_png, a.out_npz, top)
    saturated = result["saturated"].reshape(a.restarts, -1).mean(axis=0)
    print(f"[visualize] done in {result['seconds']:.1f} s, {a.restarts} restarts; share of steps with no gradient "
          f"on the own unit {dict(zip(a.names, np.round(saturated, 3).tolist()))} -> {a.out_png}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

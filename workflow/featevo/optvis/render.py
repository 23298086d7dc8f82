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

import logging
import time
from collections.abc import Mapping

import numpy as np
import torch

from featevo.jobs.device import autocast
from featevo.models.networks import evaluated
from featevo.data.inputs import imagenet_normalize
from featevo.jobs.progress import eta
from featevo.optvis.objectives import InnerUnit, _Inner, _Output
from featevo.optvis.optimizers import NORMALIZE, OPTIMIZERS
from featevo.optvis.param import PARAMETERIZATIONS, SPECTRA
from featevo.optvis.transforms import Transforms
from featevo.config.settings import Settings

log = logging.getLogger("featevo.optvis.render")


# visualize.init: the (n, 3, size, size) starting pixels, from a seeded generator and init_std
INITS = {
    "noise": lambda shape, std, gen: 0.5 + std * torch.randn(shape, generator=gen),
    "uniform": lambda shape, std, gen: torch.rand(shape, generator=gen),
    "gray": lambda shape, std, gen: torch.full(shape, 0.5),
}


def start_seed(seed: int, key: str) -> int:
    """The seed of one job's starting noise: ``visualize.seed`` and the job's own key (its
    experiment, training seed and epoch), so that every checkpoint's restarts start
    from noise of their own; with one seed for all, restart j started from the same
    image at every epoch, and the change between epochs was underestimated.  Without a
    key (a call from a library user): ``seed`` itself."""
    import hashlib

    if not key:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") >> 1


def initial_images(n: int, image_size: int, init: str, init_std: float, seed: int) -> torch.Tensor:
    """The (n, 3, H, W) pixels in [0, 1] that the ascent starts from, seeded (each image
    its own draw)."""
    if init not in INITS:
        raise ValueError(f"visualize.init: unknown {init!r}; choose one of {', '.join(INITS)}")
    x = INITS[init]((n, 3, image_size, image_size), init_std, torch.Generator().manual_seed(seed))
    return x.clamp_(0, 1)


def activation_maximization(model: torch.nn.Module, units: list, recipe: Mapping, *, image_size: int,
                            device: torch.device | str, log=None, log_every: int = 50, key: str = "",
                            spectrum_images: np.ndarray | None = None) -> dict:
    """Images in [0, 1] that maximize each unit, ``recipe.restarts`` of each, and the trace of the objective.

    Args:
        model: the network; its mode, gradients and place are restored on return.
        units: what each image maximizes (one image per unit and restart): output units
            (ints, the paper's class units, under ``recipe.objective``), or inner units
            (:class:`InnerUnit`, ``visualize.units``: a channel's mean activation, or one
            neuron's), all in one batch.
        recipe: the workflow's ``visualize`` section (a :class:`featevo.config.settings.Settings`
            or a mapping with its keys; the schema holds every default and says what each
            does).  Every restart starts from its own noise (one generator seeded with
            :func:`start_seed` of ``seed`` and ``key`` draws them all); the image kept is
            always the one after the last step (the paper).
        image_size: the side of the images (``data.image_size``).
        device: where the ascent runs.
        log: called with a progress line every ``log_every`` steps, if given.
        key: what this call visualizes (e.g. ``scratch/seed0/epoch3``): with ``seed`` it
            seeds the starting noise, so that no two checkpoints share their starts.
        spectrum_images: the run's training images (uint8 NHWC), whose mean amplitude
            spectrum MACO keeps with ``maco.spectrum: images``.

    Returns:
        ``images`` (restarts * N, 3, H, W) float in [0, 1] on the CPU, restart-major
        (the first N are the first restart), the objective's ``trace`` (steps, restarts * N),
        ``saturated`` (restarts * N): the share of steps whose objective had a gradient of
        exactly zero on the image's own unit (inner units: on every pixel), and ``seconds``;
        for output units the network's ``probs`` and ``logits`` on the images, for inner
        units each one's final ``activation``; with ``maco``, each image's ``attribution``
        (restarts * N, H, W): where the unit looks, the absolute gradient on the image summed
        over colours and steps, scaled to a maximum of 1.

    ``normalize="rms"`` divides each image's gradient by its root mean square, so
    the step size is in pixel units whatever the scale of the network's logits.
    The caller's model is left as it was found (:func:`featevo.models.networks.evaluated`).
    """
    r = recipe if isinstance(recipe, Settings) else Settings(recipe, "visualize")
    if r.restarts < 1:
        raise ValueError(f"visualize.restarts must be at least 1, got {r.restarts}")
    for setting, registry in (("normalize", NORMALIZE), ("parameterization", PARAMETERIZATIONS),
                          ("optimizer", OPTIMIZERS)):
        if r[setting] not in registry:
            raise ValueError(f"visualize.{setting}: unknown {r[setting]!r}; choose one of {', '.join(registry)}")
    if r.parameterization != "pixel" and r.median_every:
        raise ValueError(f"visualize.median_every: the median filter is for pixel images; set it to 0 with "
                         f"visualize.parameterization: {r.parameterization}")
    magnitude = None
    if r.parameterization == "maco":
        magnitude = SPECTRA[r.maco.spectrum](image_size, r.maco.alpha, spectrum_images)
    device = torch.device(device)
    units = list(units) * r.restarts
    inner = [isinstance(u, InnerUnit) for u in units]
    if any(inner) and not all(inner):
        raise ValueError("output units and inner units go in separate calls")
    with evaluated(model, device, torch.channels_last):
        target = _Inner(model, units) if all(inner) else _Output(torch.tensor(units, device=device), r.objective)
        try:
            return _ascend(model, target, len(units), r, image_size, device, log, log_every, key, magnitude)
        finally:
            target.close()


def _ascend(model, target, n: int, r: Settings, image_size: int, device, log, log_every: int, key: str,
            magnitude: torch.Tensor | None = None) -> dict:
    steps = r.steps
    x = initial_images(n, image_size, r.init, r.init_std, start_seed(r.seed, key)).to(device).contiguous(
        memory_format=torch.channels_last)
    # the Fourier and MACO starts, and every image's transforms, drawn from the seed's generators
    starts, moves = generators(start_seed(r.seed, key))
    param = PARAMETERIZATIONS[r.parameterization](r, n, image_size, x, starts, device, magnitude)
    optimizer = OPTIMIZERS[r.optimizer](param.tensor, r.step_size, r.normalize)
    transform = Transforms(r.transforms, image_size, moves)
    transform.plan(n, steps)  # the run's transforms drawn as each step would, built at once
    looked = torch.zeros(n, image_size, image_size, device=device) if param.attribution else None
    trace = []
    flat = torch.zeros(n, device=device)  # steps whose objective had no gradient on its own unit
    start = time.monotonic()
    for step in range(1, steps + 1):
        image = param.image()
        seen = transform(image).contiguous(memory_format=torch.channels_last) if transform else image
        with autocast(device, r.precision):
            value, watched = target.value(model, imagenet_normalize(seen))
        # one backward for all images (they are independent), to the parameters (the image, the logits)
        wanted = (param.tensor,) + ((image,) if param.attribution else ()) + (() if watched is None else (watched,))
        grads = torch.autograd.grad(value.sum(), wanted)
        with torch.no_grad():
            flat += target.flat(grads[-1], grads[0])
            optimizer.step(grads[0])
            param.project(step)
            if looked is not None:
                looked += grads[1].abs().sum(dim=1)
        trace.append(value.detach().float())  # stays on the device: no host round trip per step
        if log and (step % log_every == 0 or step == steps):
            dt = time.monotonic() - start
            log(f"step {step}/{steps} objective {[round(v, 3) for v in trace[-1].tolist()]} "
                f"saturated {[round(v, 2) for v in (flat / step).tolist()]} "
                f"{step / dt:.1f} steps/s {eta(step, steps, dt)}".rstrip())
    with torch.no_grad():
        x = param.image().detach().contiguous(memory_format=torch.channels_last)
        with autocast(device, r.precision):
            final = target.final(model, imagenet_normalize(x))
    extra = {}
    if looked is not None:
        extra["attribution"] = (looked / looked.flatten(1).amax(1).clamp(min=1e-30).view(-1, 1, 1)).cpu()
    return {
        "images": x.float().cpu(),
        **final,
        **extra,
        "trace": torch.stack(trace).cpu().numpy() if trace else np.zeros((0, n), np.float32),
        "saturated": (flat / max(1, steps)).cpu().numpy(),
        "seconds": time.monotonic() - start,
    }


# ---- outputs -------------------------------------------------------------------


def generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Two independent generators from one seed: the starts' (Fourier, MACO) and the
    transforms' (NumPy's SeedSequence spreads the seed into two unrelated ones)."""
    a, b = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(a) >> 1), torch.Generator().manual_seed(int(b) >> 1)

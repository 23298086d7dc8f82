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
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from featevo.checkpoint import load_model
from featevo.device import autocast, configure, pick_device
from featevo.models import evaluated, num_outputs
from featevo.inputs import Subset, imagenet_normalize, to_input, to_uint8
from featevo.plan import names as class_names, reference_units, slug
from featevo.plots import composite
from featevo.progress import eta
from featevo.render import NORMALIZE, OPTIMIZERS, PARAMETERIZATIONS, SPECTRA, Transforms, generators
from featevo.settings import Settings, parse

log = logging.getLogger("featevo.visualize")


def _own(scores: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    return scores.gather(1, units.view(-1, 1)).squeeze(1)


def _margin(logits: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    # own logit minus the largest other one: never flat, never capped
    own = _own(logits, units)
    if logits.shape[1] == 1:
        return own
    return own - logits.scatter(1, units.view(-1, 1), float("-inf")).amax(dim=1)


# visualize.objective: each image's value of its own unit, from the float32 logits
OBJECTIVES = {
    "logit": _own,  # the paper's a_i(x), before the softmax
    "margin": _margin,
    "log_softmax": lambda logits, units: _own(logits.log_softmax(dim=1), units),
    "softmax": lambda logits, units: _own(logits.softmax(dim=1), units),
}


def objective_values(logits: torch.Tensor, units: torch.Tensor, objective: str) -> torch.Tensor:
    """Per-image value of its own unit under the chosen objective (:data:`OBJECTIVES`)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"visualize.objective: unknown {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[objective](logits.float(), units)


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
        recipe: the workflow's ``visualize`` section (a :class:`featevo.settings.Settings`
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
    The caller's model is left as it was found (:func:`featevo.models.evaluated`).
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


class _Output:
    """Output units under an objective (the paper's class units): saturated when the
    objective's gradient on the image's own logit is exactly zero."""

    def __init__(self, target: torch.Tensor, objective: str):
        self.target, self.objective = target, objective

    def value(self, model, xn):
        logits = model(xn)
        return objective_values(logits, self.target, self.objective), logits

    def flat(self, dwatched, grad):
        return dwatched.float().gather(1, self.target.view(-1, 1)).squeeze(1) == 0

    def final(self, model, xn) -> dict:
        final = model(xn).float()
        return {"probs": final.softmax(dim=1).cpu(), "logits": final.cpu()}

    def close(self):
        pass


@dataclass(frozen=True)
class InnerUnit:
    """A unit of an inner layer (``visualize.units``): ``layer:channel`` is the channel's
    mean activation over space, ``layer:channel:y:x`` one neuron of it (``layer``: a
    module name, as torchvision's ``get_graph_node_names`` lists for modules); a linear
    layer's ``layer:index`` is its neuron."""

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None

    @classmethod
    def parse(cls, text: str) -> InnerUnit:
        parts = text.split(":")
        if len(parts) not in (2, 4) or not all(p.isdigit() for p in parts[1:]):
            raise ValueError(f"visualize.units: {text!r} is not layer:channel or layer:channel:y:x")
        return cls(parts[0], *map(int, parts[1:]))

    def __str__(self) -> str:
        return ":".join(map(str, [self.layer, self.channel] + ([self.y, self.x] if self.y is not None else [])))


class _Reached(Exception):
    pass


class _Inner:
    """Inner units read by forward hooks on their layers; the forward pass stops once
    every layer asked for has run (the layers above do not matter)."""

    def __init__(self, model, units: list[InnerUnit]):
        self.units, self.outputs = units, {}
        layers = {u.layer for u in units}
        self.handles = [model.get_submodule(name).register_forward_hook(self._hook(name, len(layers)))
                        for name in sorted(layers)]

    def _hook(self, name: str, wanted: int):
        def hook(module, inputs, output):
            # a copy: an in-place activation after the layer would change its output in place
            self.outputs[name] = output.clone()
            if len(self.outputs) == wanted:
                raise _Reached
        return hook

    def _values(self, model, xn) -> torch.Tensor:
        self.outputs = {}
        try:
            model(xn)
        except _Reached:
            pass
        out = []
        for i, u in enumerate(self.units):
            a = self.outputs[u.layer][i, u.channel].float()
            out.append(a.mean() if u.y is None else a[u.y, u.x])
        return torch.stack(out)

    def value(self, model, xn):
        return self._values(model, xn), None

    def flat(self, dwatched, grad):
        return (grad.flatten(1) == 0).all(dim=1)

    def final(self, model, xn) -> dict:
        return {"activation": self._values(model, xn).cpu()}

    def close(self):
        for h in self.handles:
            h.remove()


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


@torch.no_grad()
def top_images(model: torch.nn.Module, images: np.ndarray, units: list[int], k: int, device: torch.device | str,
               precision: str, objective: str, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N, k) of the k images (uint8 NHWC) that raise each unit's ``objective``
    most, and those values: the real-image side of the synthetic one, ranked by the very
    quantity the synthetic images maximized (with the margin as objective, the raw
    logit ranked another class's images first: seen on the demo, all nine of a unit's
    top images of another class).  Ties broken by index, so the set is stable."""
    device = torch.device(device)
    with evaluated(model, device, torch.channels_last):
        out = []
        for i in range(0, len(images), batch):
            with autocast(device, precision):
                out.append(model(to_input(images[i:i + batch], device)).float().cpu())
    if not out:
        return np.zeros((len(units), 0), int), np.zeros((len(units), 0), np.float32)
    logits = torch.cat(out)
    scores = torch.stack([objective_values(logits, torch.full((len(logits),), u), objective)
                          for u in units]).numpy()  # (N, images)
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


# ---- outputs -------------------------------------------------------------------


def recipe_entry(recipe: Mapping | None) -> dict:
    """The recipe the images were drawn with (``visualize.*``), stored beside them as one
    JSON string (``recipe``), which the figures read back (``featevo.figures.recipe_line``)."""
    if recipe is None:
        return {}
    plain = recipe.to_dict() if isinstance(recipe, Settings) else dict(recipe)
    return {"recipe": np.asarray(json.dumps(plain, sort_keys=True))}


def write_outputs(result: dict, units: list[int], names: list[str], out_png: Path, out_npz: Path,
                  top: tuple[np.ndarray, np.ndarray] | None = None, labels: np.ndarray | None = None,
                  recipe: Mapping | None = None) -> None:
    """The first restart's class PNGs and composite, and every restart in the ``.npz``:
    ``images`` (N, H, W, 3) and ``probs`` (N, classes) are the first restart's,
    ``restart_images`` (restarts, N, H, W, 3), ``restart_probs`` and ``saturated``
    (restarts, N) all of them; with ``top``, ``top_index`` / ``top_score`` (N, k): each
    unit's top validation images and their objective, and with their ``labels``,
    ``top_purity`` (N): the share of them that are of the unit's class; with MACO
    ``attribution`` (restarts, N, H, W); ``recipe`` with the recipe (:func:`recipe_entry`)."""
    n = len(units)
    images = to_uint8(result["images"])
    restarts = len(images) // n
    out_png.parent.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images[:n], names):
        Image.fromarray(img).save(out_png.parent / f"{slug(name)}.png")
    Image.fromarray(composite(images[:n])).save(out_png)
    probs = result["probs"].numpy().reshape(restarts, n, -1)
    extra = {} if top is None else {"top_index": top[0], "top_score": top[1]}
    if top is not None and labels is not None:
        extra["top_purity"] = (labels[top[0]] == np.arange(n)[:, None]).mean(axis=1)
    if "attribution" in result:  # MACO's: where each image's unit looks
        extra["attribution"] = result["attribution"].numpy().reshape(restarts, n, *images.shape[1:3])
    np.savez_compressed(out_npz, images=images[:n], units=np.asarray(units), names=np.asarray(names),
                        probs=probs[0], own_prob=probs[0][np.arange(n), units],
                        restart_images=images.reshape(restarts, n, *images.shape[1:]), restart_probs=probs,
                        saturated=result["saturated"].reshape(restarts, n),
                        logits=result["logits"].numpy().reshape(restarts, n, -1)[0], trace=result["trace"], **extra,
                        **recipe_entry(recipe))


def write_unit_outputs(result: dict, units: list[InnerUnit], out_png: Path, out_npz: Path,
                       recipe: Mapping | None = None) -> None:
    """The inner units' images of the first restart side by side (``out_png``), and in the
    ``.npz``: ``images`` (N, H, W, 3) of the first restart, ``restart_images``, ``units``
    (their names), ``activation`` and ``saturated`` (restarts, N), the ``trace``, with MACO
    ``attribution`` (restarts, N, H, W), and ``recipe`` with the recipe (:func:`recipe_entry`)."""
    n = len(units)
    images = to_uint8(result["images"])
    restarts = len(images) // n
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(list(images[:n]), axis=1)).save(out_png)
    extra = {}
    if "attribution" in result:  # MACO's: where each image's unit looks
        extra["attribution"] = result["attribution"].numpy().reshape(restarts, n, *images.shape[1:3])
    np.savez_compressed(out_npz, images=images[:n], units=np.asarray([str(u) for u in units]),
                        restart_images=images.reshape(restarts, n, *images.shape[1:]),
                        activation=result["activation"].numpy().reshape(restarts, n),
                        saturated=result["saturated"].reshape(restarts, n), trace=result["trace"], **extra,
                        **recipe_entry(recipe))


def parser() -> argparse.ArgumentParser:
    """featevo visualize's command line: paths as flags, the settings whole (``--settings``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out-png", type=Path, required=True, help="the composite; class images go beside it")
    p.add_argument("--out-npz", type=Path, required=True)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--reference", action="store_true",
                       help="the reference network: each class's unit in it (Fig. 3), not the checkpoint's own")
    which.add_argument("--inner", action="store_true", help="the inner units of visualize.units, not the classes")
    p.add_argument("--settings", default="{}",
                   help="visualize.*, data.image_size and data.classes (with --reference: what finds each class's "
                        "unit) as JSON (the rules pass them), or @FILE (a config file); the schema's defaults fill "
                        "in the rest (featevo.settings)")
    p.add_argument("--val", type=Path, help="a folder of featevo extract: each unit's top validation images")
    p.add_argument("--spectrum-images", type=Path,
                   help="a folder of featevo extract: MACO's magnitude, from its training images "
                        "(visualize.maco.spectrum: images)")
    p.add_argument("--key", default="", help="what is visualized (experiment/seed/epoch, a wildcard): seeds its "
                   "starting noise")
    p.add_argument("--represent", type=Path,
                   help="also read the checkpoint's layers on fixed validation images (featevo.represent) into this "
                        ".npz (needs --val)")
    p.add_argument("--previous", type=Path, help="the epoch before's checkpoint: each layer's weight change")
    p.add_argument("--threads", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    s = parse(a.settings, "visualize units" if a.inner else "visualize reference" if a.reference else "visualize")
    v = s.visualize
    if a.inner:
        if not v.units:
            p.error("--inner: visualize.units is empty")
        units = [InnerUnit.parse(u) for u in v.units]
    else:
        names = class_names(s.data)
        units = reference_units(s) if a.reference else list(range(len(names)))
        if not units:
            p.error("--reference: the reference network has no unit of these classes (featevo.plan.fig3_missing)")
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
        write_outputs(result, units, names, a.out_png, a.out_npz, top, None if val is None else val.labels, v)
        labels = names
    if a.represent:
        if val is None:
            p.error("--represent needs --val")
        from featevo.checkpoint import load_checkpoint
        from featevo.represent import read_checkpoint

        previous = load_checkpoint(a.previous)["model"] if a.previous else None
        read = read_checkpoint(model, previous, val.images, val.labels, len(labels), s.represent,
                               device=device, precision=v.precision)
        np.savez(a.represent, key=a.key, epoch=ckpt["epoch"], **read)
    saturated = result["saturated"].reshape(v.restarts, -1).mean(axis=0)
    log.info("done in %.1f s, %s restarts; share of steps with no gradient on the own unit %s -> %s",
             result["seconds"], v.restarts, dict(zip(labels, np.round(saturated, 3).tolist())), a.out_png)
    return 0

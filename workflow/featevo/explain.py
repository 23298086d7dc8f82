"""The paper's future work, per checkpoint, on a fixed set of validation images.

* ``saliency`` (Simonyan et al. 2014): |d logit / d pixel|, largest over the
  colour channels, with captum's ``Saliency``;
* ``occlusion`` (Zeiler & Fergus 2014): how much the true class's logit drops
  when a square of the image is set to the data mean, with captum's
  ``Occlusion``;
* ``inversion`` (Mahendran & Vedaldi 2015): the image whose features at a layer
  match the original's, from noise, with a total-variation prior; written
  here, as neither captum nor torchvision has it.

One ``.npz`` per checkpoint holds the images, their labels, the checkpoint's
class probabilities, and one array per method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from featevo import METHODS
from featevo.checkpoint import load_model
from featevo.device import configure, pick_device
from featevo.models import evaluated
from featevo.inputs import Subset, imagenet_normalize, to_pixels, to_uint8


def fixed_images(data: Subset, per_class: int, classes: int) -> np.ndarray:
    """Indices of the first ``per_class`` validation images of each class: the
    same images at every epoch, so that the maps can be compared over training."""
    out = []
    for c in range(classes):
        idx = np.flatnonzero(data.labels == c)[:per_class]
        if len(idx) < per_class:
            raise ValueError(f"methods.images_per_class ({per_class}) is more than the {len(idx)} validation "
                             f"images of class {c}; lower it or raise data.val_per_class")
        out.append(idx)
    return np.concatenate(out)


class Normalized(torch.nn.Module):
    """The network on pixels in [0, 1]: attributions are then in pixel space."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(imagenet_normalize(x))


def saliency(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    from captum.attr import Saliency

    grad = Saliency(net).attribute(x, target=target, abs=True)
    return grad.amax(dim=1).cpu().numpy()


def occlusion(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, window: int, stride: int) -> np.ndarray:
    from captum.attr import Occlusion

    mean = x.mean(dim=(0, 2, 3), keepdim=True).expand_as(x)  # occluded squares take the mean colour
    with torch.no_grad():
        attr = Occlusion(net).attribute(x, target=target, sliding_window_shapes=(3, window, window),
                                        strides=(3, stride, stride), baselines=mean,
                                        perturbations_per_eval=16)
    return attr.sum(dim=1).cpu().numpy()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


class _Reached(Exception):
    pass


def invert(model: torch.nn.Module, x: torch.Tensor, layer: str, steps: int, lr: float, tv_weight: float,
           seed: int = 0) -> torch.Tensor:
    """Pixels in [0, 1] whose activations at ``layer`` match those of x
    (normalized squared distance, as in Mahendran & Vedaldi), by Adam."""
    module = model.get_submodule(layer)
    store = {}

    def hook(m, i, o):
        store["out"] = o
        raise _Reached  # the layers above do not matter: skip them

    handle = module.register_forward_hook(hook)

    def features(z):
        try:
            model(imagenet_normalize(z))
        except _Reached:
            pass
        return store["out"]

    try:
        with torch.no_grad():
            target = features(x).clone()
        scale = target.pow(2).flatten(1).sum(1).clamp_min(1e-12)
        gen = torch.Generator().manual_seed(seed)
        y = (0.5 + 0.1 * torch.randn(x.shape, generator=gen)).to(x.device).requires_grad_(True)
        opt = torch.optim.Adam([y], lr=lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = ((features(y) - target).pow(2).flatten(1).sum(1) / scale).sum() + tv_weight * total_variation(y)
            loss.backward()
            opt.step()
            with torch.no_grad():
                y.clamp_(0, 1)
    finally:
        handle.remove()
    return y.detach()


def explain(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, methods: list[str], *, device,
            window: int, stride: int, layers: tuple[str, ...], steps: int, lr: float, tv_weight: float,
            log=print) -> dict[str, np.ndarray]:
    """The maps of ``methods`` for each image, and the network's probabilities on them.

    Args:
        model: the network; its mode, gradients and place are restored on return
            (:func:`featevo.models.evaluated`).
        images, labels: (N, H, W, 3) uint8 images and their classes.
        methods: a subset of :data:`featevo.METHODS`.
        window, stride: occlusion's square and step (``methods.occlusion``).
        layers, steps, lr, tv_weight: inversion's settings (``methods.inversion``);
            the workflow's schema holds every default.
        device: where the maps are computed.

    Returns:
        ``images``, ``labels``, ``probs`` (N, classes) and one array per method.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; choose from {METHODS}")
    with evaluated(model, device):
        return _explain(model, images, labels, methods, device, window, stride, layers, steps, lr, tv_weight, log)


def _explain(model, images, labels, methods, device, window, stride, layers, steps, lr, tv_weight, log):
    net = Normalized(model)
    x = to_pixels(images, device)
    target = torch.from_numpy(labels).to(device)
    with torch.no_grad():
        probs = net(x).softmax(1).cpu().numpy()
    out = {"images": images, "labels": labels, "probs": probs}
    for m in methods:
        start = time.monotonic()
        if m == "saliency":
            out["saliency"] = saliency(net, x.clone().requires_grad_(True), target).astype(np.float32)
        elif m == "occlusion":
            out["occlusion"] = occlusion(net, x, target, window, stride).astype(np.float32)
        else:
            inv = [invert(model, x, layer, steps, lr, tv_weight) for layer in layers]
            out["inversion"] = np.stack([to_uint8(v.cpu()) for v in inv])
            out["inversion_layers"] = np.asarray(layers)
        log(f"[explain] {m}: {time.monotonic() - start:.1f} s")
    return out


def parser() -> argparse.ArgumentParser:
    """featevo.explain's command line; workflow settings are required (tests/test_settings.py)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="folder with val_images.npy (featevo.extract)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--methods", nargs="+", required=True, choices=METHODS)
    p.add_argument("--images-per-class", type=int, required=True)
    p.add_argument("--window", type=int, required=True, help="occlusion: side of the square (px)")
    p.add_argument("--stride", type=int, required=True, help="occlusion: its step (px)")
    p.add_argument("--layers", nargs="*", required=True, help="inversion: module names, e.g. features.15")
    p.add_argument("--steps", type=int, required=True, help="inversion: Adam steps")
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--tv-weight", type=float, required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--threads", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    device = pick_device(a.device)
    configure(device, a.threads, precision="fp32")  # its maps are float32 throughout
    model, ckpt = load_model(a.checkpoint)
    names = {n for n, _ in model.named_modules()}
    bad = [layer for layer in a.layers if layer not in names]
    if bad:
        raise SystemExit(f"error: methods.inversion.layers: {bad} are not layers of {a.checkpoint}; "
                         f"e.g. {[n for n in names if n.startswith('features.')][:6]}")
    if "inversion" in a.methods and not a.layers:
        raise SystemExit("error: methods.inversion.layers is empty")
    val = Subset(a.data, "val")
    idx = fixed_images(val, a.images_per_class, len(ckpt["classes"]))
    print(f"[explain] {a.checkpoint} (epoch {ckpt['epoch']}) on {device}: {a.methods}, {len(idx)} images",
          flush=True)
    out = explain(model, val.images[idx], val.labels[idx], a.methods, device=device, window=a.window,
                  stride=a.stride, layers=tuple(a.layers), steps=a.steps, lr=a.lr, tv_weight=a.tv_weight,
                  log=lambda m: print(m, flush=True))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, epoch=ckpt["epoch"], index=idx, **out)
    print(f"[explain] -> {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

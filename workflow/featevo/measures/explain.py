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

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from featevo.models.hooks import Reached, forward_until, hooked

from featevo.models.networks import evaluated
from featevo.data.inputs import imagenet_normalize, to_pixels, to_uint8
from featevo.config.settings import Settings

log = logging.getLogger("featevo.measures.explain")


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


def invert(model: torch.nn.Module, x: torch.Tensor, layer: str, steps: int, lr: float, tv_weight: float,
           seed: int = 0) -> torch.Tensor:
    """Pixels in [0, 1] whose activations at ``layer`` match those of x
    (normalized squared distance, as in Mahendran & Vedaldi), by Adam."""
    store = {}

    def read(name, output):
        store["out"] = output
        raise Reached  # the layers above do not matter: skip them

    def features(z):
        forward_until(model, imagenet_normalize(z))
        return store["out"]

    with hooked(model, [layer], read):
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
    return y.detach()


# ---- the registry: one entry per method --------------------------------------


@dataclass(frozen=True)
class Method:
    """One method over the checkpoints, behind one signature (as captum's attribution classes).

    ``compute(model, net, x, target, settings)`` returns the method's arrays for the
    images ``x`` (pixels in [0, 1]) of classes ``target``: ``model`` is the network,
    ``net`` the same on pixels (:class:`Normalized`), ``settings`` its
    ``methods.<name>`` section.  ``columns(arrays)`` names the figure's columns per
    image (None: one), ``draw(ax, image, arrays, i, k)`` paints image ``i``'s column
    ``k``, and ``caption`` says what the figure shows.  A new method is one entry
    here and its section in the schema (``enabled`` and its settings)."""

    compute: Callable[..., dict[str, np.ndarray]]
    draw: Callable
    caption: str
    columns: Callable[[Mapping], list] = lambda arrays: [None]


def _heat(ax, img: np.ndarray, heat: np.ndarray, signed: bool) -> None:
    ax.imshow(img, interpolation="nearest")
    if signed:  # red where hiding the square lowers the class score
        lim = float(np.abs(heat).max()) or 1.0
        ax.imshow(heat, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.6, interpolation="nearest")
    else:
        ax.imshow(heat / (heat.max() or 1.0), cmap="inferno", alpha=0.6, interpolation="nearest")


def _inversions(model, net, x, target, s) -> dict[str, np.ndarray]:
    inv = [invert(model, x, layer, s.steps, s.lr, s.tv_weight) for layer in s.layers]
    return {"inversion": np.stack([to_uint8(v.cpu()) for v in inv]), "inversion_layers": np.asarray(s.layers)}


METHODS: dict[str, Method] = {
    "saliency": Method(
        compute=lambda model, net, x, target, s: {
            "saliency": saliency(net, x.clone().requires_grad_(True), target).astype(np.float32)},
        draw=lambda ax, img, d, i, k: _heat(ax, img, d["saliency"][i], signed=False),
        caption="saliency |d logit / d pixel|"),
    "occlusion": Method(
        compute=lambda model, net, x, target, s: {
            "occlusion": occlusion(net, x, target, s.window, s.stride).astype(np.float32)},
        draw=lambda ax, img, d, i, k: _heat(ax, img, d["occlusion"][i], signed=True),
        caption="occlusion (red: hiding it lowers the class score)"),
    "inversion": Method(
        compute=_inversions,
        draw=lambda ax, img, d, i, k: ax.imshow(d["inversion"][k, i], interpolation="nearest"),
        caption="feature inversion at each layer",
        columns=lambda d: list(d["inversion_layers"])),
}


def enabled(methods: Settings) -> list[str]:
    """The methods whose ``methods.<name>.enabled`` is true, in the registry's order."""
    return [name for name in METHODS if methods[name].enabled]


def explain(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, methods: Settings, *, device,
            log=print) -> dict[str, np.ndarray]:
    """The maps of every enabled method for each image, and the network's probabilities on them.

    Args:
        model: the network; its mode, gradients and place are restored on return
            (:func:`featevo.models.networks.evaluated`).
        images, labels: (N, H, W, 3) uint8 images and their classes.
        methods: the ``methods`` section (the schema holds every default); each
            enabled entry of :data:`METHODS` runs with its own subsection.
        device: where the maps are computed.

    Returns:
        ``images``, ``labels``, ``probs`` (N, classes) and each method's arrays.
    """
    with evaluated(model, device):
        net = Normalized(model)
        x = to_pixels(images, device)
        target = torch.from_numpy(labels).to(device)
        with torch.no_grad():
            probs = net(x).softmax(1).cpu().numpy()
        out = {"images": images, "labels": labels, "probs": probs}
        for name in enabled(methods):
            start = time.monotonic()
            out.update(METHODS[name].compute(model, net, x, target, methods[name]))
            log(f"{name}: {time.monotonic() - start:.1f} s")
        return out

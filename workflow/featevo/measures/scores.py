"""Scores of any image, whatever made it, against the real images of the run.

* :func:`high_frequency_ratio`: the image's power above a frequency, over the real
  images' (1: as much fine detail as a real image; pixel-space ascent on deep
  networks gives far more);
* :func:`class_similarity`: whether a network treats the image as it treats real
  images of its class: the cosine similarity of its penultimate activations
  (:func:`penultimate`) to the mean of the class's real images, and where that
  falls among the real images' own similarities (Geirhos et al. 2024: a picture
  can be made to look right while the network's path differs).

The judge's probability of the class is :mod:`featevo.measures.metrics`'s.  Images are
uint8 (N, H, W, 3), as the workflow stores them, or floats in [0, 1] of that shape.
"""

from __future__ import annotations

import numpy as np

from featevo.data.spectra import centered_power, frequencies

CUTOFF = 0.25  # cycles per pixel: the upper half of the band below Nyquist (0.5)


def _pixels(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {x.shape}")
    return x.astype(np.float64) / 255 if x.dtype == np.uint8 else x.astype(np.float64)


def power_spectrum(images: np.ndarray) -> np.ndarray:
    """(N, H, W) power |F|^2 / (H W) of each image, each channel's mean removed, the
    channels averaged (so that a constant image has none, and the sizes compare)."""
    x = _pixels(images)
    h, w = x.shape[1:3]
    return centered_power(x, axes=(1, 2)).mean(axis=3) / (h * w)


def radial_power(images: np.ndarray, bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power: (N, bins) and the bins' centre frequencies (up to Nyquist)."""
    p = power_spectrum(images)
    h, w = p.shape[1:]
    f = frequencies(h, w, np)
    bins = bins or min(h, w) // 2
    edges = np.linspace(0, 0.5, bins + 1)
    which = np.digitize(f, edges) - 1
    out = np.stack([p[:, (which == b)].mean(axis=1) for b in range(bins)], axis=1)
    return out, (edges[:-1] + edges[1:]) / 2


def high_frequency_power(images: np.ndarray, cutoff: float = CUTOFF) -> np.ndarray:
    """(N,) each image's mean power at radial frequencies above ``cutoff`` cycles per pixel."""
    p = power_spectrum(images)
    return p[:, frequencies(*p.shape[1:], np) > cutoff].mean(axis=1)


def high_frequency_ratio(images: np.ndarray, real: np.ndarray, cutoff: float = CUTOFF) -> np.ndarray:
    """(N,) each image's high-frequency power over the real images' mean (1: like a real
    image; above 1: more fine detail or noise; below: smoother)."""
    if np.shape(real)[1:3] != np.shape(images)[-3:-1]:
        raise ValueError(f"the real images are {np.shape(real)[1:3]}, the images {np.shape(images)[-3:-1]}")
    return high_frequency_power(images, cutoff) / high_frequency_power(real, cutoff).mean()


def penultimate(model, images: np.ndarray, batch: int = 128, device=None) -> tuple[np.ndarray, np.ndarray]:
    """The input of ``model``'s output layer (its penultimate activations, flattened) and
    its logits, for uint8 (N, H, W, 3) images: (N, D) and (N, classes)."""
    import torch

    from featevo.data.inputs import to_input
    from featevo.models.hooks import hooked
    from featevo.models.networks import evaluated, head_name

    store = {}
    head = head_name(model)
    feats, logits = [], []
    x = np.asarray(images)
    if x.dtype != np.uint8:
        x = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    with hooked(model, [head], store.__setitem__, inputs=True), evaluated(model, device) as m, torch.no_grad():
        dev = next(m.parameters()).device
        for i in range(0, len(x), batch):
            logits.append(m(to_input(x[i:i + batch], dev)).float().cpu())
            feats.append(store[head].float().flatten(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()


def _unit(f: np.ndarray) -> np.ndarray:
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)


def class_similarity(features: np.ndarray, classes: np.ndarray, real_features: np.ndarray,
                     real_labels: np.ndarray) -> dict[str, np.ndarray]:
    """Whether a network treats each image as it treats real images of its class.

    Args:
        features: (N, D) the images' penultimate activations.
        classes: (N,) the class (label) each image stands for.
        real_features: (M, D) the real images' activations, by the same network.
        real_labels: (M,) their labels.

    Returns:
        ``similarity`` (N,): cosine similarity of each image's activations to the mean
        direction of its class's real images; ``percentile`` (N,): the share of that
        class's real images whose own similarity to the mean of the others (left out
        of it) is at most the image's (0: less like the class than any real image;
        about 0.5: as typical as a real one).
    """
    f, r = _unit(np.asarray(features, np.float64)), _unit(np.asarray(real_features, np.float64))
    classes, real_labels = np.asarray(classes), np.asarray(real_labels)
    sim, pct = np.empty(len(f)), np.empty(len(f))
    for c in np.unique(classes):
        own = r[real_labels == c]
        if len(own) < 2:
            raise ValueError(f"class {c}: {len(own)} real images; at least 2 are needed")
        total = own.sum(axis=0)
        centre = _unit(total)
        loo = np.einsum("md,md->m", own, _unit(total[None] - own))  # each real image against the others
        pick = classes == c
        sim[pick] = f[pick] @ centre
        pct[pick] = (loo[None, :] <= sim[pick][:, None]).mean(axis=1)
    return {"similarity": sim, "percentile": pct}

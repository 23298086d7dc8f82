"""The atlas's evidence beside each channel's picture: which channels (the same at every
checkpoint), each channel's top real images (ranked by its mean activation, the quantity
its image maximized), the activation its image reached against the best real image's,
and the epoch its top images settled.

The pictures themselves are :func:`featevo.optvis.render.activation_maximization` of
:class:`featevo.optvis.objectives.InnerUnit` s, many channels in one batch.
"""

from __future__ import annotations

import numpy as np

SETTLED = 0.5  # a channel's top images have settled once they share half with the last epoch's


def atlas_layers(model, spec, image_size: int, layers) -> list[str]:
    """``atlas.layers``: null, each stage's last convolution (every convolutional block of
    VGG, every layer of ResNet; the convolution itself, before its ReLU: a channel that a
    ReLU holds at zero on the starting image gives the ascent no gradient); ``all``, every
    convolution and every hidden linear layer; else the names given."""
    import torch

    from featevo.models.networks import head_name, stage_ends

    if layers is None:
        order = [n for n, _ in model.named_modules()]
        convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
        ends = []
        for end in stage_ends(spec, image_size):
            before = [c for c in convs if order.index(c) <= order.index(end) or c.startswith(end + ".")]
            if before and before[-1] not in ends:
                ends.append(before[-1])
        return ends
    if layers == "all":
        head = head_name(model)
        return [n for n, m in model.named_modules()
                if isinstance(m, torch.nn.Conv2d) or (isinstance(m, torch.nn.Linear) and n != head)]
    return list(layers)


def atlas_channels(spec, image_size: int, layers: list[str], channels, seed: int) -> list[tuple[str, int]]:
    """The channels of each layer the atlas shows: ``channels`` of them drawn with
    ``seed`` (the same at every checkpoint of a run), or every one (``all``)."""
    from featevo.models.networks import shape_problem

    _, shapes = shape_problem(spec, image_size)
    out = []
    for i, layer in enumerate(layers):
        width = shapes[layer][0]
        if channels == "all" or int(channels) >= width:
            picked = range(width)
        else:
            picked = np.sort(np.random.default_rng([seed, i]).choice(width, int(channels), replace=False))
        out += [(layer, int(c)) for c in picked]
    return out


def channel_activations(model, images: np.ndarray, units: list[tuple[str, int]], device, batch: int = 128,
                        peaks: bool = False):
    """(N, units): each channel's mean activation over space on each uint8 image; with
    ``peaks``, also (N, units, 2) where its activation map is highest (row, column: the
    centre of that cell as a fraction of the map's height and width, 0-1; a linear layer's
    0.5, 0.5)."""
    import torch

    from featevo.data.inputs import to_input
    from featevo.models.hooks import Reached, hooked
    from featevo.models.networks import evaluated

    layers = sorted({layer for layer, _ in units})
    store: dict[str, torch.Tensor] = {}

    def read(name, output):
        store[name] = output
        if len(store) == len(layers):
            raise Reached

    out, where = [], []
    with evaluated(model, device) as m, hooked(m, layers, read), torch.no_grad():
        dev = next(m.parameters()).device
        for i in range(0, len(images), batch):
            store.clear()
            try:
                m(to_input(images[i:i + batch], dev))
            except Reached:
                pass
            cols, spots = [], []
            for layer, c in units:
                a = store[layer][:, c].float()
                cols.append(a.flatten(1).mean(1) if a.ndim > 1 else a)
                if peaks:
                    spots.append(_peak(a))
            out.append(torch.stack(cols, 1).cpu())
            if peaks:
                where.append(torch.stack(spots, 1).cpu())
    if peaks:
        return torch.cat(out).numpy(), torch.cat(where).numpy()
    return torch.cat(out).numpy()


def _peak(a):
    """(N, 2) the centre of each map's highest cell, as fractions of its height and width."""
    import torch

    if a.ndim < 3:
        return torch.full((a.shape[0], 2), 0.5)
    h, w = a.shape[-2:]
    flat = a.flatten(1).argmax(1)
    return torch.stack([(flat // w + 0.5) / h, (flat % w + 0.5) / w], 1)


def peak_parts(peaks: np.ndarray, masks: np.ndarray, visible: float = 0.5) -> np.ndarray:
    """(N, units) the part under each image's peak (``peaks`` (N, units, 2) of
    :func:`channel_activations`, ``masks`` (N, parts, H, W) of featevo.data.standin.probe):
    the index of the part that shows most at that pixel, or ``parts`` (the background)
    where none shows ``visible`` or more."""
    n, parts, h, w = masks.shape
    rows = np.minimum((peaks[..., 0] * h).astype(int), h - 1)
    cols = np.minimum((peaks[..., 1] * w).astype(int), w - 1)
    at = masks[np.arange(n)[:, None], :, rows, cols].astype(np.float32)  # (N, units, parts)
    best = at.argmax(-1)
    return np.where(at.max(-1) >= visible, best, parts)


def part_counts(acts: np.ndarray, parts_at: np.ndarray, n_parts: int, k: int) -> np.ndarray:
    """(units, parts + 1): how many of each channel's top ``k`` images (by its mean
    activation) have their peak on each part (the last column: the background)."""
    idx, _ = top_images(acts, k)
    under = np.take_along_axis(parts_at.T, idx, axis=1)  # (units, k)
    return np.stack([np.bincount(row, minlength=n_parts + 1) for row in under])


def top_images(activations: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's top ``k`` images, best first: (units, k) indices and activations."""
    idx = np.argsort(-activations, axis=0, kind="stable")[:k].T
    return idx, np.take_along_axis(activations.T, idx, axis=1)


def settle_epochs(tops: list[np.ndarray], epochs: list[int]) -> np.ndarray:
    """Per channel: the first epoch from which its top images share at least ``SETTLED``
    with the last epoch's (Jaccard), at every later epoch too."""
    last = tops[-1]
    jac = np.asarray([[len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(t, last)] for t in tops])
    ok = jac >= SETTLED
    return np.asarray([next(e for i, e in enumerate(epochs) if ok[i:, u].all()) for u in range(last.shape[0])],
                      float)


def explanation_scores(explanations: np.ndarray, val: np.ndarray, activations: np.ndarray, k: int) -> np.ndarray:
    """Per channel: how well its image tells its top real images from its bottom ones, as an
    observer who matches by likeness would, in the manner of MIS (Zimmermann et al. 2024, whose
    observer is DreamSim; here the judge network's penultimate features, an independent network
    trained on other images, by cosine).

    ``explanations``: (U, D) each channel's image's features; ``val``: (N, D) the validation
    images'; ``activations``: (N, U) each channel's mean activation on them.  Of each channel's
    k top and k bottom validation images (by the activation its image maximized), the share of
    (top, bottom) pairs whose top image is nearer to the channel's image; ties count half.
    0.5: the image tells the two apart no better than a coin; 1: it picks out every top image.
    Written here because MIS's own code needs DreamSim's weights, which a job cannot fetch."""
    from featevo.measures.scores import _unit  # the judge-similarity's own normalization

    e, v = _unit(explanations), _unit(val)
    order = np.argsort(-activations, axis=0, kind="stable")  # (N, U), best first
    out = np.empty(activations.shape[1])
    for u in range(activations.shape[1]):
        sim = v @ e[u]
        top, bottom = sim[order[:k, u]], sim[order[-k:, u]]
        diff = top[:, None] - bottom[None, :]
        out[u] = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    return out


def explanation_controls(val: np.ndarray, activations: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """The score's known answers, per channel: with the channel's (k+1)-th best real image as
    its "image" (one it is known to like, not among the k it is scored on), the score must be
    high; with a validation image drawn at random (seeded), it must be near 0.5 on average."""
    order = np.argsort(-activations, axis=0, kind="stable")
    liked = val[order[k]]
    drawn = val[np.random.default_rng(seed).integers(0, len(val), activations.shape[1])]
    return {"liked": explanation_scores(liked, val, activations, k),
            "random": explanation_scores(drawn, val, activations, k)}


def score_can_move(liked: np.ndarray, random: np.ndarray, alpha: float = 0.05) -> tuple[bool, float]:
    """Whether the explanation score separates its known answers here: over the channels, the
    liked real image's score above the random one's (one-sided Wilcoxon signed-rank, paired by
    channel). Where it does not, no channel's score is evidence of anything (a weak judge, or
    images too small for its features)."""
    from scipy.stats import wilcoxon

    diff = np.asarray(liked, float) - np.asarray(random, float)
    if len(diff) < 6 or not np.any(diff):
        return False, 1.0
    p = float(wilcoxon(diff, alternative="greater").pvalue)
    return p < alpha, p

"""What changed in the network itself, layer by layer: linear CKA over the epochs.

Beside the pictures, every checkpoint is read on a fixed set of validation
images (the first ``represent.images_per_class`` of each class, the same for
every checkpoint, seed and experiment).  At each of the network's layers
(:func:`layers`: VGG's five convolutional blocks, fc6, fc7 and the output; any
other network's stages) its activations are reduced to what linear CKA needs:
the images' centred Gram matrix, n x n whatever the layer's width (Kornblith et
al. 2019).  Convolutional maps are average-pooled to at most
``represent.pool`` x ``represent.pool`` positions first: VGG-16's first block
at 224 px is 0.8 M numbers an image, its pooled map 1024.

Biased linear CKA grows with the layer's width where images are few (two
independent Gaussian representations of 100 images: 0.57 at 128 features, 0.91
at 1024), so every CKA is also given debiased (:func:`debiased_cka`, from the
unbiased HSIC of Song et al. 2012, as in Nguyen et al. 2021), beside a per-layer
null from shuffled image correspondence (:func:`cka_null`).

From those, :func:`compare` gives per layer and epoch the CKA with the epoch
before, with the last epoch, with the start (epoch 0: for pretrained and
frozen the reference network's weights, all but the output layer), and with the
other seeds at the same epoch (the seed floor: how alike two runs that differ
only in their seed are), and each layer's relative weight change from the
epoch before.  A layer has *settled* from the first epoch after which its CKA
with its own last epoch stays at or above the CKA between the seeds' last
epochs (it is then as close to where it ends as another run is).

Linear CKA is written here (a few lines; no well-kept library has it for
PyTorch's layers): it is invariant to orthogonal transforms and isotropic
scaling of the features, 1 for a representation with itself, and computed
from features centred in float64 (a float32 Gram of uncentred features loses
the differences between images to their common mean).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("featevo.measures.represent")


@dataclass(frozen=True)
class Layer:
    """One layer where the representation is read: ``name`` as the figures call it,
    ``module`` whose output is read, ``params``: the module-name prefixes of the weights
    that make it (for the weight change), ``depth``: its order from the input."""

    name: str
    module: str
    params: tuple[str, ...]
    depth: int


def layers(model) -> list[Layer]:
    """The layers read in ``model``: featevo's VGG: each convolutional block's output (its
    max pool; conv1-conv5), fc6 and fc7 (after their ReLU) and the output layer; any
    other network: its stages (the top-level modules, and the blocks of a top-level
    sequence of four or more, such as MobileNet's or ConvNeXt's ``features``) and the
    output layer."""
    from torch import nn

    from featevo.models.networks import VGG, head_name

    head = head_name(model)
    out: list[tuple[str, str, tuple[str, ...]]] = []
    if isinstance(model, VGG):
        block, k = [], 1
        for i, m in enumerate(model.features):
            if isinstance(m, nn.Conv2d):
                block.append(f"features.{i}")
            elif isinstance(m, nn.MaxPool2d):
                out.append((f"conv{k}", f"features.{i}", tuple(block)))
                block, k = [], k + 1
        linears = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear)]
        for name, i in zip(("fc6", "fc7"), linears[:-1]):
            out.append((name, f"classifier.{i + 1}", (f"classifier.{i}",)))  # the ReLU after it
    else:
        for name, child in model.named_children():
            if name == head or not any(True for _ in child.parameters()):
                continue
            kids = [(n, c) for n, c in child.named_children() if any(True for _ in c.parameters())]
            if isinstance(child, nn.Sequential) and len(kids) >= 4:
                out += [(f"{name}.{n}", f"{name}.{n}", (f"{name}.{n}",)) for n, _ in kids]
            elif not head.startswith(name + "."):
                out.append((name, name, (name,)))
    out.append(("output", head, (head,)))
    return [Layer(n, m, p, d) for d, (n, m, p) in enumerate(out)]


def center_gram(features: np.ndarray) -> np.ndarray:
    """The centred Gram matrix (n x n, float64) of ``features`` (n, d): the features are
    centred over the images in float64 first, so nothing is lost to their mean."""
    x = np.asarray(features, np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    return x @ x.T


def linear_cka(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (the literature's name)
    """Linear CKA of two centred Gram matrices of the same images:
    <K, L> / (|K| |L|) (Frobenius), = |Y'X|^2 / (|X'X| |Y'Y|) for centred features.
    NaN when either representation is constant over the images."""
    k, l = np.asarray(k, np.float64), np.asarray(l, np.float64)  # noqa: E741
    nk, nl = np.linalg.norm(k), np.linalg.norm(l)
    if nk == 0 or nl == 0:
        return float("nan")
    return float(np.vdot(k, l) / (nk * nl))


def _unbiased_centered(gram: np.ndarray) -> np.ndarray:
    """The Gram matrix centred so that its Frobenius product with another such matrix is
    n(n-3) times the unbiased HSIC estimator (Song et al. 2012; the form of Nguyen et al.
    2021 / Kornblith's reference code): diagonal zeroed, each row and column less its
    mean over the n-2 others, plus the grand mean's share.  For linear kernels it is the
    same for features and for features less any constant, so the stored centred Grams do."""
    g = np.array(gram, np.float64)
    n = g.shape[0]
    np.fill_diagonal(g, 0.0)
    means = g.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    g -= means[:, None]
    g -= means[None, :]
    np.fill_diagonal(g, 0.0)
    return g


def debiased_cka(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Linear CKA from unbiased HSIC estimates (debiased CKA): near 0 for unrelated
    representations whatever their width, where :func:`linear_cka`'s biased estimate of
    two independent Gaussian representations of 100 images is 0.57 at 128 features and
    0.91 at 1024 (FACTS, and tests/test_represent.py).  It can be slightly negative; NaN
    when either representation's unbiased self-HSIC is not positive, or with fewer than 4
    images.  Written here: a few lines of numpy on the stored Grams (no well-kept
    package computes it for PyTorch's layers)."""
    if np.shape(k)[0] < 4:
        return float("nan")
    kk, ll = _unbiased_centered(k), _unbiased_centered(l)
    hkk, hll = np.vdot(kk, kk), np.vdot(ll, ll)
    if hkk <= 0 or hll <= 0:
        return float("nan")
    return float(np.vdot(kk, ll) / np.sqrt(hkk * hll))


def cka_null(k: np.ndarray, l: np.ndarray, permutations: int, seed: int) -> np.ndarray:  # noqa: E741
    """Debiased CKA of ``k`` with ``l`` under ``permutations`` random shufflings of which
    image is which in ``l`` (the rows and columns permuted alike): what the measure reads
    for these two layers' spectra when the images do not correspond."""
    rng = np.random.default_rng(seed)
    kk = _unbiased_centered(k)
    hkk = np.vdot(kk, kk)
    ll = _unbiased_centered(l)  # permuting commutes with the centring
    hll = np.vdot(ll, ll)
    if hkk <= 0 or hll <= 0:
        return np.full(permutations, np.nan)
    out = np.empty(permutations)
    for i in range(permutations):
        p = rng.permutation(len(ll))
        out[i] = np.vdot(kk, ll[np.ix_(p, p)]) / np.sqrt(hkk * hll)
    return out


def grams(model, images: np.ndarray, where: list[Layer], *, device, precision: str, pool: int,
          batch: int = 64) -> np.ndarray:
    """(layers, n, n) centred Gram matrices of ``images`` (uint8 NHWC) at each layer."""
    import torch
    import torch.nn.functional as F

    from featevo.jobs.device import autocast
    from featevo.data.inputs import to_input
    from featevo.models.hooks import hooked
    from featevo.models.networks import evaluated

    device = torch.device(device)
    feats: dict[str, list] = {layer.module: [] for layer in where}

    def keep(name, output):
        x = output.detach().float()
        if x.ndim == 4 and max(x.shape[-2:]) > pool:
            x = F.adaptive_avg_pool2d(x, (min(pool, x.shape[-2]), min(pool, x.shape[-1])))
        # a copy: an in-place activation after the module would change its output in place
        feats[name].append(x.flatten(1).cpu().clone())

    with evaluated(model, device, torch.channels_last), hooked(model, [layer.module for layer in where], keep):
        with torch.no_grad():
            for i in range(0, len(images), batch):
                with autocast(device, precision):
                    model(to_input(images[i:i + batch], device))
    return np.stack([center_gram(torch.cat(feats[layer.module]).numpy()) for layer in where])


def weight_change(state: dict, previous: dict, where: list[Layer]) -> np.ndarray:
    """Each layer's relative weight change, |W - W_prev| / |W_prev| over the parameters
    (weights and biases; not running statistics) under its module prefixes."""
    out = []
    for layer in where:
        num = den = 0.0
        for name, w in state.items():
            if not any(name.startswith(p + ".") for p in layer.params) or not w.is_floating_point():
                continue
            if "running_" in name:
                continue
            prev = previous[name].double()
            num += float((w.double() - prev).pow(2).sum())
            den += float(prev.pow(2).sum())
        out.append(np.sqrt(num / den) if den > 0 else np.nan)
    return np.asarray(out, float)


def read_checkpoint(model, previous_state: dict | None, images: np.ndarray, labels: np.ndarray, classes: int,
                    r, *, device, precision: str) -> dict:
    """What :func:`compare` needs of one checkpoint: the layers, the fixed images' centred
    Gram matrices at each, and (given the epoch before's state) each layer's weight
    change.  ``r``: the ``represent`` settings."""
    from featevo.data.inputs import fixed_images

    where = layers(model)
    idx = fixed_images(labels, r.images_per_class, classes)
    g = grams(model, images[idx], where, device=device, precision=precision, pool=r.pool)
    change = (weight_change(model.state_dict(), previous_state, where) if previous_state is not None
              else np.full(len(where), np.nan))
    # float32 on disk: CKA is then exact to about 1e-7, far inside any difference it is used for
    return {"layers": np.asarray([w.name for w in where]), "depth": np.asarray([w.depth for w in where]),
            "gram": g.astype(np.float32), "images": idx, "weight_change": change}


NULL_PERMUTATIONS = 200  # the null's quantile 0.95 to about +-0.01 of the debiased CKA's scale


def compare(runs: dict[int, list[dict]], epochs: list[int]) -> "pd.DataFrame":  # noqa: F821
    """Per seed, epoch and layer: ``cka_prev`` (with the epoch before), ``cka_last`` (with
    the seed's last epoch), ``cka_start`` (with its epoch 0, or its first epoch),
    ``cka_seeds`` (mean CKA with the other seeds at the same epoch: the seed floor),
    ``floor_last`` (mean CKA between this seed's last epoch and the other seeds' last
    epochs), ``settled`` (the layer stays at or above ``floor_last`` from this epoch on)
    and ``weight_change`` (relative, from the epoch before); the same four CKAs debiased
    (``dcka_*``, :func:`debiased_cka`: not inflated by the layer's width), and
    ``dcka_null_q95``, the layer's null: the 0.95 quantile of the debiased CKA between
    this seed's first and last epoch with the images' correspondence shuffled
    (:func:`cka_null`, ``NULL_PERMUTATIONS`` shufflings): a value at or below it says
    no more than unrelated images would.  ``runs``: seed -> one
    :func:`read_checkpoint` dict per epoch, in ``epochs``' order."""
    import pandas as pd

    seeds = list(runs)
    first = runs[seeds[0]][0]
    names, depth = [str(n) for n in first["layers"]], first["depth"]
    for s in seeds:
        for e, d in zip(epochs, runs[s]):
            if [str(n) for n in d["layers"]] != names or not np.array_equal(d["images"], first["images"]):
                raise ValueError(f"seed {s} epoch {e}: other layers or images than seed {seeds[0]}'s first epoch; "
                                 "rerun its visualize job with the run's represent settings")
    rows = []
    for s in seeds:
        g = [d["gram"] for d in runs[s]]
        others = [o for o in seeds if o != s]
        for li, name in enumerate(names):
            floor = (np.mean([linear_cka(g[-1][li], runs[o][-1]["gram"][li]) for o in others]) if others
                     else np.nan)
            # the layer's null: its first and last epoch with the images' correspondence shuffled
            null = cka_null(g[0][li], g[-1][li], NULL_PERMUTATIONS, seed=1000 * int(s) + li)
            last = [linear_cka(gi[li], g[-1][li]) for gi in g]
            prog, moved = progress([gi[li] for gi in g])
            # settled from epoch i on: cka_last stays >= the floor (rounding aside: frozen layers are equal)
            ok = [np.isfinite(floor) and v >= floor - 1e-9 for v in last]
            settled = [all(ok[i:]) for i in range(len(ok))]
            for i, e in enumerate(epochs):
                gi = g[i][li]
                rows.append({
                    "seed": s, "epoch": e, "layer": name, "depth": int(depth[li]),
                    "cka_prev": linear_cka(gi, g[i - 1][li]) if i else np.nan,
                    "cka_last": last[i], "cka_start": linear_cka(gi, g[0][li]),
                    "cka_seeds": (np.mean([linear_cka(gi, runs[o][i]["gram"][li]) for o in others]) if others
                                  else np.nan),
                    "floor_last": floor, "settled": bool(settled[i]) if np.isfinite(floor) else np.nan,
                    "weight_change": float(runs[s][i]["weight_change"][li]),
                    "dcka_prev": debiased_cka(gi, g[i - 1][li]) if i else np.nan,
                    "dcka_last": debiased_cka(gi, g[-1][li]), "dcka_start": debiased_cka(gi, g[0][li]),
                    "dcka_seeds": (np.mean([debiased_cka(gi, runs[o][i]["gram"][li]) for o in others]) if others
                                   else np.nan),
                    "dcka_null_q95": float(np.nanquantile(null, 0.95)) if np.isfinite(null).any() else np.nan,
                    "progress": float(prog[i]), "moved": moved,
                })
    return pd.DataFrame(rows)


PROGRESS = 0.9  # settled: from this epoch on, 90% of the way from the start to the last epoch
MOVED = 0.02  # a layer whose start is this close to its end (1 - debiased CKA) never moved
SUBSAMPLES = 50  # the settle epoch's interval over images: this many halves of the fixed images


def progress(grams: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """A layer's normalized progress toward its final state at each epoch: 1 - d(e) / d(0),
    with d(e) = 1 - debiased CKA of epoch e with the last epoch (0 at the start, 1 at the
    end); and d(0), how far the layer moved in all (below ``MOVED``: it never moved, and
    its progress is NaN: "never moved" is not "settled early")."""
    dist = np.asarray([1 - debiased_cka(g, grams[-1]) for g in grams])
    if not np.isfinite(dist[0]) or dist[0] < MOVED:
        return np.full(len(grams), np.nan), float(dist[0])
    return 1 - dist / dist[0], float(dist[0])


def settle_epoch(prog: np.ndarray, epochs: list[int]) -> float:
    """The first epoch from which the progress stays at or above ``PROGRESS`` (NaN where the
    layer never moved)."""
    if not np.isfinite(prog).all():
        return float("nan")
    ok = prog >= PROGRESS - 1e-9
    return float(next(e for i, e in enumerate(epochs) if ok[i:].all()))


def settle_interval(grams: list[np.ndarray], epochs: list[int], seed: int,
                    subsamples: int = SUBSAMPLES) -> tuple[float, float]:
    """The settle epoch's 95% interval over the images: recomputed on ``subsamples`` random
    halves of the fixed images (without replacement: the unbiased HSIC needs distinct
    images, which a bootstrap's repeats are not); NaN where the layer never moved."""
    n = grams[0].shape[0]
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(subsamples):
        idx = np.sort(rng.choice(n, n // 2, replace=False))
        prog, _ = progress([g[np.ix_(idx, idx)] for g in grams])
        found.append(settle_epoch(prog, epochs))
    found = np.asarray(found)
    if not np.isfinite(found).any():
        return float("nan"), float("nan")
    return float(np.nanquantile(found, 0.025)), float(np.nanquantile(found, 0.975))


def settle_epochs(df, runs: dict | None = None, epochs: list[int] | None = None) -> "pd.DataFrame":  # noqa: F821
    """Per seed and layer: the epoch from which the layer has settled by its own progress
    (``settle_epoch``: 90% of the way from its start to its last epoch, in debiased CKA,
    from then on; NaN where it never moved), with its interval over the images given the
    Gram matrices (``runs``, as :func:`compare` takes them: ``settle_low``/``settle_high``),
    how far it moved (``moved``: 1 - debiased CKA of start and end), and the earlier
    definition beside it (``settle_floor``: from when its CKA with the last epoch stays at
    or above the CKA between seeds; NaN without another seed)."""
    import pandas as pd

    rows = []
    layer_index = {name: i for i, name in enumerate(df.drop_duplicates("layer")["layer"])}
    for (seed, layer), g in df.groupby(["seed", "layer"], sort=False):
        g = g.sort_values("epoch")
        settled = g["settled"]
        floor_epoch = float(g["epoch"][settled.astype(bool)].min()) if settled.notna().all() else np.nan
        low = high = np.nan
        if runs is not None:
            grams = [d["gram"][layer_index[layer]] for d in runs[seed]]
            low, high = settle_interval(grams, epochs, seed=1000 * int(seed) + layer_index[layer])
        rows.append({"seed": seed, "layer": layer, "depth": int(g["depth"].iloc[0]),
                     "settle_epoch": settle_epoch(g["progress"].to_numpy(float), g["epoch"].tolist()),
                     "settle_low": low, "settle_high": high, "moved": float(g["moved"].iloc[0]),
                     "settle_floor": floor_epoch, "floor_last": float(g["floor_last"].iloc[0])})
    return pd.DataFrame(rows)


def _seed(key: str) -> int:
    """The training seed in a visualize job's key (``<experiment>/seed<s>/epoch<e>``)."""
    import re

    m = re.search(r"/seed(\d+)/", key)
    if not m:
        raise ValueError(f"represent.npz key {key!r} names no seed (<experiment>/seed<s>/epoch<e>)")
    return int(m.group(1))

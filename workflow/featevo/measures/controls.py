"""Positive controls: images whose complexity is known by construction, which a
complexity measure must order correctly before any claim may rest on it.

Each image is the stand-in's background with ``k`` of its parts (ellipses, strokes,
bars and striped discs, in colours drawn from the pool every class shares; no sensor
noise, as an ascent's image has none), for each ``k`` of ``controls.parts`` (1, 2, 4,
8 by default), ``controls.images_per_count`` images of each.  More parts are more
edges and more regions, so a measure of visual complexity must rise with ``k``: its
Spearman rho with ``k`` over the images, tested by permutation of the pairing
(featevo.measures.stats.rank_correlation), one-sided.  A measure passes when the test
rejects at 0.05 with rho > 0; one that fails carries no verdict in the claims table
(featevo.measures.claims.failed), which says why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from featevo.data.standin import Canvas, _background, _distractors
from featevo.measures import stats
from featevo.measures.metrics import MEASURE

CONTROL_SEED_OFFSET = 3_000_017  # the controls' images draw from a stream of their own


def known_complexity(parts, per_count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, size, size, 3) images and each one's number of parts."""
    rng = np.random.default_rng(seed + CONTROL_SEED_OFFSET)
    images, counts = [], []
    for k in parts:
        for _ in range(per_count):
            cv = Canvas(size, rng, "shared")
            _background(cv)
            _distractors(cv, int(k))
            images.append((np.clip(cv.img, 0, 1) * 255 + 0.5).astype(np.uint8))
            counts.append(int(k))
    return np.stack(images), np.asarray(counts)


def complexity_controls(images: np.ndarray, counts: np.ndarray, measures=tuple(MEASURE)) -> pd.DataFrame:
    """One row per measure: its mean at each count, Spearman rho(count, measure) over
    the images with its permutation p (one-sided, > 0), and whether it passes."""
    rows = []
    for name in measures:
        values = np.asarray([MEASURE[name](img) for img in images], float)
        r = stats.rank_correlation(counts, values)
        means = {int(k): float(values[counts == k].mean()) for k in np.unique(counts)}
        passes = bool(math.isfinite(r.p) and r.p < stats.ALPHA and r.statistic > 0)
        rows.append({"measure": name, "rho": r.statistic, "p": r.p, "min_p": r.min_p, "images": len(values),
                     "means_by_parts": " ".join(f"{k}:{v:.4g}" for k, v in means.items()), "passes": passes})
    return pd.DataFrame(rows)



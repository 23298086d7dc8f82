"""The transforms between the image and the network: the paper's median filter
(every ``visualize.median_every`` steps of the pixel ascent) and the random
resamplings drawn per image and per step (``visualize.transforms``: pad, jitter,
scale, rotate; the ``lucent`` preset), applied as one affine resampling."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F


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


# Lucent's standard_transforms (pad 12 with gray, jitter 8, scale 0.9-1.1, rotate
# +-10 degrees, jitter 4); Lucent draws scale and angle from lists of 11 and 26
# values (six of them 0), here they are uniform over the same ranges
PRESETS = {
    "lucent": ({"pad": 12}, {"jitter": 8}, {"scale": [0.9, 1.1]}, {"rotate": 10}, {"jitter": 4}),
}


def _identity(n: int) -> torch.Tensor:
    return torch.eye(3).repeat(n, 1, 1)


def _pad_build(width, draws, canvas):
    # F.pad with gray, applied by Transforms before the others: the canvas grows, nothing moves
    return None, canvas + 2 * width


def _jitter_draw(d, n, gen):
    return torch.rand(n, 2, generator=gen)


def _jitter_build(d, draws, canvas):
    # a shift by one of d whole pixels (Lucent's jitter(d)), centred
    m = _identity(len(draws))
    m[:, :2, 2] = 2 * (torch.floor(draws * d) - (d - 1) / 2) / canvas
    return m, canvas


def _scale_draw(bounds, n, gen):
    return torch.rand(n, generator=gen)


def _scale_build(bounds, draws, canvas):
    lo, hi = bounds
    s = lo + (hi - lo) * draws
    m = _identity(len(draws))
    m[:, 0, 0] = m[:, 1, 1] = s
    return m, canvas


def _rotate_draw(degrees, n, gen):
    return torch.rand(n, generator=gen)


def _rotate_build(degrees, draws, canvas):
    a = torch.deg2rad((2 * draws - 1) * degrees)
    m = _identity(len(draws))
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    return m, canvas


# visualize.transforms: name -> (draw or None, build)
TRANSFORMS = {"pad": (None, _pad_build), "jitter": (_jitter_draw, _jitter_build),
              "scale": (_scale_draw, _scale_build), "rotate": (_rotate_draw, _rotate_build)}


def transform_list(spec) -> list[tuple[str, object]]:
    """``visualize.transforms`` as (name, parameter) pairs: a preset's name or a list of
    one-key mappings (``[{pad: 12}, {jitter: 8}]``)."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"visualize.transforms: unknown preset {spec!r}; choose one of {', '.join(PRESETS)}")
        spec = PRESETS[spec]
    out = []
    for item in spec:
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ValueError(f"visualize.transforms: {item!r} is not one transform, e.g. {{jitter: 8}}")
        (name, value), = item.items()
        if name not in TRANSFORMS:
            raise ValueError(f"visualize.transforms: unknown {name!r}; choose one of {', '.join(TRANSFORMS)}")
        out.append((name, tuple(value) if isinstance(value, Sequence) else value))
    return out


class Transforms:
    """Every image's own random transforms, drawn from ``generator`` each call: the pads
    first (a gray border, 0.5, as Lucent's ``pad(mode="constant")``), then the others
    composed into one matrix per image and applied as one bilinear resampling of the
    padded canvas, black (0) beyond it as Lucent's kornia warps fill; the network sees
    the whole canvas at the input size (Lucent's ``fixed_image_size``).

    The fill matters: with gray beyond the canvas instead of black, the judge of
    ``make bench`` recognized 19 of 48 Fourier images of its network against 30 with
    black (and Lucent's own chain: 29), measured.  One resampling whatever the list;
    Lucent runs two kornia warps and two resizes, one shift for the whole batch.
    With no transforms, images pass through untouched."""

    def __init__(self, spec, size: int, generator: torch.Generator):
        self.steps, self.size, self.generator = transform_list(spec), size, generator
        names = [name for name, _ in self.steps]
        leading = next((i for i, name in enumerate(names) if name != "pad"), len(names))
        if "pad" in names[leading:]:
            raise ValueError(f"visualize.transforms: pad goes before the other transforms (its border is drawn "
                             f"around the image), got {names}")
        self.pad = sum(value for name, value in self.steps if name == "pad")
        self._planned, self._next = None, 0

    def __bool__(self) -> bool:
        return bool(self.steps)

    def _draw(self, n: int) -> list:
        """One step's random numbers for ``n`` images, in the list's order."""
        return [None if TRANSFORMS[name][0] is None else TRANSFORMS[name][0](value, n, self.generator)
                for name, value in self.steps]

    def _build(self, draws: list, n: int) -> torch.Tensor:
        """(n, 2, 3) ``F.affine_grid`` matrices (output, i.e. network input, coordinates ->
        the padded canvas') from the draws of :meth:`_draw`, stacked over any number of steps."""
        forward, canvas = None, float(self.size)
        for (name, value), drawn in zip(self.steps, draws):
            m, canvas = TRANSFORMS[name][1](value, drawn, canvas)
            if m is not None:
                forward = m if forward is None else m @ forward
        return (_identity(n) if forward is None else torch.linalg.inv(forward))[:, :2]

    def matrices(self, n: int) -> torch.Tensor:
        """The next step's (n, 2, 3) matrices, drawn now (or taken from :meth:`plan`)."""
        if self._planned is not None and self._next < len(self._planned):
            if self._planned.shape[1] != n:  # drawing now would take numbers the plan holds
                raise ValueError(f"transforms planned for {self._planned.shape[1]} images, asked for {n}")
            self._next += 1
            return self._planned[self._next - 1]
        return self._build(self._draw(n), n)

    def plan(self, n: int, steps: int) -> None:
        """Draw the next ``steps`` steps' numbers now, step by step in the order
        :meth:`matrices` would (the same images result), and build all their matrices at once."""
        if not self.steps or steps < 1:
            return
        draws = [self._draw(n) for _ in range(steps)]
        stacked = [None if d[0] is None else torch.cat(d) for d in zip(*draws)]
        self._planned, self._next = self._build(stacked, steps * n).view(steps, n, 2, 3), 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if not self.steps:
            return images
        n = images.shape[0]
        canvas = F.pad(images, [self.pad] * 4, value=0.5) if self.pad else images
        grid = F.affine_grid(self.matrices(n).to(images), [n, 3, self.size, self.size], align_corners=False)
        return F.grid_sample(canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

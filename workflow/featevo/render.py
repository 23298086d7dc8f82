"""What the ascent optimizes and how the network sees it: image parameterizations,
random transforms, and the optimizer (``visualize.parameterization``,
``visualize.transforms``, ``visualize.optimizer``), as Lucent composes
``render_vis(objective, param, transforms)``.

* ``pixel``: the pixels themselves (the paper's), clipped to [0, 1] after each
  step and median-filtered every ``median_every`` steps.
* ``fourier``: Lucid's and Lucent's colour-decorrelated Fourier image: each
  image is the inverse real FFT of a spectrum scaled by 1 / frequency, its
  colours mixed by Lucid's decorrelation matrix, through a sigmoid into (0, 1).
* ``maco``: MACO (Fel et al. 2023): the spectrum's magnitude is fixed to a
  natural image's (a 1 / f^alpha law, or the mean of the run's training images)
  and only its phase is optimized; where in the image the unit looks is the
  accumulated absolute gradient on the image (``attribution``).

Transforms are drawn per image and per step (Lucent draws one shift for the
whole batch, its issue #28) and applied as one affine resampling per step
(``F.affine_grid`` + ``F.grid_sample``): jitter, scale and rotate compose into
one matrix per image, after a gray pad.  Every random number comes from a
``torch.Generator`` the caller passes: the starts from one, the transforms from
another.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F


# ---- the paper's median filter (every visualize.median_every steps of the pixel ascent) ----


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

# ---- colour -------------------------------------------------------------------------

# Lucid's colour correlation of ImageNet (the square root of its covariance, from an
# SVD), each column scaled so the largest has norm 1: decorrelated -> RGB per pixel
_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR = _SVD_SQRT / _SVD_SQRT.norm(dim=0).max()


def _mix(t: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    # each pixel's colours times the matrix, as one broadcast matrix product: the same numbers
    # as einsum("nchw,dc->ndhw"), forward and backward, in 93 against 347 us (12 images at 64 px)
    return (matrix.to(t) @ t.reshape(*t.shape[:2], -1)).view(t.shape)


def correlate(t: torch.Tensor) -> torch.Tensor:
    """Decorrelated colour channels (N, 3, H, W) -> RGB ones (Lucid's ``_linear_decorrelate_color``)."""
    return _mix(t, COLOR)


def decorrelate(t: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`correlate`."""
    return _mix(t, torch.linalg.inv(COLOR))


# ---- parameterizations ---------------------------------------------------------------


def rfft_frequencies(h: int, w: int) -> torch.Tensor:
    """(h, w // 2 + 1) radial frequencies, in cycles per pixel, of ``torch.fft.rfft2``'s bins."""
    return torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)


def fft_frequencies(h: int, w: int) -> torch.Tensor:
    """(h, w) radial frequencies of ``torch.fft.fft2``'s bins."""
    return torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.fftfreq(w)[None, :] ** 2)


class Pixel:
    """The pixels as the parameters (the paper's): clipped to [0, 1] after every step,
    and every ``median_every`` steps a ``median_size`` median filter."""

    attribution = False

    def __init__(self, pixels: torch.Tensor, median_every: int, median_size: int):
        self.tensor = pixels.requires_grad_(True)
        self.median_every, self.median_size = median_every, median_size

    def image(self) -> torch.Tensor:
        return self.tensor

    @torch.no_grad()
    def project(self, step: int) -> None:

        self.tensor.clamp_(0.0, 1.0)  # clip to the valid pixel range
        if self.median_every and step % self.median_every == 0:
            self.tensor.copy_(median_filter(self.tensor, self.median_size))


class Fourier:
    """Lucid's and Lucent's ``fft_image`` + ``to_valid_rgb(decorrelate=True)``: the
    parameters are each image's real FFT (real and imaginary parts, ``(N, 3, H, W//2+1, 2)``),
    scaled by 1 / max(frequency, 1 / size)^decay_power, inverted (orthonormal), divided
    by Lucid's "magic" 4, colour-correlated, and squashed by a sigmoid.  The start is
    ``sd`` times normal noise (Lucent's 0.01) from ``generator``."""

    attribution = False

    def __init__(self, n: int, size: int, generator: torch.Generator, device, decay_power: float = 1.0,
                 sd: float = 0.01):
        self.size = size
        self.scale = (1.0 / rfft_frequencies(size, size).clamp(min=1.0 / size) ** decay_power).to(device)
        # the magic 4 folded into the scale: exact (a power of two), and one operation less a step
        self._scale_4 = self.scale / 4.0
        start = torch.randn(n, 3, size, size // 2 + 1, 2, generator=generator) * sd
        self.tensor = start.to(device).requires_grad_(True)

    def linear(self) -> torch.Tensor:
        """The image before the colours are mixed and squashed (decorrelated space)."""
        spectrum = torch.view_as_complex(self.tensor) * self._scale_4
        return torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")

    def image(self) -> torch.Tensor:
        return torch.sigmoid(correlate(self.linear()))

    def project(self, step: int) -> None:
        pass

    def inverse(self, image: torch.Tensor) -> torch.Tensor:
        """The parameters that give ``image`` (values in (0, 1)): its logit, colours
        decorrelated, times 4, forward FFT, divided by the scale."""
        linear = decorrelate(torch.logit(image.float())) * 4.0
        spectrum = torch.fft.rfft2(linear, norm="ortho") / self.scale
        return torch.view_as_real(spectrum).contiguous()


def _mirror(t: torch.Tensor) -> torch.Tensor:
    """t at the negated frequency, t[..., -k mod H, -l mod W]."""
    return torch.roll(torch.flip(t, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


class Maco:
    """MACO (Fel et al. 2023): a fixed magnitude spectrum ``magnitude`` (3, H, W) and an
    optimized phase.  The phase used is the odd part of the parameters,
    (p(k) - p(-k)) / 2, so the spectrum stays Hermitian: the inverse FFT is real and its
    FFT has exactly the magnitude given, whatever the steps do (MACO's Horama takes
    ``irfft2`` and lets it drop what is not Hermitian).  The image is that inverse FFT,
    colour-correlated, through a sigmoid.  The start is the phase of white noise's FFT
    (noise from ``generator``): uniform and already odd.  (A phase of normal noise of
    std 1, as Horama draws it, is not uniform: its odd part has std 0.7, cos(phase)
    averages 0.78, and the first image has a spike at the origin, 25 standard
    deviations high with a flat magnitude, measured.)
    Where the unit looks: the absolute gradient on the image, accumulated over the
    steps (``attribution``)."""

    attribution = True

    def __init__(self, n: int, magnitude: torch.Tensor, generator: torch.Generator, device):
        if magnitude.ndim != 3 or magnitude.shape[0] != 3:
            raise ValueError(f"MACO's magnitude must be (3, H, W), got {tuple(magnitude.shape)}")
        if not torch.allclose(magnitude, _mirror(magnitude), rtol=1e-5, atol=1e-6 * float(magnitude.max())):
            raise ValueError("MACO's magnitude must be symmetric, |F(k)| = |F(-k)|, as a real image's is")
        self.magnitude = magnitude.float().to(device)
        start = torch.fft.fft2(torch.randn(n, *magnitude.shape, generator=generator)).angle()
        self.tensor = start.to(device).requires_grad_(True)

    def phase(self) -> torch.Tensor:
        return (self.tensor - _mirror(self.tensor)) / 2

    def linear(self) -> torch.Tensor:
        return torch.fft.ifft2(torch.polar(self.magnitude.expand_as(self.tensor), self.phase())).real

    def image(self) -> torch.Tensor:
        return torch.sigmoid(correlate(self.linear()))

    def project(self, step: int) -> None:
        pass


def power_law_magnitude(size: int, alpha: float) -> torch.Tensor:
    """(3, size, size) amplitude spectrum 1 / f^alpha (natural images: alpha about 1,
    Field 1987), zero at the mean, scaled by :func:`unit_std`."""
    f = fft_frequencies(size, size).clamp(min=1.0 / size)
    return unit_std(f.pow(-alpha).expand(3, size, size).clone())


def images_magnitude(images: torch.Tensor) -> torch.Tensor:
    """(3, H, W) mean amplitude spectrum of real images (N, 3, H, W) in [0, 1], in Lucid's
    decorrelated colours, scaled by :func:`unit_std`: the spectrum MACO keeps."""
    centred = decorrelate(images.float() - images.float().mean(dim=(2, 3), keepdim=True))
    return unit_std(torch.fft.fft2(centred).abs().mean(dim=0))


def unit_std(magnitude: torch.Tensor) -> torch.Tensor:
    """The magnitude without its mean (DC), scaled so that an image with it has standard
    deviation 1 per channel, whatever its phase (Parseval: var = sum |F|^2 / (H W)^2);
    MACO standardizes its image every step, which with a fixed magnitude is this constant."""
    m = magnitude.clone()
    m[:, 0, 0] = 0.0
    h, w = m.shape[-2:]
    return m * (h * w) / m.pow(2).sum(dim=(1, 2), keepdim=True).sqrt().clamp(min=1e-12)


# visualize.maco.spectrum: MACO's magnitude, from the image size, alpha, and the run's
# training images (uint8 NHWC, or None where a job has none)
def _images_spectrum(size: int, alpha: float, images: np.ndarray | None) -> torch.Tensor:
    if images is None:
        raise ValueError("visualize.maco.spectrum: images needs the run's training images (--spectrum-images)")
    from featevo.inputs import to_pixels

    x = to_pixels(images, torch.device("cpu"))
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images_magnitude(x)


SPECTRA = {
    "power_law": lambda size, alpha, images: power_law_magnitude(size, alpha),
    "images": _images_spectrum,
}

# visualize.parameterization: (recipe, n, size, the starting pixels, the starts' generator,
# device, MACO's magnitude) -> the parameterization
PARAMETERIZATIONS = {
    "pixel": lambda r, n, size, pixels, gen, device, magnitude: Pixel(pixels, r.median_every, r.median_size),
    "fourier": lambda r, n, size, pixels, gen, device, magnitude: Fourier(n, size, gen, device),
    "maco": lambda r, n, size, pixels, gen, device, magnitude: Maco(n, magnitude, gen, device),
}

# ---- optimizers ---------------------------------------------------------------------

# visualize.normalize (ascent): what the gradient is divided by before the step
NORMALIZE = {
    "rms": lambda g: g / (g.pow(2).mean(dim=tuple(range(1, g.ndim)), keepdim=True).sqrt() + 1e-12),  # pixel units
    "none": lambda g: g,
}


class Ascent:
    """The paper's gradient ascent: each image's gradient divided as ``normalize`` says
    (``rms``: by its root mean square, so ``step_size`` is in pixel units), times ``step_size``."""

    def __init__(self, tensor: torch.Tensor, step_size: float, normalize: str):
        if normalize not in NORMALIZE:
            raise ValueError(f"visualize.normalize: unknown {normalize!r}; choose one of {', '.join(NORMALIZE)}")
        self.tensor, self.step_size, self.normalize = tensor, step_size, NORMALIZE[normalize]

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self.tensor.add_(self.step_size * self.normalize(grad))


class Adam:
    """Adam climbing (``maximize=True``) with learning rate ``step_size`` (Lucent's
    default: 0.05) and torch's defaults otherwise, through ``torch.optim.adam.adam``,
    the functional form of ``torch.optim.Adam`` (the same fused kernel, the same numbers):
    ``Optimizer.step``'s own bookkeeping took 0.15 of the 0.21 ms of each step for 12
    Fourier images (CPU, measured); fused: one kernel for the update, 0.16 against 0.37
    ms for the loop over tensors."""

    def __init__(self, tensor: torch.Tensor, step_size: float, normalize: str):
        from torch.optim.adam import adam

        self.tensor, self.step_size, self._adam = tensor, step_size, adam
        self.fused = tensor.device.type in ("cpu", "cuda")
        self.avg, self.avg_sq = torch.zeros_like(tensor), torch.zeros_like(tensor)
        self.count = torch.zeros((), dtype=torch.float32, device=tensor.device if self.fused else "cpu")

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self._adam([self.tensor], [grad], [self.avg], [self.avg_sq], [], [self.count], foreach=False,
                   fused=self.fused, amsgrad=False, beta1=0.9, beta2=0.999, lr=self.step_size, weight_decay=0.0,
                   eps=1e-8, maximize=True)


# visualize.optimizer: (parameters, step_size, normalize) -> an object whose step(grad) climbs
OPTIMIZERS = {"ascent": Ascent, "adam": Adam}

# ---- transforms ---------------------------------------------------------------------

# Lucent's standard_transforms (pad 12 with gray, jitter 8, scale 0.9-1.1, rotate
# +-10 degrees, jitter 4); Lucent draws scale and angle from lists of 11 and 26
# values (six of them 0), here they are uniform over the same ranges
PRESETS = {
    "lucent": ({"pad": 12}, {"jitter": 8}, {"scale": [0.9, 1.1]}, {"rotate": 10}, {"jitter": 4}),
}


# Each transform draws its random numbers for n images (``draw``: value, n, generator ->
# (n, k), or None) and builds (n, 3, 3) matrices in the canvas' normalized coordinates from
# draws of any number of images (``build``: value, draws, canvas -> matrices, new canvas).
# Apart, so that a whole run's draws can be made step by step, in the order a step makes
# them, and its matrices built in one batch: per step, building them took 0.17 ms of a
# 10.7 ms step (12 Fourier images at 64 px, VGG-16/8, 2 CPU threads, measured).


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


def generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Two independent generators from one seed: the starts' (Fourier, MACO) and the
    transforms' (NumPy's SeedSequence spreads the seed into two unrelated ones)."""
    a, b = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(a) >> 1), torch.Generator().manual_seed(int(b) >> 1)

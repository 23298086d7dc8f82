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


import numpy as np
import torch
import torch.nn.functional as F

from featevo.data.spectra import frequencies

from featevo.optvis.transforms import median_filter


# ---- the paper's median filter (every visualize.median_every steps of the pixel ascent) ----


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
        self.scale = (1.0 / frequencies(size, size, torch, real=True).clamp(min=1.0 / size) ** decay_power).to(device)
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
    f = frequencies(size, size, torch).clamp(min=1.0 / size)
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
    from featevo.data.inputs import to_pixels

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


# ---- transforms ---------------------------------------------------------------------


# Each transform draws its random numbers for n images (``draw``: value, n, generator ->
# (n, k), or None) and builds (n, 3, 3) matrices in the canvas' normalized coordinates from
# draws of any number of images (``build``: value, draws, canvas -> matrices, new canvas).
# Apart, so that a whole run's draws can be made step by step, in the order a step makes
# them, and its matrices built in one batch: per step, building them took 0.17 ms of a
# 10.7 ms step (12 Fourier images at 64 px, VGG-16/8, 2 CPU threads, measured).



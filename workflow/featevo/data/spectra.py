"""Images as signals: the frequency of each FFT bin and an image's power spectrum, one
home for the ascent's Fourier parameterization (torch) and the measures (NumPy).
Imports neither: the caller passes its array library (``xp``: ``numpy`` or ``torch``)."""

from __future__ import annotations


def frequencies(h: int, w: int, xp, *, real: bool = False, norm: str = "radial"):
    """(h, w) frequency of each bin of a 2-D FFT, in cycles per pixel ((h, w // 2 + 1)
    for a real FFT's, ``real``): ``radial`` its distance from zero, ``max`` the larger
    of its two (a square band, as :func:`featevo.measures.metrics.hf_energy` cuts)."""
    fy = xp.fft.fftfreq(h)[:, None]
    fx = (xp.fft.rfftfreq if real else xp.fft.fftfreq)(w)[None, :]
    if norm == "max":
        return xp.maximum(xp.abs(fy), xp.abs(fx))
    return xp.sqrt(fy ** 2 + fx ** 2)


def centered_power(x, axes: tuple[int, int] = (-2, -1)):
    """|FFT|^2 over ``axes`` of a NumPy array, its mean over them removed first (so that a
    constant image has none)."""
    import numpy as np

    return np.abs(np.fft.fft2(x - x.mean(axis=axes, keepdims=True), axes=axes)) ** 2

"""Image scores against the real images (featevo.measures.scores), on data with a known answer."""

import numpy as np
import pytest
import torch

from featevo.measures import scores
from featevo.models.networks import ModelSpec, build_model


def rng(seed=0):
    return np.random.default_rng(seed)


def blurred(n, size, seed=0):
    """Smooth images: noise averaged over 4x4 blocks, then upsampled."""
    x = rng(seed).random((n, size // 4, size // 4, 3))
    return np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)


def test_power_spectrum_of_a_grating_sits_at_its_frequency():
    size, k = 32, 8  # 8 cycles over 32 pixels: 0.25 cycles per pixel along x
    x = np.arange(size)
    grating = 0.5 + 0.4 * np.cos(2 * np.pi * k * x / size)
    img = np.broadcast_to(grating[None, :, None], (size, size, 3))
    power, freqs = scores.radial_power(img[None], bins=16)
    assert freqs[power[0].argmax()] == pytest.approx(0.25, abs=1 / 32)
    # Parseval: a cosine of amplitude 0.4 has variance 0.08, all in its two bins
    assert scores.power_spectrum(img[None]).sum() / size**2 == pytest.approx(0.08)
    assert scores.power_spectrum(np.full((1, 8, 8, 3), 0.3)).max() < 1e-20  # no power in a constant image


def test_high_frequency_ratio_tells_noise_from_smooth_images():
    real = blurred(20, 32, seed=1)
    assert scores.high_frequency_ratio(real, real).mean() == pytest.approx(1.0)
    noise = rng(2).random((5, 32, 32, 3))
    smooth = blurred(5, 32, seed=3)
    assert (scores.high_frequency_ratio(noise, real) > 5).all()
    assert scores.high_frequency_ratio(smooth, real).mean() == pytest.approx(1.0, rel=0.5)
    # uint8 and floats in [0, 1] read alike
    as_uint8 = (noise * 255).round().astype(np.uint8)
    np.testing.assert_allclose(scores.high_frequency_ratio(as_uint8, real), scores.high_frequency_ratio(noise, real),
                               rtol=1e-2)
    with pytest.raises(ValueError, match="real images"):
        scores.high_frequency_ratio(noise, blurred(2, 16))


def test_class_similarity_ranks_against_the_real_images():
    g = rng(4)
    centres = np.eye(3, 16) * 5
    labels = np.repeat([0, 1, 2], 30)
    real = centres[labels] + g.normal(size=(90, 16))
    images = np.stack([centres[0], centres[1] + 3 * g.normal(size=16), centres[0]])  # typical, vague, wrong class
    out = scores.class_similarity(images, np.array([0, 1, 2]), real, labels)
    assert out["similarity"][0] > 0.99 and out["percentile"][0] == 1.0  # the class's centre itself
    assert out["percentile"][2] == 0.0 and out["similarity"][2] < 0.2  # class 0's centre, read as class 2
    assert 0 < out["similarity"][1] < out["similarity"][0]
    # a real image scored as an image sits within its class's spread (leave-one-out)
    typical = scores.class_similarity(real[:30], labels[:30], real, labels)["percentile"]
    assert 0.3 < typical.mean() < 0.7
    with pytest.raises(ValueError, match="at least 2"):
        scores.class_similarity(images[:1], np.array([0]), real[:1], labels[:1])


def test_penultimate_is_the_input_of_the_output_layer():
    model = build_model(ModelSpec(num_classes=4, width_divisor=16, pool_size=1), seed=0).eval()
    images = (rng(5).random((3, 32, 32, 3)) * 255).astype(np.uint8)
    feats, logits = scores.penultimate(model, images, batch=2)
    head = model.classifier[-1]
    torch.testing.assert_close(head(torch.from_numpy(feats)), torch.from_numpy(logits), atol=1e-5, rtol=1e-5)
    assert feats.shape == (3, head.in_features)
    assert all(p.requires_grad for p in model.parameters())  # the caller's model as it was

import numpy as np

from featevo.metrics import checkpoint_rows, hf_energy, png_ratio, total_variation


def images():
    rng = np.random.default_rng(0)
    flat = np.full((64, 64, 3), 128, np.uint8)
    ramp = np.repeat(np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 64, 0), 3, 2)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return flat, ramp, noise


def test_complexity_measures_order_flat_smooth_noise():
    flat, ramp, noise = images()
    for measure in (png_ratio, hf_energy, total_variation):
        assert measure(flat) <= measure(ramp) < measure(noise), measure.__name__
    assert total_variation(flat) == 0 and hf_energy(flat) == 0
    assert 0.5 < hf_energy(noise) < 1  # white noise: most energy above half Nyquist


def test_confusion_reads_own_and_leak_probabilities(tmp_path):
    flat, ramp, noise = images()
    probs = np.array([[0.9, 0.1, 0.0], [0.7, 0.2, 0.1], [0.0, 0.0, 1.0]])
    np.savez(tmp_path / "c.npz", images=np.stack([flat, ramp, noise]), units=np.array([0, 1, 2]),
             names=np.array(["a", "b", "c"]), probs=probs)
    rows = checkpoint_rows(tmp_path / "c.npz", epoch=5)
    assert [r["own_prob"] for r in rows] == [0.9, 0.2, 1.0]
    assert [r["leak_prob"] for r in rows] == [0.1, 0.7, 0.0]  # b's image is more "a" than b
    assert {r["epoch"] for r in rows} == {5}

import numpy as np
import pytest

from featevo.measures.metrics import checkpoint_rows, hf_energy, png_ratio, total_variation


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


def test_fixed_network_measures_find_shared_features():
    import torch

    from featevo.measures.metrics import fixed_network_measures
    from featevo.models.networks import ModelSpec, build_model
    from featevo.data.inputs import imagenet_normalize

    flat, ramp, noise = images()
    net = build_model(ModelSpec(num_classes=5, width_divisor=16, pool_size=1), seed=0).eval()
    # epoch 0: classes 0 and 1 drew the same image; epoch 1: all differ
    batch = np.stack([np.stack([noise, noise, flat]), np.stack([noise, ramp, flat])])
    m = fixed_network_measures(batch, net, units=[4, 2, 0])
    assert m["judge_similarity"].shape == (2, 3)
    assert m["judge_similarity"][0, 0] == pytest.approx(1.0, abs=1e-5)
    assert m["judge_similarity"][0, 1] == pytest.approx(1.0, abs=1e-5)
    assert m["judge_similarity"][1, 0] < 1 - 1e-4
    with torch.no_grad():
        x = torch.from_numpy(np.stack([noise, ramp, flat])).permute(0, 3, 1, 2).float() / 255
        p = net(imagenet_normalize(x)).softmax(1)
    np.testing.assert_allclose(m["judge_prob"][1], [p[0, 4], p[1, 2], p[2, 0]], rtol=1e-5)


def test_every_image_is_scored_against_the_real_images_in_its_place():
    """real_percentile and hf_ratio of each (epoch, restart, class) image are featevo.measures.scores'
    of that image: the judge's penultimate features against the real images of its class,
    and its high-frequency power against theirs."""
    from featevo.measures import scores
    from featevo.measures.metrics import fixed_network_measures
    from featevo.models.networks import ModelSpec, build_model

    rng = np.random.default_rng(1)
    net = build_model(ModelSpec(num_classes=3, width_divisor=16, pool_size=1), seed=0).eval()
    real = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 4)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (2, 2, 3, 4, 4, 3), dtype=np.uint8), 8, 3), 8, 4)
    batch = smooth.copy()  # (epochs 2, restarts 2, classes 3, 32, 32, 3), every image its own
    batch[1, 0, 2] = real[9]  # a real image of class 2, as class 2's image at epoch 1, restart 0
    m = fixed_network_measures(batch, net, units=[0, 1, 2], real=(real, labels))
    flat = batch.reshape(-1, 32, 32, 3)
    classes = np.tile(np.arange(3), 4)
    want = scores.class_similarity(scores.penultimate(net, flat)[0], classes, scores.penultimate(net, real)[0],
                                   labels)["percentile"].reshape(2, 2, 3)
    np.testing.assert_allclose(m["restart_percentile"], want, atol=1e-6)
    np.testing.assert_allclose(m["real_percentile"], want.mean(1), atol=1e-6)
    hf = m["restart_hf"]
    np.testing.assert_allclose(hf, scores.high_frequency_ratio(flat, real).reshape(2, 2, 3), rtol=1e-9)
    # the blocky images have less fine detail than the noise-like real ones; the real one as much
    assert (np.delete(hf.reshape(-1), 8) < 0.5).all() and 0.5 < hf[1, 0, 2] < 2  # (1, 0, 2) is the 9th
    assert m["hf_ratio"].shape == (2, 3)
    assert "real_percentile" not in fixed_network_measures(batch, net, units=[0, 1, 2])


def test_confusion_figure_is_written(tmp_path):
    from featevo.figures.measures import plot_confusion

    mats = {e: np.eye(3) * (e / 4) + (1 - e / 4) / 3 for e in range(5)}
    plot_confusion(mats, ["a", "b", "c"], "x", [tmp_path / "c.png"])
    assert (tmp_path / "c.png").stat().st_size > 2000


def colour_judge():
    """A judge whose penultimate features are an image's mean normalized colour."""
    import torch

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3),
                              torch.nn.Linear(3, 2))
    with torch.no_grad():
        net[2].weight.copy_(torch.eye(3))
        net[2].bias.zero_()
    return net.eval()


def solid(r, g, b):
    return np.tile(np.array([r, g, b], np.uint8), (16, 16, 1))


def test_restart_spread_change_and_the_test_an_epoch_must_pass():
    """Two restarts per epoch: epoch 1 repeats epoch 0's pair (no change beyond the
    spread), epoch 2 draws something else in both restarts (a change beyond it)."""
    from featevo.measures.metrics import fixed_network_measures

    red, reddish, blue, bluish = solid(250, 0, 0), solid(230, 40, 10), solid(0, 0, 250), solid(20, 30, 230)
    # (epochs, restarts, classes=1, H, W, 3)
    batch = np.stack([np.stack([[red], [reddish]]), np.stack([[red], [reddish]]), np.stack([[blue], [bluish]])])
    m = fixed_network_measures(batch, colour_judge(), units=[1])
    assert m["restart_spread"].shape == (3, 1) and np.isnan(m["change"][0, 0])
    assert m["restart_spread"][0, 0] > 0 and m["restart_spread"][0, 0] == pytest.approx(m["restart_spread"][1, 0])
    # epoch 0 -> 1: the same two images again; the cross distance is the spread itself (half the pairs are equal)
    assert m["change"][1, 0] == pytest.approx(m["restart_spread"][0, 0] / 2, rel=1e-3)
    assert m["change"][2, 0] > 10 * max(m["restart_spread"][1, 0], m["restart_spread"][2, 0])


def test_measure_tests_each_change_reads_leakage_purity_and_top_set_overlap(tmp_path):
    """Six restarts per epoch, each a slightly different shade: epoch 1 draws the same colours
    as epoch 0 (no change beyond the restarts), epoch 2 other colours (a change); the exact
    permutation test over the 924 splits tells them apart, after BH over the class-epochs."""
    from featevo.measures.metrics import jaccard, measure

    net = colour_judge()
    rng = np.random.default_rng(0)

    def shades(rgb):  # six restarts around one colour
        return [solid(*np.clip(np.array(rgb) + rng.integers(-25, 25, 3), 0, 255)) for _ in range(6)]

    files = []
    for e, (a, b) in enumerate([((250, 0, 0), (0, 0, 250)), ((250, 0, 0), (0, 0, 250)),
                                ((0, 250, 0), (250, 0, 0))]):
        ra, rb = shades(a), shades(b)
        np.savez(tmp_path / f"{e}.npz", images=np.stack([ra[0], rb[0]]), units=np.array([0, 1]),
                 names=np.array(["x", "y"]), probs=np.full((2, 2), 0.5),
                 restart_images=np.stack([[x, y] for x, y in zip(ra, rb)]),
                 saturated=np.full((6, 2), 0.25 * e), top_index=np.array([[0, 1], [2, 3 + e]]),
                 top_purity=np.array([1.0, 0.5]))
        files.append(tmp_path / f"{e}.npz")
    df, matrices, restarts = measure(files, [0, 1, 2], net, [0, 1])
    assert df["changed"].tolist() == [False, False, False, False, True, True]
    p = df["change_p"].to_numpy()
    assert np.isnan(p[:2]).all() and (p[2:4] > 0.05).all() and (p[4:] == pytest.approx(2 / 924))
    assert df["saturated"].tolist() == [0, 0, 0.25, 0.25, 0.5, 0.5]
    assert df["top_purity"].tolist() == [1.0, 0.5] * 3
    assert df["top_jaccard"].iloc[2:].tolist() == [1.0, jaccard(np.array([2, 4]), np.array([2, 3])), 1.0, 1 / 3]
    m = matrices[2]  # the judge's p(class j | image of class i), mean over restarts
    np.testing.assert_allclose(m.sum(axis=1), 1, rtol=1e-5)  # two classes: its two units
    np.testing.assert_allclose(df["judge_leak"].iloc[4:], [m[0, 1], m[1, 0]], rtol=1e-5)
    # every restart's reading, for the claims' tests: their mean is the table's
    assert len(restarts) == 3 * 6 * 2 and set(restarts) >= {"restart", "judge_prob", "judge_leak", "png_ratio"}
    mean = restarts.groupby(["epoch", "class"], sort=True)["judge_prob"].mean().to_numpy()
    np.testing.assert_allclose(mean, df["judge_prob"], rtol=1e-5)

"""featevo.measures.represent: linear CKA on known cases, the layers read, and the comparison over epochs."""

import numpy as np
import pytest
import torch

from featevo.figures.measures import cka_figure
from featevo.measures import represent
from featevo.models.networks import ModelSpec, build_model
from featevo.config.settings import Settings


def direct_cka(x, y):
    """Kornblith et al.'s formula on the features themselves, in float64."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_cka_is_one_with_itself_and_invariant_to_rotation_and_isotropic_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 20))
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    k = represent.center_gram(x)
    assert represent.linear_cka(k, k) == pytest.approx(1.0, abs=1e-12)
    assert represent.linear_cka(k, represent.center_gram(3.7 * x @ q)) == pytest.approx(1.0, abs=1e-12)
    # not invariant to scaling one feature (that is CCA's invariance, not CKA's)
    skew = x * np.r_[10.0, np.ones(19)]
    assert represent.linear_cka(k, represent.center_gram(skew)) < 0.9
    y = rng.normal(size=(50, 7))
    assert represent.linear_cka(k, represent.center_gram(y)) == pytest.approx(direct_cka(x, y), rel=1e-10)
    assert np.isnan(represent.linear_cka(k, represent.center_gram(np.ones((50, 3)))))


def test_cka_of_float32_features_far_from_their_mean_keeps_the_differences():
    """Activations of large common offset (a ReLU layer's) and small differences: centring
    in float64 before the product keeps them; a float32 Gram of raw features does not."""
    rng = np.random.default_rng(1)
    x = (1000.0 + rng.normal(size=(40, 30))).astype(np.float32)
    y = (1000.0 + rng.normal(size=(40, 30))).astype(np.float32)
    exact = direct_cka(x.astype(np.float64), y.astype(np.float64))
    ours = represent.linear_cka(represent.center_gram(x), represent.center_gram(y))
    assert ours == pytest.approx(exact, rel=1e-6)
    raw = x @ x.T  # float32, uncentred, centred afterwards
    h = np.eye(40, dtype=np.float32) - 1 / 40
    naive = represent.linear_cka(h @ raw @ h, h @ (y @ y.T) @ h)
    assert abs(naive - exact) > 100 * abs(ours - exact)


def test_vgg_is_read_at_its_blocks_fc6_fc7_and_output_and_other_networks_at_their_stages():
    vgg = build_model(ModelSpec(num_classes=4, width_divisor=16, pool_size=1), seed=0)
    names = [(layer.name, layer.module) for layer in represent.layers(vgg)]
    assert names == [("conv1", "features.4"), ("conv2", "features.9"), ("conv3", "features.16"),
                     ("conv4", "features.23"), ("conv5", "features.30"), ("fc6", "classifier.1"),
                     ("fc7", "classifier.4"), ("output", "classifier.6")]
    assert represent.layers(vgg)[0].params == ("features.0", "features.2")
    resnet = build_model(ModelSpec(arch="resnet18", num_classes=4), seed=0)
    assert [layer.name for layer in represent.layers(resnet)] == ["conv1", "bn1", "layer1", "layer2", "layer3",
                                                                  "layer4", "output"]
    mobile = build_model(ModelSpec(arch="mobilenet_v3_small", num_classes=4), seed=0)
    got = [layer.name for layer in represent.layers(mobile)]
    assert got[0] == "features.0" and got[-1] == "output" and len(got) == 14


def test_a_checkpoint_is_read_once_and_compared_over_epochs_and_seeds():
    """Three epochs of two seeds: the same network is CKA 1 with itself; a frozen layer
    (unchanged weights) is 1 everywhere and settled from the start; a retrained one is not."""
    spec = ModelSpec(num_classes=3, width_divisor=16, pool_size=1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(30) % 3
    r = Settings({"images_per_class": 6, "pool": 2}, "represent")
    runs = {}
    for seed in (0, 1):
        first = build_model(spec, seed=10)  # one start for both seeds (as pretrained's)
        nets = [first]
        for e in (1, 2):
            net = build_model(spec, seed=10)
            net.load_state_dict(nets[-1].state_dict())
            with torch.no_grad():  # epoch e changes every layer above the first block
                for name, p in net.named_parameters():
                    if not name.startswith(("features.0.", "features.2.")):
                        p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(100 * seed + e)))
            nets.append(net)
        runs[seed] = [represent.read_checkpoint(n, None if i == 0 else nets[i - 1].state_dict(), images, labels, 3,
                                                r, device="cpu", precision="fp32") for i, n in enumerate(nets)]
    assert runs[0][0]["gram"].shape == (8, 18, 18)
    assert list(runs[0][0]["images"]) == [0, 3, 6, 9, 12, 15, 1, 4, 7, 10, 13, 16, 2, 5, 8, 11, 14, 17]
    df = represent.compare(runs, [0, 1, 2])
    conv1 = df[df["layer"] == "conv1"]
    assert np.allclose(conv1[["cka_last", "cka_start", "cka_seeds"]], 1.0, atol=1e-6)
    assert np.allclose(conv1[["dcka_last", "dcka_start", "dcka_seeds"]], 1.0, atol=1e-6)
    assert (conv1["dcka_null_q95"] < 0.9).all()  # shuffled images are not the layer itself
    assert conv1["settled"].all() and (conv1[conv1["epoch"] > 0]["weight_change"] == 0).all()
    fc7 = df[(df["layer"] == "fc7") & (df["seed"] == 0)].set_index("epoch")
    assert fc7.loc[2, "cka_last"] == pytest.approx(1.0, abs=1e-6) and fc7.loc[0, "cka_last"] < 0.999
    assert fc7.loc[1, "weight_change"] > 0.01 and np.isnan(fc7.loc[0, "weight_change"])
    settle = represent.settle_epochs(df, runs, [0, 1, 2]).set_index(["seed", "layer"])
    # conv1 never moved: settled by the seeds' floor from the start, but by its own progress
    # it is "never moved", not "settled early"
    assert settle.loc[(0, "conv1"), "settle_floor"] == 0 and np.isnan(settle.loc[(0, "conv1"), "settle_epoch"])
    assert settle.loc[(0, "conv1"), "moved"] < represent.MOVED < settle.loc[(0, "fc7"), "moved"]
    fc7_settle = settle.loc[(0, "fc7")]
    assert fc7_settle["settle_low"] <= fc7_settle["settle_epoch"] <= fc7_settle["settle_high"]
    one = represent.compare({0: runs[0]}, [0, 1, 2])  # one seed: no floor, but its own progress
    assert one["cka_seeds"].isna().all() and represent.settle_epochs(one)["settle_floor"].isna().all()
    assert represent.settle_epochs(one).set_index("layer").loc["fc7", "settle_epoch"] in (1.0, 2.0)


def _interpolated(ts, n=40, width=30, seed=0):
    """Centred Grams of features moving from X0 to X1: (1 - t) X0 + t X1 at each epoch."""
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=(n, width)), rng.normal(size=(n, width))
    return [represent.center_gram(((1 - t) * x0 + t * x1)) for t in ts]


def test_the_settle_epoch_tells_never_moved_from_settled_early_and_late():
    """Known answers: a layer that reaches its end at epoch 1 and stays settles at 1; one
    that only gets there at the last epoch settles there; one that never moves has none."""
    epochs = [0, 1, 2, 3, 4]
    early = _interpolated([0, 1, 1, 1, 1])
    late = _interpolated([0, 0.1, 0.2, 0.3, 1])
    still = _interpolated([0, 0, 0, 0, 0])
    assert represent.settle_epoch(represent.progress(early)[0], epochs) == 1
    assert represent.settle_epoch(represent.progress(late)[0], epochs) == 4
    assert np.isnan(represent.settle_epoch(represent.progress(still)[0], epochs))
    low, high = represent.settle_interval(early, epochs, seed=0)
    assert low == high == 1  # every half of the images agrees
    assert np.isnan(represent.settle_interval(still, epochs, seed=0)).all()


def test_the_heatmap_is_drawn(tmp_path):
    import pandas as pd

    rows = [{"seed": s, "epoch": e, "layer": f"l{d}", "depth": d, "cka_prev": 0.9, "cka_last": 0.5 + e / 10,
             "cka_start": 1 - e / 10, "cka_seeds": 0.7, "floor_last": 0.8, "settled": e > 2,
             "weight_change": 0.1 / (e + 1)} for s in (0, 1) for e in range(5) for d in range(3)]
    cka_figure(pd.DataFrame(rows), "scratch", [tmp_path / "h.png", tmp_path / "h.pdf"])
    assert (tmp_path / "h.png").stat().st_size > 5000 and (tmp_path / "h.pdf").is_file()


def _song_hsic(k, l):  # noqa: E741
    """Song et al. (2012)'s unbiased HSIC, written from the paper's formula (eq. 5)."""
    n = len(k)
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))


@pytest.mark.parametrize("width", [128, 1024])
def test_debiased_cka_of_independent_representations_is_near_zero_at_any_width(width):
    # the biased estimator reads width as similarity (the 0.57 and 0.91); the
    # debiased one does not: its sd at n = 100 is about 1/n
    rng = np.random.default_rng(width)
    x, y = rng.normal(size=(100, width)), rng.normal(size=(100, width))
    kx, ky = represent.center_gram(x), represent.center_gram(y)
    assert represent.linear_cka(kx, ky) > (0.5 if width == 128 else 0.85)
    assert abs(represent.debiased_cka(kx, ky)) < 0.05


def test_debiased_cka_is_song_s_unbiased_hsic_normalized_and_ignores_the_features_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 12)) + 5
    y = x @ rng.normal(size=(12, 7)) + rng.normal(size=(40, 7))
    k, l = x @ x.T, y @ y.T  # noqa: E741  (uncentred)
    want = _song_hsic(k, l) / np.sqrt(_song_hsic(k, k) * _song_hsic(l, l))
    assert represent.debiased_cka(k, l) == pytest.approx(want, rel=1e-9)
    assert represent.debiased_cka(represent.center_gram(x), represent.center_gram(y)) == pytest.approx(want, rel=1e-9)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert represent.debiased_cka(represent.center_gram(x @ q * 3), k) == pytest.approx(1.0, abs=1e-9)
    assert np.isnan(represent.debiased_cka(np.zeros((10, 10)), k[:10, :10]))


def test_the_null_of_shuffled_images_sits_below_related_representations_and_around_unrelated_ones():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 256))
    related = x[:, :64] @ rng.normal(size=(64, 64)) + rng.normal(size=(100, 64))
    kx, kr, ku = (represent.center_gram(a) for a in (x, related, rng.normal(size=(100, 512))))
    null = represent.cka_null(kx, kr, 200, seed=0)
    assert null.shape == (200,) and abs(null.mean()) < 0.02 and np.quantile(null, 0.95) < 0.1
    assert represent.debiased_cka(kx, kr) > 0.2 > np.quantile(null, 0.95)
    # an unrelated pair is inside its own null (a two-sided 99% range)
    lo, hi = np.quantile(represent.cka_null(kx, ku, 200, seed=1), [0.005, 0.995])
    assert lo - 0.01 <= represent.debiased_cka(kx, ku) <= hi + 0.01
    assert np.array_equal(null, represent.cka_null(kx, kr, 200, seed=0))  # seeded

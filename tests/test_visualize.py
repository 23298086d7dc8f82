import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import method_settings, viz_settings
from featevo.models import ModelSpec, build_model
from featevo.plots import composite, grid_positions
from featevo.visualize import activation_maximization, median_filter, objective_values


@pytest.mark.parametrize("size", [3, 5, 7])
@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 1, 6, 6)])
def test_median_filter_matches_scipy_mirror(size, shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(size))
    ours = median_filter(x, size).numpy()
    ref = ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="mirror")
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("size", [3, 5, 9])
def test_median_filter_with_ties_and_channels_last_matches_scipy(size):
    # few distinct values: the selection network must still pick the middle one
    x = torch.randint(0, 4, (2, 3, 19, 16), generator=torch.Generator().manual_seed(0)).float() / 3
    ours = median_filter(x.contiguous(memory_format=torch.channels_last), size).numpy()
    ref = ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="mirror")
    np.testing.assert_array_equal(ours, ref)


def test_median_filter_rejects_even_size():
    with pytest.raises(ValueError, match="odd"):
        median_filter(torch.rand(1, 3, 8, 8), 4)


def tiny_model(classes=4, seed=0):
    return build_model(ModelSpec(num_classes=classes, width_divisor=16, pool_size=1), seed=seed).eval()


@pytest.fixture(scope="module")
def trained():
    """A tiny VGG trained briefly to tell which quadrant is bright.

    An untrained VGG's logits barely depend on the input, and its input
    gradients are noise that the median filter removes: nothing to maximize.
    """
    torch.manual_seed(0)
    model = tiny_model()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        y = torch.randint(0, 4, (32,), generator=gen)
        x = torch.rand(32, 3, 32, 32, generator=gen) * 0.3
        for i, k in enumerate(y.tolist()):
            r, c = divmod(k, 2)
            x[i, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] += 0.7  # a bright quadrant per class
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("objective", ["logit", "log_softmax", "softmax"])
def test_activation_maximization_raises_each_objective(trained, objective):
    # projected gradient ascent alone (the median filter is a regularizer and may cost a
    # little objective for a class; the logit test below runs with it)
    result = activation_maximization(trained, [0, 1, 2, 3], **viz_settings(image_size=32, steps=24, step_size=0.02,
                                     objective=objective, median_every=0))
    first, last = result["trace"][0], result["trace"][-1]
    assert result["trace"].shape == (24, 4)
    # every unit ends at least where it started (log-softmax and softmax can start saturated) ...
    assert (last >= first - 1e-6).all(), (first, last)
    # ... and the objective rises over the run
    assert last.sum() > first.sum() + 1e-3
    imgs = result["images"]
    assert imgs.shape == (4, 3, 32, 32) and imgs.min() >= 0 and imgs.max() <= 1  # clipped


def test_activation_maximization_raises_every_logit_with_median_and_clipping(trained):
    units = torch.tensor([2, 0, 3, 1])
    start = activation_maximization(trained, units.tolist(), **viz_settings(image_size=32, steps=0, seed=1))
    result = activation_maximization(trained, units.tolist(), **viz_settings(image_size=32, steps=30, step_size=0.05,
                                     objective="logit", seed=1))
    pick = torch.arange(4)
    assert (result["logits"][pick, units] > start["logits"][pick, units]).all()


def test_activation_maximization_is_seeded():
    model = tiny_model()
    a = activation_maximization(model, [0, 1], **viz_settings(image_size=32, steps=5, seed=7))["images"]
    b = activation_maximization(model, [0, 1], **viz_settings(image_size=32, steps=5, seed=7))["images"]
    c = activation_maximization(model, [0, 1], **viz_settings(image_size=32, steps=5, seed=8))["images"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_objective_values_pick_own_unit():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0]])
    units = torch.tensor([2, 1])
    assert objective_values(logits, units, "logit").tolist() == [3.0, 5.0]
    np.testing.assert_allclose(objective_values(logits, units, "softmax"), logits.softmax(1)[[0, 1], [2, 1]])
    with pytest.raises(ValueError, match="visualize.objective"):
        objective_values(logits, units, "nope")


def test_composite_is_clockwise_from_upper_left():
    # tree frog, flamingo, hamburger, pool table -> UL, UR, LR, LL (the paper's captions)
    images = np.stack([np.full((4, 4, 3), 10 * (i + 1), np.uint8) for i in range(4)])
    out = composite(images)
    assert out.shape == (8, 8, 3)
    assert out[0, 0, 0] == 10  # upper left: class 0
    assert out[0, 7, 0] == 20  # upper right: class 1
    assert out[7, 7, 0] == 30  # lower right: class 2
    assert out[7, 0, 0] == 40  # lower left: class 3


def test_grid_for_other_class_counts_is_row_major():
    assert grid_positions(2) == [(0, 0), (0, 1)]
    assert grid_positions(5) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    out = composite(np.stack([np.full((2, 2, 3), i, np.uint8) for i in range(5)]))
    assert out.shape == (4, 6, 3) and out[2, 2, 0] == 4 and out[3, 5, 0] == 255  # empty cell is white


def test_the_caller_s_model_is_left_as_it_was_found():
    """As captum's attributions do: gradients, mode and tensors of the caller's network unchanged."""
    from featevo.explain import explain
    from featevo.models import ModelSpec, build_model
    from featevo.visualize import activation_maximization

    model = build_model(ModelSpec(num_classes=3, width_divisor=16, pool_size=1), seed=0).train()
    model.classifier[6].weight.requires_grad_(False)  # the caller's own choice, kept
    flags = [p.requires_grad for p in model.parameters()]
    ptrs = [p.data_ptr() for p in model.parameters()]
    activation_maximization(model, [0, 1], **viz_settings(image_size=32, steps=2))
    images = (np.random.default_rng(0).random((2, 32, 32, 3)) * 255).astype(np.uint8)
    explain(model, images, np.array([0, 1]), ["saliency"], device="cpu", log=lambda m: None, **method_settings())
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [p.data_ptr() for p in model.parameters()] == ptrs  # the same tensors, layout included


def test_keep_best_returns_each_image_s_best_filtered_iterate(trained):
    """keep="best": of the images the median filter has just smoothed (after steps 3, 6,
    ...) and the last, each image is the one whose objective was highest; an unfiltered
    iterate, however high its objective, is never kept."""
    units = [0, 1, 2, 3]
    settings = viz_settings(image_size=32, steps=31, step_size=0.3, median_every=3, median_size=3)
    last = activation_maximization(trained, units, **{**settings, "keep": "last"})
    best = activation_maximization(trained, units, **{**settings, "keep": "best"})
    np.testing.assert_array_equal(best["trace"], last["trace"])  # the same ascent
    own = best["logits"].log_softmax(1)[torch.arange(4), torch.tensor(units)].numpy()
    final = last["logits"].log_softmax(1)[torch.arange(4), torch.tensor(units)].numpy()
    filtered = best["trace"][3::3]  # trace[i]: the objective of the image after i steps
    np.testing.assert_allclose(own, np.maximum(filtered.max(0), final), rtol=1e-5, atol=1e-6)
    # each kept image is the very image a shorter ascent ends with, after a filter or at the end
    for k in range(4):
        after = int(np.argmax(np.append(filtered[:, k], final[k]))) * 3 + 3
        after = min(after, 31)
        shorter = activation_maximization(trained, units, **{**settings, "steps": after, "keep": "last"})
        assert torch.equal(best["images"][k], shorter["images"][k]), (k, after)

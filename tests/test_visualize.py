import numpy as np
import pytest
import torch
from scipy import ndimage

from featevo.models import ModelSpec, build_model
from featevo.visualize import (activation_maximization, composite, grid_positions, median_filter,
                               objective_values)


@pytest.mark.parametrize("size", [3, 5, 7])
@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 1, 6, 6)])
def test_median_filter_matches_scipy_mirror(size, shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(size))
    ours = median_filter(x, size).numpy()
    ref = ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="mirror")
    np.testing.assert_array_equal(ours, ref)


def test_median_filter_rejects_even_size():
    with pytest.raises(ValueError, match="odd"):
        median_filter(torch.rand(1, 3, 8, 8), 4)


def tiny_model(classes=4, seed=0):
    return build_model(ModelSpec(num_classes=classes, width_divisor=16, pool_size=1), seed=seed).eval()


@pytest.mark.parametrize("objective", ["logit", "log_softmax", "softmax"])
def test_activation_maximization_raises_each_objective(objective):
    model = tiny_model()
    units = [0, 1, 2, 3]
    result = activation_maximization(model, units, image_size=32, steps=24, step_size=0.05, objective=objective,
                                     median_every=4)
    trace = result["trace"]
    assert trace.shape == (24, 4)
    # the median filter can cost a little at single steps; over the run every class unit must rise
    assert (trace[-1] > trace[0]).all(), trace[[0, -1]]
    imgs = result["images"]
    assert imgs.shape == (4, 3, 32, 32) and imgs.min() >= 0 and imgs.max() <= 1  # clipped


def test_activation_maximization_raises_logits_against_start():
    model = tiny_model(seed=3)
    result = activation_maximization(model, [2, 0], image_size=32, steps=30, step_size=0.05, objective="logit",
                                     seed=1)
    start = activation_maximization(model, [2, 0], image_size=32, steps=0, seed=1)
    final = result["logits"][torch.arange(2), torch.tensor([2, 0])]
    first = start["logits"][torch.arange(2), torch.tensor([2, 0])]
    assert (final > first).all()


def test_activation_maximization_is_seeded():
    model = tiny_model()
    a = activation_maximization(model, [0, 1], image_size=32, steps=5, seed=7)["images"]
    b = activation_maximization(model, [0, 1], image_size=32, steps=5, seed=7)["images"]
    c = activation_maximization(model, [0, 1], image_size=32, steps=5, seed=8)["images"]
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

import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import ROOT, method_settings, quadrant_model, tiny_model, viz_settings
from featevo.data.inputs import imagenet_normalize
from featevo.models.networks import ModelSpec, build_model
from featevo.data.layout import composite, grid_positions
from featevo.optvis.transforms import median_filter
from featevo.optvis.objectives import objective_values
from featevo.optvis.render import activation_maximization


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


@pytest.fixture(scope="module")
def trained():
    """:func:`conftest.quadrant_model`: no projected ascent step can lower any of its
    objectives, on any CPU (its docstring says why)."""
    return quadrant_model()


@pytest.mark.parametrize("objective", ["logit", "margin", "log_softmax", "softmax"])
def test_activation_maximization_raises_each_objective(trained, objective):
    # projected gradient ascent alone (the median filter is a regularizer and may cost a
    # little objective for a class; the logit test below runs with it): on the fixture's
    # network no step can lower any of the four objectives (quadrant_model says why), so
    # the only tolerance is float32's summation of 3,072 products
    result = activation_maximization(trained, [0, 1, 2, 3], **viz_settings(steps=24, step_size=0.01, init="gray",
                                     objective=objective, median_every=0, restarts=1))
    first, last = result["trace"][0], result["trace"][-1]
    assert result["trace"].shape == (24, 4)
    # every unit ends at least where it started ...
    assert (last >= first - 1e-6).all(), (first, last)
    # ... and the objective rises over the run
    assert last.sum() > first.sum() + 1e-3
    imgs = result["images"]
    assert imgs.shape == (4, 3, 32, 32) and imgs.min() >= 0 and imgs.max() <= 1  # clipped


def test_activation_maximization_raises_every_logit_with_median_and_clipping(trained):
    units = torch.tensor([2, 0, 3, 1])
    start = activation_maximization(trained, units.tolist(), **viz_settings(steps=0, seed=1,
                                                                            restarts=1))
    result = activation_maximization(trained, units.tolist(), **viz_settings(steps=30, step_size=0.05,
                                     objective="logit", seed=1, restarts=1))
    pick = torch.arange(4)
    assert (result["logits"][pick, units] > start["logits"][pick, units]).all()


def test_activation_maximization_is_seeded():
    model = tiny_model()
    a = activation_maximization(model, [0, 1], **viz_settings(steps=5, seed=7))["images"]
    b = activation_maximization(model, [0, 1], **viz_settings(steps=5, seed=7))["images"]
    c = activation_maximization(model, [0, 1], **viz_settings(steps=5, seed=8))["images"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_objective_values_pick_own_unit():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0]])
    units = torch.tensor([2, 1])
    assert objective_values(logits, units, "logit").tolist() == [3.0, 5.0]
    np.testing.assert_allclose(objective_values(logits, units, "softmax"), logits.softmax(1)[[0, 1], [2, 1]])
    # margin: own logit minus the largest other (3 - 2, 5 - 0)
    assert objective_values(logits, units, "margin").tolist() == [1.0, 5.0]
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
    from featevo.measures.explain import explain
    from featevo.models.networks import ModelSpec, build_model
    from featevo.optvis.render import activation_maximization

    model = build_model(ModelSpec(num_classes=3, width_divisor=16, pool_size=1), seed=0).train()
    model.classifier[6].weight.requires_grad_(False)  # the caller's own choice, kept
    flags = [p.requires_grad for p in model.parameters()]
    ptrs = [p.data_ptr() for p in model.parameters()]
    activation_maximization(model, [0, 1], **viz_settings(steps=2))
    images = (np.random.default_rng(0).random((2, 32, 32, 3)) * 255).astype(np.uint8)
    explain(model, images, np.array([0, 1]), method_settings(saliency={"enabled": True}), device="cpu",
            log=lambda m: None)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [p.data_ptr() for p in model.parameters()] == ptrs  # the same tensors, layout included


def test_restarts_start_from_their_own_noise_and_run_in_one_batch(trained):
    """restarts=K: K images per unit, restart-major, each from noise of its own; every
    restart climbs, and the first restart is the image a single run from the same
    noise ends with (images in a batch are independent)."""
    units = [0, 1, 2, 3]
    settings = dict(steps=12, step_size=0.05, median_every=4, median_size=3, objective="logit")
    three = activation_maximization(trained, units, **viz_settings(**settings, restarts=3))
    assert three["images"].shape == (12, 3, 32, 32) and three["trace"].shape == (12, 12)
    assert three["saturated"].shape == (12,)
    first, last = three["trace"][0], three["trace"][-1]
    assert (last > first).all()
    imgs = three["images"].reshape(3, 4, -1)
    assert not torch.equal(imgs[0], imgs[1]) and not torch.equal(imgs[1], imgs[2])
    start = activation_maximization(trained, units, **viz_settings(**{**settings, "steps": 0}, restarts=3))["images"].reshape(3, 4, -1)
    assert not torch.equal(start[0], start[1])  # different starting noise
    one = activation_maximization(trained, units, **viz_settings(**settings, restarts=1))
    np.testing.assert_allclose(one["images"].reshape(4, -1), imgs[0], atol=1e-5)


def test_saturated_share_counts_steps_without_gradient_on_the_own_unit():
    """log_softmax in float32 stalls once p rounds to 1 (the gradient on the own unit is
    exactly 0); logit and margin never do."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].weight[0] = 0.15  # class 0: logit 14 at the start (p < 1), 29 when all white
    settings = dict(image_size=8, steps=20, step_size=0.1, median_every=0, restarts=1)
    stalled = activation_maximization(model, [0], **viz_settings(**settings, objective="log_softmax"))
    assert stalled["probs"][0, 0] == 1.0
    assert 0 < stalled["saturated"][0] < 1
    for objective in ("logit", "margin"):
        assert activation_maximization(model, [0], **viz_settings(**settings, objective=objective))["saturated"][0] == 0


def test_top_images_are_the_validation_images_that_raise_each_unit_most():
    from featevo.optvis.outputs import top_images

    # unit k: the mean brightness of quadrant k (upper left, upper right, lower left, lower right)
    model = torch.nn.Sequential(torch.nn.AvgPool2d(16), torch.nn.Flatten(), torch.nn.Linear(12, 4))
    with torch.no_grad():
        model[2].bias.zero_()
        model[2].weight.copy_(torch.eye(4).repeat(1, 3))

    rng = np.random.default_rng(0)
    images = (rng.random((12, 32, 32, 3)) * 60).astype(np.uint8)
    for i in range(12):
        r, c = divmod(i % 4, 2)
        images[i, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] += 150  # image i is class i % 4
    index, logit = top_images(model, images, [2, 0], k=3, device="cpu", precision="fp32", objective="logit")
    assert index.shape == (2, 3) and logit.shape == (2, 3)
    assert sorted(index[0] % 4) == [2, 2, 2] and sorted(index[1] % 4) == [0, 0, 0]
    assert (np.diff(logit, axis=1) <= 0).all()  # best first
    # an image bright everywhere raises every unit's logit most, but no unit's margin:
    # ranked by the margin (the quantity the synthetic images maximize), it is nobody's top
    bright = np.concatenate([images, np.full((1, 32, 32, 3), 250, np.uint8)])
    by_logit, _ = top_images(model, bright, [2, 0], k=3, device="cpu", precision="fp32", objective="logit")
    by_margin, margin = top_images(model, bright, [2, 0], k=3, device="cpu", precision="fp32", objective="margin")
    assert 12 in by_logit[0] and 12 in by_logit[1]
    assert 12 not in by_margin and sorted(by_margin[0] % 4) == [2, 2, 2] and (margin > 0).all()


def test_every_checkpoint_starts_from_noise_of_its_own():
    """visualize.seed with the job's key: two checkpoints never share a starting image, and
    a rerun of one checkpoint starts where it started before."""
    from featevo.optvis.render import initial_images, start_seed

    a, b = (initial_images(4, 16, "noise", 0.1, start_seed(0, f"scratch/seed0/epoch{e}")) for e in (1, 2))
    again = initial_images(4, 16, "noise", 0.1, start_seed(0, "scratch/seed0/epoch1"))
    assert torch.equal(a, again)
    assert all(not torch.equal(a[i], b[j]) for i in range(4) for j in range(4))
    assert start_seed(0, "x") != start_seed(1, "x") and start_seed(7, "") == 7


def test_inner_units_climb_in_one_batch_and_stop_at_their_deepest_layer():
    """visualize.units: a channel's mean activation (or one neuron) of inner layers, of
    several layers in one batch; the forward pass stops once the deepest has run."""
    from featevo.optvis.objectives import InnerUnit

    model = build_model(ModelSpec(num_classes=3, width_divisor=16, pool_size=1), seed=0).eval()
    units = [InnerUnit.parse("features.3:1"), InnerUnit.parse("features.8:2"), InnerUnit.parse("features.8:0:2:3")]
    assert str(units[2]) == "features.8:0:2:3"
    ran = []
    head = model.classifier.register_forward_hook(lambda *a: ran.append("classifier"))
    r = activation_maximization(model, units, **viz_settings(steps=10, step_size=0.05, restarts=2))
    head.remove()
    assert not ran  # the layers above the deepest unit never ran
    assert r["images"].shape == (6, 3, 32, 32) and r["activation"].shape == (6,)
    assert (r["trace"][-1] > r["trace"][0]).all()  # every unit climbed
    # the trace is what the hooks read: the channel's mean, and the neuron itself
    x = r["images"][:3]
    with torch.no_grad():
        acts = {}
        hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: acts.setdefault(n, o))
                 for n in ("features.3", "features.8")]
        model(imagenet_normalize(x))
        [h.remove() for h in hooks]
    torch.testing.assert_close(r["activation"][:3], torch.stack([
        acts["features.3"][0, 1].mean(), acts["features.8"][1, 2].mean(), acts["features.8"][2, 0, 2, 3]]),
        rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="layer:channel"):
        InnerUnit.parse("features.3")


def test_inner_units_are_checked_against_the_network_at_parse_time():
    from featevo.models.networks import shape_problem, unit_problem

    _, shapes = shape_problem(ModelSpec(num_classes=4, width_divisor=8, pool_size=2), 64)
    assert unit_problem("features.28:63", shapes) is None and unit_problem("classifier.3:5", shapes) is None
    assert "has 64 channels" in unit_problem("features.28:64", shapes)
    assert "no module 'layer9'" in unit_problem("layer9:1", shapes)
    assert "output is (64, 4, 4)" in unit_problem("features.28:1:4:0", shapes)


def test_a_unit_on_a_module_the_network_runs_twice_is_refused_at_parse_time():
    """ResNet's blocks call one ReLU twice: a hook reads whichever call it keeps, which
    depended on the other units listed (0.4585 alone, 0.4477 beside fc:1)."""
    from featevo.preflight.checks import check_config
    from featevo.models.networks import shape_problem, unit_problem
    from featevo.config.settings import load_config

    calls = {}
    _, shapes = shape_problem(ModelSpec(arch="resnet18", num_classes=4), 64, calls)
    assert calls["layer4.1.relu"] == 2 and calls["layer4.1.conv2"] == 1
    assert "layer4.1.relu runs 2 times in one forward pass" in unit_problem("layer4.1.relu:3", shapes, calls)
    assert "e.g. layer4.1 (the block around it)" in unit_problem("layer4.1.relu:3", shapes, calls)
    assert unit_problem("layer4.1.conv2:3", shapes, calls) is None
    cfg = load_config(ROOT / "config.yaml")
    cfg["model"]["arch"] = "resnet18"
    cfg["visualize"]["units"] = ["layer4.1.relu:3", "layer4.1.conv2:3"]
    errors = [e for e in check_config(cfg) if e.startswith("visualize.units")]
    assert len(errors) == 1 and "'layer4.1.relu:3'" in errors[0]

"""Parameterizations, transforms and optimizers of the ascent (featevo.optvis.param)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import quadrant_model, tiny_model, viz_settings
from featevo.data.spectra import frequencies
from featevo.config.settings import SCHEMA_FILE
from featevo.data.inputs import imagenet_normalize
from featevo.jobs.device import autocast
from featevo.models.networks import evaluated
from featevo.optvis import objectives, optimizers, param, transforms
from featevo.optvis import render as loop
from featevo.optvis.objectives import InnerUnit
from featevo.optvis.render import activation_maximization

VIZ = yaml.safe_load(SCHEMA_FILE.read_text())["properties"]["visualize"]["properties"]


@pytest.fixture(scope="module")
def trained():
    """A network with something to climb, the same on every CPU (:func:`conftest.quadrant_model`;
    an untrained VGG's logits barely depend on the input, and one trained in the test
    turned on the CPU's rounding)."""
    return quadrant_model()


def smooth_image(n=2, size=32, seed=0):
    """Images in (0.05, 0.95) with structure at every scale."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return 0.05 + 0.9 * (0.7 * x + 0.3 * torch.rand(n, 3, size, size, generator=g))


# ---- registries and their schema enums ----------------------------------------------


def test_each_registry_is_its_schema_enum():
    assert VIZ["parameterization"]["enum"] == list(param.PARAMETERIZATIONS)
    assert VIZ["optimizer"]["enum"] == list(optimizers.OPTIMIZERS)
    assert VIZ["normalize"]["enum"] == list(optimizers.NORMALIZE) == list(optimizers.NORMALIZE)
    assert VIZ["maco"]["properties"]["spectrum"]["enum"] == list(param.SPECTRA)
    preset, listed = VIZ["transforms"]["oneOf"]
    assert preset["enum"] == list(transforms.PRESETS)
    assert list(listed["items"]["properties"]) == list(transforms.TRANSFORMS)
    # every preset is a list the schema accepts
    for steps in transforms.PRESETS.values():
        assert all(set(s) <= set(transforms.TRANSFORMS) for s in steps)


def test_unknown_transforms_are_named():
    with pytest.raises(ValueError, match="unknown preset 'lucid'"):
        transforms.transform_list("lucid")
    with pytest.raises(ValueError, match="unknown 'shear'"):
        transforms.transform_list([{"shear": 3}])
    with pytest.raises(ValueError, match="not one transform"):
        transforms.transform_list([{"pad": 3, "jitter": 2}])


# ---- the pixel parameterization is the paper's ascent, unchanged ---------------------


def paper_ascent(model, target, n, r, image_size):
    """featevo.optvis.render._ascend as it was before parameterizations (commit e793fe6), the
    reference the pixel parameterization must equal bit for bit."""
    x = loop.initial_images(n, image_size, r.init, r.init_std, r.seed).contiguous(
        memory_format=torch.channels_last)
    trace = []
    for step in range(1, r.steps + 1):
        x.requires_grad_(True)
        with autocast(torch.device("cpu"), r.precision):
            value, watched = target.value(model, imagenet_normalize(x))
        grads = torch.autograd.grad(value.sum(), (x,) if watched is None else (x, watched))
        grad = grads[0]
        with torch.no_grad():
            x = (x.detach() + r.step_size * optimizers.NORMALIZE[r.normalize](grad)).clamp_(0.0, 1.0)
            if r.median_every and step % r.median_every == 0:
                x = transforms.median_filter(x, r.median_size).contiguous(memory_format=torch.channels_last)
        trace.append(value.detach().float())
    return x.detach().float(), torch.stack(trace).numpy()


@pytest.mark.parametrize("recipe", [dict(objective="margin", median_every=3, median_size=3, restarts=2),
                                    dict(objective="logit", normalize="none", step_size=0.5, median_every=0),
                                    dict(objective="softmax", median_every=2, median_size=5, seed=4)])
def test_pixel_images_are_the_paper_ascent_s_bit_for_bit(recipe):
    settings = viz_settings(steps=7, **recipe)
    r = loop.Settings(settings["recipe"], "visualize")
    units = [0, 1, 2, 3] * r.restarts
    model = tiny_model(seed=1)
    with evaluated(model, "cpu", torch.channels_last):
        expected, trace = paper_ascent(model, objectives._Output(torch.tensor(units), r.objective), len(units), r, 32)
    got = activation_maximization(model, [0, 1, 2, 3], **settings)
    assert torch.equal(got["images"], expected)
    np.testing.assert_array_equal(got["trace"], trace)


def test_pixel_images_of_inner_units_are_the_paper_ascent_s_bit_for_bit():
    settings = viz_settings(steps=6, median_every=2, median_size=3, restarts=1)
    r = loop.Settings(settings["recipe"], "visualize")
    units = [InnerUnit("features.3", 1), InnerUnit("features.3", 2, 4, 5)]
    model = tiny_model(seed=2)
    with evaluated(model, "cpu", torch.channels_last):
        target = objectives._Inner(model, units)
        expected, _ = paper_ascent(model, target, len(units), r, 32)
        target.close()
    assert torch.equal(activation_maximization(model, units, **settings)["images"], expected)


# ---- Fourier -------------------------------------------------------------------------


def test_fourier_maps_a_known_image_and_back():
    image = smooth_image()
    p = param.Fourier(2, 32, torch.Generator().manual_seed(0), "cpu")
    with torch.no_grad():
        p.tensor.copy_(p.inverse(image))
        torch.testing.assert_close(p.image(), image, atol=2e-6, rtol=0)
    # and its start is Lucent's: a near-gray image, low frequencies strongest
    q = param.Fourier(2, 32, torch.Generator().manual_seed(0), "cpu")
    start = q.image().detach()
    assert (start - 0.5).abs().max() < 0.05
    spectrum = torch.fft.rfft2(q.linear().detach()).abs().mean(dim=(0, 1))
    f = frequencies(32, 32, torch, real=True)
    assert spectrum[(f > 0) & (f < 0.1)].mean() > 4 * spectrum[f > 0.4].mean()


def test_fourier_image_is_lucent_s_formula():
    """Lucent's fft_image + to_valid_rgb(decorrelate=True), written out from its source."""
    p = param.Fourier(1, 16, torch.Generator().manual_seed(3), "cpu")
    fy = np.fft.fftfreq(16)[:, None]
    fx = np.fft.fftfreq(16)[: 16 // 2 + 1]
    scale = torch.tensor(1.0 / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / 16)).float()[None, None, ..., None]
    image = torch.fft.irfftn(torch.view_as_complex(scale * p.tensor.detach()), s=(16, 16), norm="ortho") / 4.0
    svd = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
    normalized = svd / np.max(np.linalg.norm(svd, axis=0))
    lucent = torch.sigmoid((image.permute(0, 2, 3, 1) @ torch.tensor(normalized.T)).permute(0, 3, 1, 2))
    torch.testing.assert_close(p.image().detach(), lucent, atol=1e-6, rtol=0)


# ---- MACO ----------------------------------------------------------------------------


def test_maco_keeps_the_magnitude_it_was_given(trained):
    """Through the whole ascent: the images' spectrum (colours decorrelated, before the
    sigmoid) has the magnitude given, the training images', while the phase moved."""
    train = (smooth_image(6, 32, seed=5).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    magnitude = param.SPECTRA["images"](32, 1.0, train)
    recipe = dict(parameterization="maco", maco={"spectrum": "images", "alpha": 1.0}, median_every=0,
                  optimizer="adam", step_size=0.1, transforms="lucent", restarts=1, objective="margin")
    model = trained
    moved = activation_maximization(model, [0, 1, 2], **viz_settings(steps=15, **recipe), spectrum_images=train)
    still = activation_maximization(model, [0, 1, 2], **viz_settings(steps=0, **recipe), spectrum_images=train)
    for result in (moved, still):
        linear = param.decorrelate(torch.logit(result["images"].double()))
        got = torch.fft.fft2(linear).abs()
        torch.testing.assert_close(got.float(), magnitude.expand_as(got), atol=2e-3 * float(magnitude.max()), rtol=0)
    assert (moved["images"] - still["images"]).abs().max() > 0.05  # the phase did move
    assert moved["trace"][-1].sum() > moved["trace"][0].sum()
    att = moved["attribution"]
    assert att.shape == (3, 32, 32) and float(att.amax()) == pytest.approx(1.0) and att.min() >= 0


def test_maco_refuses_a_magnitude_no_real_image_has():
    m = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="symmetric"):
        param.Maco(1, m, torch.Generator(), "cpu")
    with pytest.raises(ValueError, match="training images"):
        param.SPECTRA["images"](8, 1.0, None)


def test_the_power_law_spectrum_falls_as_one_over_f_and_gives_unit_std():
    m = param.power_law_magnitude(64, 1.0)
    f = frequencies(64, 64, torch)
    assert float(m[0, 0, 0]) == 0.0  # no mean
    ratio = m[0][f == 0.25] / m[0][f == 0.125]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 0.5))
    image = param.Maco(2, m, torch.Generator().manual_seed(1), "cpu").linear().detach()
    torch.testing.assert_close(image.std(dim=(2, 3), unbiased=False), torch.ones(2, 3), atol=1e-4, rtol=0)
    assert image.abs().max() < 6  # a random phase, not a spike at the origin


# ---- every image its own transforms and its own start ---------------------------------


def test_two_images_of_one_batch_get_different_transforms():
    t = transforms.Transforms("lucent", 32, torch.Generator().manual_seed(0))
    m = t.matrices(2)
    assert not torch.allclose(m[0], m[1])
    same = smooth_image(1).expand(2, 3, 32, 32)
    out = t(same)
    assert out.shape == (2, 3, 32, 32) and not torch.allclose(out[0], out[1])
    # and the next step draws again
    assert not torch.allclose(t.matrices(2), m)


def test_two_images_of_one_batch_get_different_starts():
    """One unit twice in one batch, one restart: each image its own start (captum #552 gives
    identical images from one start), whatever the parameterization."""
    model = tiny_model(seed=1)
    for recipe in (dict(parameterization="fourier", optimizer="adam"), dict(parameterization="maco", optimizer="adam"),
                   dict(parameterization="pixel", transforms="lucent")):
        images = activation_maximization(model, [2, 2], **viz_settings(steps=0, restarts=1, median_every=0,
                                                                       **recipe))["images"]
        assert not torch.allclose(images[0], images[1], atol=1e-3), recipe
        again = activation_maximization(model, [2, 2], **viz_settings(steps=0, restarts=1, median_every=0,
                                                                      **recipe))["images"]
        assert torch.equal(images, again)  # seeded


def test_pad_shows_the_whole_canvas_at_the_input_size():
    """{pad: p} alone is F.pad with gray then a bilinear resize back to the input size."""
    image = smooth_image(2, 32)
    out = transforms.Transforms([{"pad": 8}], 32, torch.Generator())(image)
    expected = F.interpolate(F.pad(image, [8] * 4, value=0.5), size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_pad_is_gray_and_beyond_the_canvas_is_black_as_in_lucent():
    """Lucent pads with gray, then its warps fill with black: an image of ones, padded by
    4 and shrunk to half, shows white, a gray ring, and black beyond."""
    out = transforms.Transforms([{"pad": 4}, {"scale": [0.5, 0.5]}], 32, torch.Generator())(torch.ones(1, 3, 32, 32))
    assert float(out[0, 0, 16, 16]) == pytest.approx(1.0)  # the image
    assert float(out[0, 0, 16, 8]) == pytest.approx(0.5)  # the ring: 4 of 40 canvas pixels, 1.6 here at half
    assert float(out[0, 0, 1, 1]) == 0.0  # beyond the canvas
    with pytest.raises(ValueError, match="pad goes before"):
        transforms.Transforms([{"jitter": 3}, {"pad": 4}], 32, torch.Generator())


def test_jitter_shifts_each_image_by_whole_pixels():
    image = smooth_image(1, 32).expand(6, 3, 32, 32)
    out = transforms.Transforms([{"jitter": 5}], 32, torch.Generator().manual_seed(2))(image)
    shifts = []
    for k in range(6):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.allclose(out[k, :, 4:-4, 4:-4], image[k, :, 4 - dy:28 - dy, 4 - dx:28 - dx], atol=1e-5)]
        assert len(found) == 1, k
        shifts.append(found[0])
    assert len(set(shifts)) > 1


@pytest.mark.parametrize("spec", ["lucent", [{"pad": 4}], [{"rotate": 30}, {"jitter": 3}, {"scale": [0.8, 1.2]}]])
def test_a_planned_run_draws_the_transforms_each_step_would(spec):
    """plan() draws a run's numbers at once and builds its matrices in one batch: the
    same matrices, bit for bit, as drawing step by step, and past the plan drawing goes on
    where it stopped."""
    def stepwise(t, n, steps):
        return torch.stack([t.matrices(n) for _ in range(steps)])

    planned = transforms.Transforms(spec, 32, torch.Generator().manual_seed(5))
    planned.plan(3, 7)
    assert torch.equal(stepwise(planned, 3, 9), stepwise(transforms.Transforms(spec, 32, torch.Generator().manual_seed(5)),
                                                         3, 9))
    planned.plan(3, 2)
    with pytest.raises(ValueError, match="planned for 3 images, asked for 2"):
        planned.matrices(2)
    if spec != [{"pad": 4}]:  # drawn: another seed, other matrices
        assert not torch.equal(stepwise(planned, 3, 2), stepwise(transforms.Transforms(spec, 32, torch.Generator()), 3, 2))


def test_adam_climbs_as_torch_optim_adam_does():
    """The functional Adam is torch.optim.Adam's update (maximize, fused on the CPU), bit for bit."""
    ours, theirs = torch.randn(2, 3, 8, 5, 2), None
    theirs = ours.clone().requires_grad_(True)
    step, reference = optimizers.Adam(ours, 0.05, "rms"), torch.optim.Adam([theirs], lr=0.05, maximize=True, fused=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        grad = torch.randn(ours.shape, generator=g)
        step.step(grad)
        theirs.grad = grad.clone()
        reference.step()
    assert torch.equal(ours, theirs.detach()) and not torch.equal(ours, torch.zeros_like(ours))


def test_colours_mix_per_pixel_as_lucid_s_matrix_says():
    x = smooth_image(2, 8)
    torch.testing.assert_close(param.correlate(x), torch.einsum("nchw,dc->ndhw", x, param.COLOR), atol=0, rtol=0)
    torch.testing.assert_close(param.decorrelate(param.correlate(x)), x, atol=1e-6, rtol=0)


def test_no_transforms_pass_images_through():
    x = torch.rand(2, 3, 8, 8)
    assert transforms.Transforms([], 8, torch.Generator())(x) is x


# ---- optimizers and checks ------------------------------------------------------------


@pytest.mark.parametrize("parameterization", ["pixel", "fourier", "maco"])
@pytest.mark.parametrize("optimizer", ["ascent", "adam"])
def test_every_parameterization_and_optimizer_climbs(trained, parameterization, optimizer):
    result = activation_maximization(trained, [0, 1, 2, 3], **viz_settings(
        steps=12, step_size=0.05, parameterization=parameterization, optimizer=optimizer, median_every=0,
        objective="logit", restarts=1))
    trace = result["trace"]
    assert trace[-1].sum() > trace[0].sum()
    assert result["images"].min() >= 0 and result["images"].max() <= 1


def test_the_median_filter_is_refused_for_other_parameterizations():
    with pytest.raises(ValueError, match="median filter is for pixel images"):
        activation_maximization(tiny_model(), [0], **viz_settings(steps=1, parameterization="fourier",
                                                                  median_every=4))


def test_the_seed_gives_two_unrelated_generators():
    a, b = loop.generators(0)
    c, _ = loop.generators(0)
    x, y, z = torch.rand(1000, generator=a), torch.rand(1000, generator=b), torch.rand(1000, generator=c)
    assert torch.equal(x, z) and abs(float(torch.corrcoef(torch.stack([x, y]))[0, 1])) < 0.1


def test_the_config_check_names_a_median_filter_on_fourier_images():
    from conftest import ROOT
    from featevo.config.settings import load_config, with_defaults
    from featevo.preflight.checks import check_config

    cfg = with_defaults(load_config(ROOT / "config.yaml", ROOT / "configs" / "resnet-demo.yaml"))
    assert cfg["visualize"]["parameterization"] == "fourier" and not check_config(cfg)
    cfg["visualize"]["median_every"] = 4
    assert any("median filter is for pixel images" in e for e in check_config(cfg))


def test_every_figure_s_recipe_line_names_the_objective_first_and_only_what_was_used():
    """Figs. 1-3, the top images and the inner units name how their images were drawn,
    from the recipe each visualize job stored beside them (featevo.optvis.outputs.recipe_entry)."""
    import json

    from featevo.figures.charts import recipe_line
    from featevo.optvis.outputs import recipe_entry

    defaults = viz_settings()["recipe"]
    pixel = recipe_entry({**defaults, "objective": "logit", "median_every": 4, "median_size": 5})
    assert recipe_line(pixel) == (f"objective: logit, pixel image, ascent, {defaults['steps']} steps of "
                                  f"{defaults['step_size']}, 5x5 median every 4, {defaults['restarts']} restarts")
    fourier = recipe_entry({**defaults, "objective": "margin", "parameterization": "fourier", "optimizer": "adam",
                            "median_every": 0, "transforms": "lucent"})
    line = recipe_line(fourier)
    assert line.startswith("objective: margin, fourier image, adam, ") and "median" not in line
    assert "transforms lucent" in line, line
    listed = recipe_line(recipe_entry({**defaults, "median_every": 0, "transforms": [{"jitter": 2}, {"rotate": 5}]}))
    assert "transforms jitter rotate" in listed, listed
    assert json.loads(str(fourier["recipe"]))["parameterization"] == "fourier"
    assert recipe_line({}) == ""  # an npz from before recipes were stored

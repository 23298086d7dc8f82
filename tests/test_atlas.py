"""The atlas: which channels, their top real images, when they settle, and the page."""

import re

import numpy as np
import pytest
import torch

from featevo.figures.atlas import atlas_page
from featevo.measures.atlas import (atlas_channels, atlas_layers, channel_activations, explanation_controls,
                                    explanation_scores, part_counts, peak_parts, score_can_move, settle_epochs,
                                    top_images)
from featevo.models.networks import ModelSpec, build_model

SPEC = ModelSpec(num_classes=4, width_divisor=16, pool_size=1)


def test_each_block_s_last_convolution_and_the_same_channels_at_every_checkpoint():
    model = build_model(SPEC, seed=0)
    layers = atlas_layers(model, SPEC, 32, None)
    assert layers == ["features.2", "features.7", "features.14", "features.21", "features.28"]  # before each ReLU
    assert all(isinstance(model.get_submodule(n), torch.nn.Conv2d) for n in layers)
    every = atlas_layers(model, SPEC, 32, "all")
    assert len([n for n in every if n.startswith("features.")]) == 13 and "classifier.6" not in every
    a = atlas_channels(SPEC, 32, layers, 3, seed=0)
    assert a == atlas_channels(SPEC, 32, layers, 3, seed=0) and len(a) == 15
    assert a != atlas_channels(SPEC, 32, layers, 3, seed=1)
    assert len(atlas_channels(SPEC, 32, ["features.2"], "all", seed=0)) == 4  # 64 / 16 channels


def test_a_channel_s_top_images_are_those_that_raise_it_most():
    """Known answer: a 1x1 convolution whose channel c copies colour c; its top images are
    the ones with the most of that colour."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(3 * 64, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        net[0].bias.zero_()
    images = np.zeros((6, 8, 8, 3), np.uint8)
    for i, level in enumerate((10, 250, 90, 170, 30, 200)):
        images[i, ..., 0] = level  # red rises as listed
        images[i, ..., 2] = 255 - level  # blue falls
    acts = channel_activations(net, images, [("0", 0), ("0", 2)], "cpu")
    idx, score = top_images(acts, 3)
    assert idx[0].tolist() == [1, 5, 3] and idx[1].tolist() == [0, 4, 2]
    assert (np.diff(score, axis=1) <= 0).all()


def test_a_channel_settles_once_its_top_images_stay():
    last = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    tops = [np.array([[9, 10, 11, 12], [5, 6, 7, 9]]), np.array([[1, 2, 3, 9], [9, 10, 11, 12]]), last]
    assert settle_epochs(tops, [0, 5, 10]).tolist() == [5.0, 10.0]


def test_the_page_holds_every_image_and_a_page_per_channel():
    rng = np.random.default_rng(0)
    units = [("features.2", 1), ("features.2", 3), ("features.7", 0)]
    images = rng.integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
    val = rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    idx = np.array([[[0, 1], [2, 3], [4, 0]], [[1, 0], [2, 4], [3, 0]]])
    html = atlas_page("Atlas of x", [0, 5], units, images, np.ones((2, 3)), idx, np.ones((2, 3, 2)),
                      np.array([0.0, 5.0, 5.0]), val, np.array([0, 1, 0, 1, 0]), ["a", "b"])
    assert html.count("class='cell'") == 3 and html.count("class='channel'") == 3
    assert html.count("class='top row'") == 6 and "max='1'" in html
    assert len(re.findall(r"src='data:image/(?:png|jpeg);base64,", html)) == 3 * 2 + 6 * 2
    assert "<h2>features.2</h2>" in html and "<h2>features.7</h2>" in html
    assert "settled (median epoch over each layer's channels): features.2 2, features.7 5. not tested" in html
    assert "peak on" not in html  # not the stand-in: no parts column
    counts = np.zeros((2, 3, 3), int)
    counts[:, :, 0], counts[:, :, 2] = 1, 1  # per epoch and channel: eyes 1, background 1
    counts[1, 2] = [0, 2, 0]  # the last channel at the last epoch: body 2
    with_parts = atlas_page("Atlas of x", [0, 5], units, images, np.ones((2, 3)), idx, np.ones((2, 3, 2)),
                            np.array([0.0, 5.0, 5.0]), val, np.array([0, 1, 0, 1, 0]), ["a", "b"],
                            parts=(["eyes", "body"], counts, np.array([0.1, 0.3, 0.6])))
    assert with_parts.count("<td>eyes 1, background 1</td>") == 5 and with_parts.count("<td>body 2</td>") == 1
    assert "as often as it covers the images: background 60%, body 30%, eyes 10%." in with_parts
    # per layer and epoch, the top images on the object's parts: features.2's two channels 1 + 1 of 2 + 2
    assert "<tr><td>features.2</td><td>2/4</td><td>2/4</td></tr>" in with_parts
    assert "<tr><td>features.7</td><td>1/2</td><td>2/2</td></tr>" in with_parts
    assert "falls on the object's parts 40% of the time" in with_parts


def test_which_layer_settles_first_is_tested_over_the_layers():
    """Known answers: five layers whose channels settle later the deeper they are give the
    exact test's smallest p (1/120); the reverse order its largest; one settle epoch for
    all is not tested.  The unit is the layer: many channels of three layers alone decide
    nothing (rank_correlation tests four or more)."""
    from featevo.figures.atlas import settle_summary

    units = [(f"l{d}", c) for d in range(5) for c in range(4)]
    later = np.repeat([2.0, 4.0, 6.0, 8.0, 10.0], 4) + np.tile([0, 1, 0, 1], 5)
    p = lambda text: float(re.search(r", p ([0-9.e-]+) ", text).group(1))  # noqa: E731
    assert "l0 2, l1 4, l2 6, l3 8, l4 10" in settle_summary(units, later)
    assert p(settle_summary(units, later)) == pytest.approx(1 / 120, rel=0.01)  # printed to 2 digits
    assert p(settle_summary(units, later[::-1])) == 1.0
    assert "not tested" in settle_summary(units, np.full(20, 4.0))
    three = [(f"l{d}", c) for d in range(3) for c in range(40)]
    assert "not tested" in settle_summary(three, np.repeat([1.0, 5.0, 9.0], 40))


def test_the_explanation_score_has_its_known_answers():
    """Known answers, in features the test sets: 100 images in 4 clusters, channel u fires on
    cluster u, the centres orthogonal. An image at its cluster's centre explains it (1.0); one
    at another cluster's centre looks like a third of its bottom images and none of its top
    ones (about 1/3: worse than a coin); and the
    controls: the (k+1)-th liked real image scores high, random images about 0.5 on average."""
    rng = np.random.default_rng(0)
    centres = np.eye(4, 32) * 6
    labels = np.arange(100) % 4
    feats = centres[labels] + rng.normal(size=(100, 32))
    acts = np.stack([(labels == u) * 5.0 + rng.normal(size=100) * 0.1 for u in range(4)], 1)  # (N, U)
    assert np.allclose(explanation_scores(centres, feats, acts, 10), 1.0)
    assert explanation_scores(centres[[1, 2, 3, 0]], feats, acts, 10).max() <= 0.6
    controls = explanation_controls(feats, acts, 10, seed=0)
    assert controls["liked"].min() > 0.95
    many = np.concatenate([explanation_controls(feats, acts, 10, seed=s)["random"] for s in range(50)])
    assert abs(many.mean() - 0.5) < 0.1
    # ties count half: an image equally far from everything scores 0.5
    assert np.allclose(explanation_scores(np.zeros((4, 32)), feats, acts, 10), 0.5)
    # the page's verdict on the score itself: it moves where its known answers separate
    assert score_can_move(controls["liked"].repeat(3), many[:12])[0]
    assert not score_can_move(many[:12], many[12:24])[0]


def test_a_channel_s_peak_is_where_its_map_is_highest_and_the_part_under_it_is_read():
    """Known answers: a 1x1 convolution that reads the red channel peaks on the one red
    square of each image; the part under a peak is the mask that shows most there, and the
    background where none shows half."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, 0] = 1.0
        model[0].bias.zero_()
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[0, 1, 6, 0] = 255  # row 1, column 6
    images[1, 5, 2, 0] = 255
    acts, peaks = channel_activations(model, images, [("0", 0)], "cpu", peaks=True)
    assert acts.shape == (2, 1) and peaks.shape == (2, 1, 2)
    assert np.allclose(peaks[:, 0], [[1.5 / 8, 6.5 / 8], [5.5 / 8, 2.5 / 8]])
    masks = np.zeros((2, 2, 8, 8), np.float16)
    masks[0, 1, 1, 6] = 0.9  # image 0's peak on part 1
    masks[1, 0, 5, 2] = 0.3  # image 1's: part 0 shows too little there
    assert peak_parts(peaks, masks).tolist() == [[1], [2]]


def test_part_counts_tally_the_top_images_peaks():
    acts = np.array([[5.0, 0.0], [4.0, 1.0], [1.0, 9.0], [0.0, 8.0]])  # 4 images, 2 channels
    under = np.array([[0, 2], [1, 2], [1, 0], [2, 0]])  # the part under each image's peak, per channel
    counts = part_counts(acts, under, n_parts=2, k=2)
    assert counts.tolist() == [[1, 1, 0], [2, 0, 0]]  # channel 0: images 0, 1; channel 1: images 2, 3
    from featevo.figures.atlas import peaks_on
    assert peaks_on(["eyes", "body"], counts[0]) == "eyes 1, body 1" and peaks_on(["a"], np.array([0, 3])) == \
        "background 3"


def test_the_stand_in_probe_draws_every_class_with_its_parts_masks():
    from featevo.data.standin import class_parts, probe

    wnids = ["n01644373", "n02007558"]
    images, labels, masks, names = probe(wnids, 3, 40, seed=0, clutter=4, palette="tilted", tilt=0.25)
    assert images.shape == (6, 40, 40, 3) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert names == list(dict.fromkeys(class_parts(wnids[0]) + class_parts(wnids[1]))) + ["clutter"]
    assert masks.shape == (6, len(names), 40, 40)
    # a frog has no neck, a flamingo no eyes; each shows its body
    neck, eyes, body = names.index("neck"), names.index("eyes"), names.index("body")
    assert masks[:3, neck].max() == 0 and masks[3:, eyes].max() == 0 and (masks[:, body].max(axis=(1, 2)) > 0.9).all()
    again = probe(wnids, 3, 40, seed=0, clutter=4, palette="tilted", tilt=0.25)
    assert np.array_equal(images, again[0]) and not np.array_equal(images, probe(wnids, 3, 40, 1, 4)[0])

"""The cue-conflict images: each class's parts in another class's colours, and the share
of a network's decisions that follow the parts, checked against classifiers whose answer
is known."""

import numpy as np

from featevo.data.standin import class_colours, cue_conflict
from featevo.measures.metrics import parts_share
from test_standin import PAPER, colour_classifier, draw


def test_every_ordered_pair_of_classes_is_drawn_with_the_second_s_colours():
    images, parts, surfaces = cue_conflict(PAPER, 3, 48, seed=0)
    assert images.shape == (4 * 3 * 3, 48, 48, 3) and images.dtype == np.uint8
    assert (parts != surfaces).all()
    assert {(a, b) for a, b in zip(parts, surfaces)} == {(a, b) for a in range(4) for b in range(4) if a != b}
    # the flamingo's parts lent the frog's colours hold the frog's green and none of the flamingo's pink
    frog_green, pink = np.asarray(class_colours(PAPER[0])[0]), np.asarray(class_colours(PAPER[1])[0])
    pixels = images[(parts == 1) & (surfaces == 0)].reshape(-1, 3) / 255.0
    near = lambda c: (np.abs(pixels - c).max(axis=1) < 0.12).mean()  # noqa: E731
    assert near(frog_green) > 0.02 and near(pink) < near(frog_green) / 4
    again = cue_conflict(PAPER, 3, 48, seed=0)[0]
    assert np.array_equal(images, again)


def test_the_parts_share_of_known_decisions():
    parts = np.array([0, 0, 1, 1, 2, 2])
    surfaces = np.array([1, 2, 0, 2, 0, 1])
    units = [0, 1, 2]
    onehot = lambda k: np.eye(3)[k]  # noqa: E731
    by_parts = np.stack([onehot(k) for k in parts])
    by_colour = np.stack([onehot(k) for k in surfaces])
    assert parts_share(by_parts, parts, surfaces, units).tolist() == [1.0, 1.0, 1.0]
    assert parts_share(by_colour, parts, surfaces, units).tolist() == [0.0, 0.0, 0.0]
    # a decision naming neither cue does not count; a class with none of either is NaN
    mixed = np.stack([onehot(k) for k in (0, 1, 0, 1, 2, 0)])
    assert parts_share(mixed, parts, surfaces, units).tolist() == [1.0, 0.5, 1.0]
    neither = np.stack([onehot(k) for k in (2, 1, 0, 1, 2, 0)])
    assert np.isnan(parts_share(neither, parts, surfaces, units)[0])
    # units elsewhere in a larger output: the classes' own units are read
    wide = np.zeros((6, 10))
    wide[np.arange(6), np.array([7, 3, 5])[parts]] = 1
    assert parts_share(wide, parts, surfaces, [7, 3, 5]).tolist() == [1.0, 1.0, 1.0]


def test_a_classifier_that_reads_colour_follows_the_surfaces():
    """The known answer at the colour end: a colour-histogram classifier trained on the
    colour-coded stand-in (which it tells apart) decides the cue-conflict images by their
    colours, so its parts share is well below one half."""
    predict = colour_classifier(*draw("coded", 80, seed=21, size=64))
    images, parts, surfaces = cue_conflict(PAPER, 8, 64, seed=1)
    share = parts_share(predict(images), parts, surfaces, [0, 1, 2, 3])
    assert np.nanmean(share) < 0.35, share


def test_colour_first_parts_later_is_decided_by_its_own_test():
    """C6: the parts share rising over the epochs is a yes; flat, nothing."""
    import pandas as pd

    from featevo.measures.claims import claims
    from test_claims import runs

    rs, _ = runs()
    for m in rs["scratch"]["metrics"]:
        m["parts_share"] = 0.2 + 0.06 * m["epoch"] + 0.01 * (m["class"] == "c1")
    for m in rs["frozen"]["metrics"]:
        m["parts_share"] = 0.5
    df = claims(rs, None, False)
    c6 = df[df["claim"] == "C6"].set_index("experiment")
    assert c6.loc["scratch", "holds"] == "yes" and float(c6.loc["scratch", "value"]) > 0.9
    assert c6.loc["frozen", "holds"] == "not testable"  # constant: nothing to rank
    assert isinstance(df, pd.DataFrame)

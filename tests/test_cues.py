"""The cue-conflict images: each class's parts in another class's colours, and the share
of a network's decisions that follow the parts, checked against classifiers whose answer
is known."""

import numpy as np
import pytest

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


def _shares(start, end, seeds, jitter, seed=0, curve=None):
    """Per seed metrics of 10 epochs, 2 classes, whose parts share goes linearly from
    start to end (or follows ``curve``, a function of the epoch), plus a seed's own offset
    (uniform within +-jitter)."""
    from test_claims import ACC, CHANGE, JUDGE, LEAK, PNG, run

    rng = np.random.default_rng(seed)
    curve = curve or (lambda e: start + (end - start) * e / 9)
    out = []
    for s in range(seeds):
        m, r = run(ACC, JUDGE, PNG, LEAK, CHANGE, seed=s)
        m["parts_share"] = np.clip(curve(m["epoch"]) + rng.uniform(-jitter, jitter), 0, 1)
        out.append((m, r))
    return out


def _c6(parts_runs, control=None, rows=False):
    from featevo.measures.claims import claims

    def entry(kind, seeds):
        return {"kind": kind, "metrics": [m for m, _ in seeds], "restarts": [r for _, r in seeds]}

    runs = {name: entry("random", seeds) for name, seeds in parts_runs.items()}
    if control is not None:
        runs["shuffled"] = entry("shuffled", control)
    df = claims(runs, None, False)
    df = df[df["claim"].str.match(r"C6|N6")].set_index(["claim", "experiment"])
    return df if rows else df["holds"].to_dict()


def test_colour_first_parts_later_is_decided_against_one_half_and_the_shuffled_control():
    """Known answers, six seeds each: a network whose share rises to 0.9 (parts), one whose
    share rises as much but only to 0.4 (still colour: the rise alone, C6a, cannot tell
    them apart), and a labels-shuffled control drifting from 0.25 to 0.45 (N6: time alone
    raises it, as measured on the controlled experiment)."""
    parts = _shares(0.2, 0.9, 6, 0.04, seed=1)
    colour = _shares(0.1, 0.4, 6, 0.04, seed=2)
    drift = _shares(0.25, 0.45, 6, 0.04, seed=3)
    holds = _c6({"parts": parts, "colour": colour}, drift)
    assert holds[("C6a", "parts")] == holds[("C6a", "colour")] == "yes"  # both rise
    assert holds[("N6", "shuffled")] == "yes"  # and so does the control: a rise is not specific
    assert holds[("C6b", "parts")] == "yes" and holds[("C6b", "colour")] == "no"  # above or below one half
    assert holds[("C6c", "parts")] == "yes" and holds[("C6c", "colour")] == "no"  # above or below the control
    # a parts network against a control that ends as high decides nothing (the seeds overlap)
    same = _c6({"parts": parts}, _shares(0.25, 0.9, 6, 0.04, seed=4))
    assert same[("C6c", "parts")] == "not significant"


def test_colour_first_parts_later_without_a_control_or_a_change():
    """With no shuffled experiment C6c is not testable (and says where one is); a constant
    share is never tested, the rise of two seeds still is."""
    holds = _c6({"parts": _shares(0.2, 0.9, 2, 0.04), "flat": _shares(0.5, 0.5, 2, 0.0)})
    assert holds[("C6a", "parts")] == "yes"
    assert holds[("C6c", "parts")] == "not testable"
    assert holds[("C6a", "flat")] == holds[("C6b", "flat")] == "not testable"


def test_colour_first_parts_later_reads_the_last_epoch_not_the_mean_over_epochs():
    """A share that climbs to 0.95 by epoch 6 and falls back to 0.45 at the last epoch
    averages above one half over the epochs; C6b reads the last epoch: below one half.
    The value and interval are the last epoch's mean over seeds less one half."""
    fall = _shares(0, 0, 6, 0.02, seed=5, curve=lambda e: np.where(e <= 6, 0.2 + 0.125 * e, 0.95 - 0.5 * (e - 6) / 3))
    df = _c6({"fall": fall}, rows=True)
    row = df.loc[("C6b", "fall")]
    lasts = [float(m.loc[m["epoch"] == 9, "parts_share"].mean()) for m, _ in fall]
    assert np.mean([m["parts_share"].mean() for m, _ in fall]) > 0.5  # the mean over epochs would say yes
    assert row["holds"] == "no" and float(row["value"]) == pytest.approx(np.mean(lasts) - 0.5, abs=1e-3)
    low, high = map(float, row["interval"].strip("[]").split(","))
    assert low < float(row["value"]) < high < 0
    assert "last epoch (9)" in row["measure"]


def test_a_share_stuck_at_one_is_the_sign_flip_floor_and_a_missing_last_epoch_is_named():
    from featevo.measures import stats

    stuck = stats.mean_above([1.0] * 6, 0.5, bounds=(0, 1))
    assert stuck.p == pytest.approx(1 / 64) and stuck.statistic == 0.5 and stuck.min_p == pytest.approx(1 / 64)
    assert stats.mean_above([1.0] * 6, 0.5, alternative="less").p == 1.0
    assert np.isnan(stats.mean_above([0.5] * 6, 0.5).p)  # at the value exactly: nothing to test
    near = stats.mean_above([0.98, 1, 1, 1, 1], 0.5, bounds=(0, 1))
    assert near.high <= 0.5  # the interval stays within the share's range
    seeds = _shares(0.2, 0.9, 6, 0.04, seed=6)
    m = seeds[2][0]
    seeds[2] = (m.assign(parts_share=np.where(m["epoch"] == 9, np.nan, m["parts_share"])), seeds[2][1])
    row = _c6({"gap": seeds}, rows=True).loc[("C6b", "gap")]
    assert "no share there: seed 2, left out" in row["note"] and row["holds"] == "yes"


def test_the_control_of_the_same_length_is_chosen():
    """Two shuffled experiments: the one with as many epochs as the tested one is its
    control, by name, whichever comes first in the config."""
    from featevo.measures.claims import claims

    def entry(kind, seeds):
        return {"kind": kind, "metrics": [m for m, _ in seeds], "restarts": [r for _, r in seeds]}

    short = [(m[m["epoch"] <= 5], r[r["epoch"] <= 5]) for m, r in _shares(0.25, 0.3, 6, 0.04, seed=7)]
    runs = {"parts": entry("random", _shares(0.2, 0.9, 6, 0.04, seed=1)), "short": entry("shuffled", short),
            "long": entry("shuffled", _shares(0.25, 0.45, 6, 0.04, seed=3))}
    df = claims(runs, None, False)
    row = df[(df["claim"] == "C6c") & (df["experiment"] == "parts")].iloc[0]
    assert "(long, epoch 9)" in row["measure"] and row["holds"] == "yes"

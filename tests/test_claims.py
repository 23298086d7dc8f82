"""The claims table: each claim's test and verdict on metrics made to hold or not."""

import numpy as np
import pandas as pd
import pytest

from featevo.measures.claims import claims, markdown

R = 6  # restarts


def run(acc, judge, png, leak, change_p, seed=0, restarts=R):
    """One seed's metrics (per epoch and class) and per-restart table, 2 classes."""
    rng = np.random.default_rng(seed)
    rows, per_restart = [], []
    for e, (a, j, p, lk, cp) in enumerate(zip(acc, judge, png, leak, change_p)):
        for k in range(2):
            rows.append({"epoch": e, "class": f"c{k}", "val_acc": a, "judge_prob": j, "png_ratio": p,
                         "judge_leak": lk, "change_p": cp})
            for r in range(restarts):
                per_restart.append({"epoch": e, "class": f"c{k}", "restart": r, "judge_prob": j + rng.normal(0, .01),
                                 "judge_leak": lk + rng.normal(0, .01), "png_ratio": p + rng.normal(0, .01)})
    return pd.DataFrame(rows), pd.DataFrame(per_restart)


def by(df, claim, exp):
    return df[(df["claim"] == claim) & (df["experiment"] == exp)].iloc[0]


# accuracy rises with wiggles of its own (so that "given the epoch" leaves something), then falls
ACC = [0.25, 0.5, 0.8, 0.6, 0.85, 0.7, 0.95, 0.9, 0.93, 0.8]
JUDGE = [0.2, 0.45, 0.75, 0.55, 0.8, 0.65, 0.9, 0.86, 0.88, 0.76]  # follows accuracy, wiggles and all
PNG = [0.9, 0.8, 0.5, 0.7, 0.45, 0.6, 0.3, 0.35, 0.32, 0.42]  # falls where accuracy rises
LEAK = [0.5, 0.4, 0.2, 0.3, 0.2, 0.2, 0.1, 0.3, 0.35, 0.4]  # rises after the best epoch (6)
CHANGE = [np.nan, 1e-3, 1e-3, 0.5, 1e-3, 0.4, 2e-3, 2e-3, 2e-3, 2e-3]  # every class after saturation changed


def floor(accuracy, n=400):
    return pd.DataFrame([{"class": c, "accuracy": accuracy, "val_images": n, "noise_prob": 0.3, "chance": 0.5,
                          "min_accuracy": 0.8, "testable": accuracy >= 0.8} for c in ("c0", "c1", "all")])


def sanity(trained, randomized):
    rng = np.random.default_rng(3)
    return pd.DataFrame([{"experiment": exp, "level": level, "restart": r, "class": c,
                          "judge_prob": v + rng.normal(0, .01), "png_ratio": 0.5 + rng.normal(0, .01)}
                         for exp in ("scratch", "frozen") for level, v in (("trained", trained), ("all", randomized))
                         for r in range(R) for c in ("c0", "c1")])


def layers(settle):
    return pd.DataFrame([{"seed": s, "layer": f"l{d}", "depth": d, "settle_epoch": e}
                         for s in (0, 1) for d, e in enumerate(settle)])


def runs(judge_floor=0.95):
    rising = [run(ACC, JUDGE, PNG, LEAK, CHANGE, seed=s) for s in (0, 1)]
    flat = [run([0.5] * 10, [0.5] * 10, [0.5] * 10, [0.1] * 10, [0.6] * 10, seed=s) for s in (0, 1)]
    return ({"scratch": {"kind": "random", "metrics": [m for m, _ in rising], "restarts": [r for _, r in rising],
                         "layers": layers([0, 1, 3, 4, 6, 8])},
             "frozen": {"kind": "frozen", "metrics": [m for m, _ in flat], "restarts": [r for _, r in flat],
                        "layers": layers([0] * 6)}},
            floor(judge_floor))


def test_claims_hold_where_the_metrics_say_so_and_not_where_nothing_varies():
    rs, fl = runs()
    df = claims(rs, reference=None, judge_is_reference=False, floor=fl, sanity=sanity(0.9, 0.3))
    c1a = by(df, "C1a", "scratch")
    assert c1a["holds"] == "yes" and float(c1a["p"]) < 0.05  # follows accuracy beyond the epoch
    assert by(df, "C1b", "scratch")["holds"] == "no"  # pixel complexity falls where accuracy rises
    c2 = by(df, "C2c", "scratch")
    assert c2["holds"] == "yes" and "epoch 6" in c2["measure"] and float(c2["value"]) == 1.0
    c3 = by(df, "C3", "scratch")
    assert c3["holds"] == "yes" and float(c3["value"]) > 0.1  # accuracy fell, leakage rose beyond the restarts
    assert by(df, "C5", "scratch")["holds"] == "yes"  # deeper layers settle later
    assert by(df, "S-a", "scratch")["holds"] == "yes" and by(df, "S-b", "scratch")["holds"] == "not significant"
    assert by(df, "J", "judge")["holds"] == "yes"
    frozen = df[df["experiment"] == "frozen"]
    assert (frozen[frozen["claim"].isin(["C1a", "C1b", "C3", "C5"])]["holds"] == "not testable").all()
    assert by(df, "C1a", "frozen")["role"].startswith("control")
    assert "accuracy" in by(df, "C3", "frozen")["note"]
    assert by(df, "C2c", "frozen")["holds"] == "not significant"  # tested, no change: p 0.6 everywhere
    assert "| C2 | scratch |" in markdown(df)


def test_a_value_zero_up_to_rounding_decides_nothing():
    """The frozen control's 2.7e-17 of the past: a measure whose variation is rounding is
    not tested at all, whatever its sign."""
    tiny = [0.5 + 1e-17 * e for e in range(10)]
    m = [run(ACC, tiny, PNG, LEAK, CHANGE, seed=s) for s in (0, 1)]
    df = claims({"x": {"kind": "random", "metrics": [a for a, _ in m], "restarts": [b for _, b in m]}},
                reference=None, judge_is_reference=False)
    assert by(df, "C1a", "x")["holds"] == "not testable"


def test_a_judge_below_its_stated_accuracy_makes_its_verdicts_not_testable():
    rs, fl = runs(judge_floor=0.3)
    df = claims(rs, reference=None, judge_is_reference=False, floor=fl, sanity=sanity(0.9, 0.3))
    for claim in ("C1a", "C3", "S-a"):
        row = by(df, claim, "scratch")
        assert row["holds"] == "not testable" and "below judge.min_accuracy" in row["note"]
    assert by(df, "C1b", "scratch")["holds"] == "no"  # the PNG ratio does not rest on the judge
    assert by(df, "J", "judge")["holds"] == "no"


def test_fig3_against_the_last_epoch_and_the_circular_judge():
    m = [run(ACC, JUDGE, PNG, LEAK, CHANGE, seed=s) for s in (0, 1)]
    rs = {"pretrained": {"kind": "reference", "metrics": [a for a, _ in m], "restarts": [b for _, b in m]}}
    rng = np.random.default_rng(5)
    ref = pd.DataFrame([{"class": c, "restart": r, "judge_prob": 0.99 + rng.normal(0, .005),
                         "png_ratio": 0.2 + rng.normal(0, .01)} for r in range(R) for c in ("c0", "c1")])
    df = claims(rs, reference=ref, judge_is_reference=False)
    assert by(df, "C4a", "pretrained")["holds"] == "yes"  # Fig. 3 more recognizable than the last epoch (0.76)
    assert by(df, "C4b", "pretrained")["holds"] == "no"  # and simpler in pixels: the opposite direction
    circular = claims(rs, reference=ref, judge_is_reference=True)
    row = by(circular, "C4a", "pretrained")
    assert row["holds"] == "not testable" and "circular" in row["note"]
    assert "NOT independent" in row["judge"]


def test_too_few_epochs_are_named():
    m = [run(ACC[:3], JUDGE[:3], PNG[:3], LEAK[:3], CHANGE[:3], seed=s) for s in (0, 1)]
    df = claims({"x": {"kind": "random", "metrics": [a for a, _ in m], "restarts": [b for _, b in m]}},
                reference=None, judge_is_reference=False)
    assert "2 trained epoch(s)" in by(df, "C1a", "x")["note"]
    with pytest.raises(IndexError):
        by(df, "C5", "x")  # no layers given: no row


def test_a_class_the_judge_reads_into_noise_is_left_out_of_its_probability_measures():
    """A judge that reads the starting noise as c1 (p 0.99): c1's p(own class) is left out
    of C1a (which then rests on c0 alone), and the note says why."""
    rs, fl = runs()
    fl.loc[fl["class"] == "c1", "noise_prob"] = 0.99
    for m in rs["scratch"]["metrics"]:  # c1 mirrors c0: with it, the mean over classes would not move at all
        m.loc[m["class"] == "c1", "judge_prob"] = 1 - m.loc[m["class"] == "c1", "judge_prob"]
    df = claims(rs, reference=None, judge_is_reference=False, floor=fl)
    row = by(df, "C1a", "scratch")
    assert row["holds"] == "yes" and "left out: c1 (the judge reads the starting noise as c1, p 0.99)" in row["note"]
    assert "left out" not in by(df, "C1b", "scratch")["note"]
    assert "epoch 0 images" in by(df, "J", "judge")["note"]
    fl.loc[fl["class"] == "c1", "noise_prob"] = 0.3  # read in full: the mirrored classes cancel
    assert by(claims(rs, reference=None, judge_is_reference=False, floor=fl), "C1a", "scratch")["holds"] == \
        "not testable"


def test_the_claims_are_corrected_together():
    """One p of 0.04 among twenty claims' tests decides nothing after Benjamini-Hochberg;
    twenty of 0.01 all hold; the checks (S, J) are not part of the family."""
    from featevo.measures.claims import correct

    rows = [{"claim": "C1a", "holds": "yes", "_p": 0.04, "_p_opposite": 0.96}]
    rows += [{"claim": "C1b", "holds": "not significant", "_p": 0.9, "_p_opposite": 0.1} for _ in range(19)]
    rows += [{"claim": "S-a", "holds": "yes", "_p": 0.04, "_p_opposite": np.nan}]
    correct(rows)
    assert rows[0]["holds"] == "not significant" and float(rows[0]["q"]) == pytest.approx(0.8)
    assert rows[-1]["holds"] == "yes" and rows[-1]["q"] == ""
    strong = [{"claim": "C2", "holds": "yes", "_p": 0.01, "_p_opposite": np.nan} for _ in range(20)]
    correct(strong)
    assert all(r["holds"] == "yes" for r in strong)


def test_a_design_that_cannot_reach_significance_is_called_underpowered_not_not_significant():
    """Two restarts against two (an exact test over 6 splits: p >= 1/6) cannot show any
    difference, however large; the table says so instead of 'not significant'."""
    m = [run(ACC, JUDGE, PNG, LEAK, CHANGE, seed=0, restarts=2)]
    rs = {"pretrained": {"kind": "reference", "metrics": [a for a, _ in m], "restarts": [b for _, b in m]}}
    ref = pd.DataFrame([{"class": c, "restart": r, "judge_prob": 0.99, "png_ratio": 0.2 + 0.01 * r}
                        for r in range(2) for c in ("c0", "c1")])
    df = claims(rs, reference=ref, judge_is_reference=False)
    row = by(df, "C4a", "pretrained")  # Fig. 3 far above the last epoch, two restarts each
    assert row["holds"] == "underpowered" and float(row["min_p"]) == pytest.approx(1 / 6, abs=1e-4)
    assert "the smallest p this design can attain is 0.1667" in row["note"]
    assert by(df, "C1a", "pretrained")["holds"] == "yes"  # ten epochs: the same table can still decide


def test_a_control_is_corrected_apart_from_the_experiments_under_test():
    """The frozen control's C5 holds by construction; among the tested rows its tiny p
    would lower every other row's q."""
    from featevo.measures.claims import correct

    tested = [{"claim": "C5", "role": "test", "holds": "yes", "_p": 0.02, "_p_opposite": 0.98},
              {"claim": "C1a", "role": "test", "holds": "not significant", "_p": 0.5, "_p_opposite": 0.5}]
    control = [{"claim": "C5", "role": "control (convolutions frozen, classifier trains)", "holds": "yes",
                "_p": 1e-4, "_p_opposite": 1.0}]
    correct(tested + control)
    assert float(tested[0]["q"]) == pytest.approx(0.04) and tested[0]["holds"] == "yes"  # 2 tests, not 3
    assert float(control[0]["q"]) == pytest.approx(1e-4)
    mixed = [dict(r) for r in tested] + [{**control[0], "role": "test"}]
    correct(mixed)
    assert float(mixed[0]["q"]) == pytest.approx(0.03)  # what the control did to it in one family


def test_the_shuffled_labels_control_measures_what_grows_with_time_alone():
    """labels: shuffled keeps accuracy at chance; N1 asks whether a measure rises with the
    epoch anyway (here the judge's probability does, the PNG ratio does not), and is
    corrected among the controls, not with the claims under test."""
    chance = [0.25] * 10
    rising = [0.2 + 0.05 * e for e in range(10)]
    m = [run(chance, rising, [0.5] * 10, [0.1] * 10, [0.6] * 10, seed=s) for s in (0, 1)]
    rs = {"shuffled": {"kind": "shuffled", "metrics": [a for a, _ in m], "restarts": [b for _, b in m]}}
    df = claims(rs, reference=None, judge_is_reference=False)
    assert set(df["claim"]) == {"N1a", "N1b"}  # no C rows: nothing was learned to test them on
    assert by(df, "N1b", "shuffled")["holds"] == "not testable"  # a constant PNG ratio is never tested
    row = by(df, "N1a", "shuffled")
    assert row["holds"] == "yes" and row["role"].startswith("negative control")
    assert "grows with training time alone" in row["note"] and "0.25, 0.25" in row["note"]
    flat = [run(chance, [0.5, 0.4, 0.6, 0.45, 0.55, 0.5, 0.42, 0.58, 0.47, 0.53], PNG, [0.1] * 10, [0.6] * 10,
                seed=s) for s in (0, 1)]
    df = claims({"shuffled": {"kind": "shuffled", "metrics": [a for a, _ in flat],
                              "restarts": [b for _, b in flat]}}, reference=None, judge_is_reference=False)
    assert by(df, "N1a", "shuffled")["holds"] == "not significant"
    assert by(df, "N1b", "shuffled")["holds"] == "no"  # PNG falls over the epochs: the opposite direction


def test_shuffled_labels_are_one_fixed_permutation_of_the_training_labels():
    from featevo.config.plan import experiment_kind
    from featevo.models.train import shuffled_labels

    labels = np.repeat(np.arange(4), 25)
    a, b = shuffled_labels(labels, 0), shuffled_labels(labels, 0)
    assert np.array_equal(a, b) and not np.array_equal(a, labels)  # the same at every epoch job
    assert np.array_equal(np.bincount(a), np.bincount(labels))  # class counts kept
    assert np.mean(a == labels) < 0.5 and not np.array_equal(shuffled_labels(labels, 1), a)
    assert experiment_kind({"init": "random", "labels": "shuffled"}) == "shuffled"
    assert experiment_kind({"init": "random", "freeze": "none"}) == "random"


def test_c1_is_not_identifiable_where_accuracy_beyond_the_epoch_is_sampling_noise():
    """Accuracy that only rises (no wiggle beyond its trend) leaves nothing for the partial
    rho but sampling noise: C1 says so, and leaves the correction family; the wiggling
    accuracy of the other tests (0.1 and more against a sampling SD of 0.02) is identifiable."""
    smooth = [0.25, 0.4, 0.55, 0.65, 0.72, 0.78, 0.82, 0.85, 0.87, 0.88]
    rising = [run(smooth, JUDGE, PNG, LEAK, CHANGE, seed=s) for s in (0, 1)]
    rs = {"scratch": {"kind": "random", "metrics": [m for m, _ in rising], "restarts": [r for _, r in rising],
                      "layers": None}}
    df = claims(rs, None, False, n_val=400)
    c1a = by(df, "C1a", "scratch")
    assert c1a["holds"] == "not identifiable" and "sampling noise of 400 validation images" in c1a["note"]
    assert c1a["q"] == ""  # outside the family
    wiggly, _ = runs()
    assert by(claims(wiggly, None, False, n_val=400), "C1a", "scratch")["holds"] == "yes"
    assert by(claims(rs, None, False), "C1a", "scratch")["holds"] != "not identifiable"  # no n: not claimed


def test_c2_as_the_paper_states_it_is_a_trend_in_complexity_after_saturation():
    """Saturation at epoch 5 (accuracy within a point of its best from there): the PNG
    ratio rising over epochs 5-9 is a yes, falling a no; with fewer than 4 epochs from
    saturation on, not testable."""
    acc = [0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.9, 0.905, 0.9, 0.9]

    def verdict(png, acc=acc):
        seeds = [run(acc, JUDGE, png, LEAK, CHANGE, seed=s) for s in (0, 1)]
        rs = {"scratch": {"kind": "random", "metrics": [m for m, _ in seeds], "restarts": [r for _, r in seeds],
                          "layers": None}}
        return by(claims(rs, None, False), "C2", "scratch")

    rising = verdict([0.5, 0.4, 0.35, 0.3, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert rising["holds"] == "yes" and "epoch 5" in rising["measure"]
    assert verdict([0.5, 0.4, 0.35, 0.3, 0.3, 0.7, 0.6, 0.5, 0.4, 0.3])["holds"] == "no"
    late = verdict([0.5] * 10, acc=[0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9])
    assert late["holds"] == "not testable" and "needs 4 or more" in late["note"]

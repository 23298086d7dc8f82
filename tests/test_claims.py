"""The claims table: each claim's measure, test and verdict on metrics made to hold or not."""

import numpy as np
import pandas as pd

from featevo.claims import claims, markdown


def metrics(acc, judge, png, leak, changed):
    rows = []
    for e, (a, j, p, lk, c) in enumerate(zip(acc, judge, png, leak, changed)):
        for k in range(2):
            rows.append({"epoch": e, "class": f"c{k}", "val_acc": a, "judge_prob": j, "png_ratio": p,
                         "judge_leak": lk, "changed": c})
    return pd.DataFrame(rows)


def by(df, claim, exp):
    return df[(df["claim"] == claim) & (df["experiment"] == exp)].iloc[0]


def test_claims_hold_where_the_metrics_say_so():
    acc = [0.25, 0.6, 0.8, 0.9, 0.9, 0.9, 0.8]  # saturates at epoch 3, best 3, falls by 10 points
    rising = metrics(acc, judge=[0.2, 0.5, 0.7, 0.8, 0.85, 0.9, 0.9], png=[0.8, 0.7, 0.6, 0.5, 0.5, 0.4, 0.4],
                     leak=[0.5, 0.4, 0.2, 0.1, 0.15, 0.2, 0.3], changed=[False, True, True, True, True, True, False])
    flat = metrics([0.5] * 7, judge=[0.5] * 7, png=[0.5] * 7, leak=[0.1] * 7, changed=[False] * 7)
    runs = {"scratch": {"kind": "random", "metrics": [rising, rising]},
            "frozen": {"kind": "frozen", "metrics": [flat, flat]}}
    df = claims(runs, reference=None, judge_is_reference=False)
    assert by(df, "C1a", "scratch")["holds"] == "yes"  # recognizable as accuracy rises
    assert by(df, "C1b", "scratch")["holds"] == "no"  # pixel complexity falls
    c2 = by(df, "C2", "scratch")
    assert c2["holds"] == "yes" and "epoch 3" in c2["measure"]  # 5 of 6 after saturation changed
    assert by(df, "C3", "scratch")["holds"] == "yes"  # accuracy fell and leakage rose
    assert by(df, "C1a", "frozen")["role"] == "control"
    assert by(df, "C1a", "frozen")["holds"] == "not testable"  # nothing varies
    assert "accuracy" in by(df, "C3", "frozen")["note"]
    assert "| C2 | scratch |" in markdown(df)


def test_claim_3_needs_accuracy_to_fall_and_claim_4_an_independent_judge():
    acc = [0.25, 0.6, 0.8, 0.9]  # best at the last epoch
    m = metrics(acc, judge=[0.2, 0.5, 0.6, 0.7], png=[0.8, 0.7, 0.6, 0.5], leak=[0.5, 0.4, 0.3, 0.2],
                changed=[False, True, True, True])
    ref = pd.DataFrame({"class": ["c0", "c1"], "judge_prob": [0.9, 0.9], "png_ratio": [0.6, 0.6]})
    runs = {"pretrained": {"kind": "reference", "metrics": [m]}}
    df = claims(runs, reference=ref, judge_is_reference=False)
    assert by(df, "C3", "pretrained")["holds"] == "not testable"
    assert by(df, "C2", "pretrained")["holds"] == "not testable"  # saturates at the last epoch
    assert by(df, "C4a", "pretrained")["holds"] == "yes"  # Fig. 3 0.9 against 0.7
    assert by(df, "C4b", "pretrained")["holds"] == "yes"  # 0.6 against 0.5
    assert float(by(df, "C4a", "pretrained")["per_seed"]) == np.float64(0.2).round(3)
    circular = claims(runs, reference=ref, judge_is_reference=True)
    assert by(circular, "C4a", "pretrained")["holds"] == "not testable"

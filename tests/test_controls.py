"""The positive controls: images of known complexity, and a measure that does not order
them decides no claim."""

import numpy as np
import pandas as pd

from featevo.measures.claims import claims
from featevo.measures.controls import complexity_controls, known_complexity
from featevo.measures.metrics import png_ratio


def test_the_control_images_hold_the_parts_they_are_said_to():
    images, counts = known_complexity((1, 2, 4, 8), 6, 48, seed=0)
    assert images.shape == (24, 48, 48, 3) and images.dtype == np.uint8
    assert counts.tolist() == [1] * 6 + [2] * 6 + [4] * 6 + [8] * 6
    again, _ = known_complexity((1, 2, 4, 8), 6, 48, seed=0)
    assert np.array_equal(images, again)  # seeded: the same images for every run of the config
    # a part changes the image: zero parts leave only the background, smooth by construction
    bare, _ = known_complexity((0,), 6, 48, seed=0)
    assert np.mean([png_ratio(i) for i in bare]) < np.mean([png_ratio(i) for i in images[counts == 8]])


def test_a_measure_that_orders_the_parts_passes_and_one_that_does_not_fails():
    images, counts = known_complexity((1, 2, 4, 8), 12, 48, seed=1)
    df = complexity_controls(images, counts).set_index("measure")
    assert df.loc["png_ratio", "passes"] and df.loc["png_ratio", "rho"] > 0.5
    # the known answer, reversed: the same images with the counts in the opposite order
    flipped = complexity_controls(images, counts.max() + 1 - counts).set_index("measure")
    assert not flipped["passes"].any() and (flipped["rho"] < 0).all()


def test_a_measure_that_fails_its_control_carries_no_verdict():
    from test_claims import runs

    rs, floor_ = runs()
    reference = None
    base = claims(rs, reference, False)
    ok = pd.DataFrame([{"measure": "png_ratio", "rho": 0.8, "p": 1e-4, "min_p": 1e-4, "images": 100,
                        "means_by_parts": "1:0.2 8:0.3", "passes": True}])
    bad = ok.assign(rho=0.05, p=0.4, passes=False)
    passed = claims(rs, reference, False, controls=ok)
    failed = claims(rs, reference, False, controls=bad)
    c1b = lambda df: df[(df["claim"] == "C1b") & (df["experiment"] == "scratch")].iloc[0]  # noqa: E731
    assert c1b(passed)["holds"] == c1b(base)["holds"] == "no"  # PNG falls where accuracy rises
    assert c1b(failed)["holds"] == "not testable" and "failed its positive control" in c1b(failed)["note"]
    p_row = failed[failed["claim"] == "P"].iloc[0]
    assert p_row["role"] == "positive control" and p_row["holds"] == "not significant" and p_row["q"] == ""
    # the judge's claims do not rest on the PNG ratio: untouched
    c1a = lambda df: df[(df["claim"] == "C1a") & (df["experiment"] == "scratch")].iloc[0]  # noqa: E731
    assert c1a(failed)["holds"] == c1a(passed)["holds"]

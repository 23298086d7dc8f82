import pytest
import pandas as pd

from featevo.figures.tables import accuracy_table, markdown, table_epochs


def history(accs):
    return pd.DataFrame({"epoch": range(len(accs)), "val_acc": accs, "train_loss": 0.0, "train_acc": 0.0,
                         "val_loss": 0.0})


def test_paper_table1_epochs_are_recovered():
    # the paper's Table 1 at epochs 1..23, flat in between: new maxima only
    paper = {1: 60, 2: 80, 4: 83, 6: 88, 8: 89, 12: 90, 13: 91, 18: 92, 23: 93}
    accs, last = [0.25], 0
    for e in range(1, 24):
        last = paper.get(e, last)
        accs.append(last / 100 - (0.001 if e not in paper else 0))
    assert table_epochs(history(accs)) == [1, 2, 4, 6, 8, 12, 13, 18, 23]


def test_last_epoch_is_added_when_lower():
    # Table 2's shape: a fall at the last epoch is shown
    accs = [0.25, 0.59, 0.89, 0.85, 0.96, 0.93]
    assert table_epochs(history(accs)) == [1, 2, 4, 5]
    t = accuracy_table(history(accs))
    assert t["why"].tolist() == ["new maximum"] * 3 + ["last epoch"]


def test_ties_are_not_new_maxima_and_epoch0_is_ignored():
    accs = [0.99, 0.5, 0.7, 0.7, 0.6, 0.7]
    # epoch 0 (untrained) never counts; 0.7 again is no new maximum; last equals the max: not "lower"
    assert table_epochs(history(accs)) == [1, 2]


def test_markdown_puts_paper_beside_ours():
    h = history([0.25, 0.6, 0.7, 0.65])
    md = markdown(accuracy_table(h), h, "scratch", {1: 60, 4: 83, 5: 88})
    assert "| 1 | 60.0% | new maximum | 60% |" in md
    assert "| 2 | 70.0% | new maximum | – |" in md
    assert "| 3 | 65.0% | last epoch | – |" in md
    assert "| 4 | – |  | 83% |" in md and "| 5 | – |  | 88% |" in md


def test_several_seeds_give_mean_spread_and_each_value():
    from featevo.figures.tables import across_seeds, latex

    a, b = history([0.25, 0.5, 0.7, 0.6]), history([0.25, 0.7, 0.7, 0.8])
    h = across_seeds([a, b], [3, 7])
    assert h["val_acc"].round(3).tolist() == [0.25, 0.6, 0.7, 0.7]
    assert h.loc[1, "val_acc_std"] == pytest.approx(0.1414, abs=1e-4)
    assert (h.loc[3, "val_acc_min"], h.loc[3, "val_acc_max"]) == (0.6, 0.8)
    t = accuracy_table(h)
    assert t["epoch"].tolist() == [1, 2]  # chosen on the mean; 0.7 at epoch 3 ties, not a new maximum
    assert t["val_acc_seed7"].tolist() == [0.7, 0.7]
    md = markdown(t, h, "scratch", None)
    assert "| 1 | 60.0 ± 14.1% (50.0 / 70.0) | new maximum |" in md and "seeds 3, 7" in md
    assert "$\\pm$" in latex(t, "x")


def test_seeds_must_cover_the_same_epochs():
    from featevo.figures.tables import across_seeds

    with pytest.raises(ValueError, match="different epochs"):
        across_seeds([history([0.2, 0.5]), history([0.2, 0.5, 0.6])], [0, 1])

"""benchmarks/objectives.py (docs/visualization.md's table) on the session's toy run, so that it cannot rot."""

import sys

from snakemake_helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import objectives  # noqa: E402


def test_the_recipes_table_measures_each_network_with_the_selector(tiny_run, capsys):
    workdir, run, _ = tiny_run
    assert objectives.main(["--run", str(run), "--config", str(ROOT / "config.yaml"),
                            str(ROOT / "tests" / "configs" / "tiny.yaml"), "--objectives", "logit", "log_softmax",
                            "--medians", "3:8", "--selector", "--set", "steps=4"]) == 0
    out = capsys.readouterr().out
    assert "selector: vgg13" in out and "| selector p(own) |" in out
    rows = [line for line in out.splitlines() if line.startswith("| logit") or line.startswith("| log_softmax")]
    # per objective: scratch, pretrained, frozen (first and last epochs) and the reference
    assert len(rows) == 2 * (3 * 2 + 1)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0 <= float(cells[4]) <= 1 and 0 <= float(cells[6]) <= 1, row  # selector p and saturated share
    assert all(float(r.strip("|").split("|")[6]) == 0 for r in rows if r.startswith("| logit"))  # never stalls
    assert "criterion: selector p(own class)" in out and "logit, 3x3 every 8:" in out

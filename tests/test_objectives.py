"""benchmarks/objectives.py (docs/visualization.md's table) on the session's toy run, so that it cannot rot."""

import sys

from snakemake_helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import objectives  # noqa: E402


def test_the_objectives_table_measures_each_network(tiny_run, capsys):
    workdir, run, _ = tiny_run
    assert objectives.main(["--run", str(run), "--config", str(ROOT / "config.yaml"),
                            str(ROOT / "tests" / "configs" / "tiny.yaml"), "--objectives", "logit", "log_softmax",
                            "--set", "steps=4"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| logit") or
            line.startswith("| log_softmax")]
    # per objective: scratch, pretrained, frozen (first and last epochs) and the reference
    assert len(rows) == 2 * (3 * 2 + 1)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0 <= float(cells[3]) <= 1 and 0 <= float(cells[5]) <= 1, row  # judge p and saturated share
    assert all(float(r.strip("|").split("|")[5]) == 0 for r in rows if r.startswith("| logit"))  # never stalls

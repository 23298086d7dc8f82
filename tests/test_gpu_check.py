"""benchmarks/gpu_check.py, the first GPU's check, run at toy size on the CPU so that it cannot rot."""

import json
import sys

import pytest

from snakemake_helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def check_table(out, workflow):
    md = (out / "check.md").read_text()
    for row in ("training, fp32 (TF32 off, the paper)", "training, bf16 autocast", "visualization, fp32",
                "visualization, bf16", "train.deterministic: two runs | equal bit for bit",
                "two jobs, one GPU | ok", *(["configs/paper.yaml on a fake ImageNet, end to end | ok"] if workflow
                                           else [])):
        assert row in md, (row, md)
    r = json.loads((out / "check.json").read_text())
    assert r["train"]["fp32"]["img_s"] > 0 and r["viz"]["fp32"]["seconds"] > 0
    assert 0 < r["viz"]["fp32"]["share"] < 1
    assert r["two_jobs"]["named_first"] and r["two_jobs"]["second_waited_s"] >= 1.5
    # every channel of the 13 convolutions: VGG-16's 4,224, narrowed 16 times at toy size
    assert r["atlas"]["layers"] == 13 and r["atlas"]["channels"] == 4224 // 16 and r["atlas"]["channels_s"] > 0
    assert "atlas: every channel of 13 convolutions (264)" in md
    return r


def test_the_gpu_check_writes_only_into_a_folder_of_its_user(tmp_path):
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    link = tmp_path / "link"
    link.symlink_to(open_folder)
    for bad in (open_folder, link):
        with pytest.raises(SystemExit):
            gpu_check.main(["--toy", "--no-workflow", "--out", str(bad)])
    assert list(open_folder.iterdir()) == []
    assert gpu_check.own_folder(tmp_path / "mine" / "deeper") is None


def test_the_gpu_check_runs_its_parts_at_toy_size(tmp_path):
    assert gpu_check.main(["--toy", "--no-workflow", "--out", str(tmp_path)]) == 0
    r = check_table(tmp_path, workflow=False)
    assert "workflow" not in r


@pytest.mark.e2e
@pytest.mark.slow
def test_the_gpu_check_runs_the_paper_s_workflow_at_toy_size(tmp_path):
    assert gpu_check.main(["--toy", "--out", str(tmp_path)]) == 0
    r = check_table(tmp_path, workflow=True)
    (work,) = tmp_path.glob("workflow-*")  # a private folder of its own
    assert oct(work.stat().st_mode & 0o777) == "0o700"
    assert (work / "results" / "paper" / "figures" / "fig1.png").is_file()
    assert r["workflow"]["ok"]

"""The whole DAG at toy size through snakemake: outputs, no-op rerun, partial rerun."""

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from snakemake_helpers import ROOT, job_counts, snakemake

pytestmark = pytest.mark.e2e
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    proc = snakemake(workdir, configs=[TINY])
    return workdir, workdir / "results" / "tiny", proc


def test_every_paper_artifact_is_written(tiny_run):
    _, run, _ = tiny_run
    for name in ("fig1", "fig2", "fig3", "learning_curves"):
        for ext in ("png", "pdf"):
            assert (run / "figures" / f"{name}.{ext}").stat().st_size > 1000
    for name in ("table1", "table2"):
        for ext in ("csv", "md", "tex"):
            assert (run / "tables" / f"{name}.{ext}").is_file()
    md = (run / "tables" / "table1.md").read_text()
    assert "60%" in md and "| 1 |" in md  # the paper's value for epoch 1 beside ours
    assert "Validation Accuracy" in (run / "tables" / "table1.tex").read_text()
    for exp, epochs in (("scratch", 3), ("pretrained", 3)):
        m = pd.read_csv(run / "metrics" / f"{exp}.csv")
        assert len(m) == epochs * 4 and m["own_prob"].between(0, 1).all() and m["png_ratio"].gt(0).all()
        assert (run / "figures" / f"metrics_{exp}.png").stat().st_size > 1000


def test_checkpoints_histories_and_visualizations(tiny_run):
    _, run, _ = tiny_run
    for exp in ("scratch", "pretrained"):
        h = pd.read_csv(run / "train" / exp / "history.csv")
        assert h["epoch"].tolist() == [0, 1, 2]
        assert h["val_acc"].between(0, 1).all() and h.loc[1:, "train_loss"].notna().all()
        for e in range(3):
            viz = run / "viz" / exp / f"epoch_{e:03d}"
            img = np.asarray(Image.open(viz / "composite.png"))
            assert img.shape == (64, 64, 3)  # 2 x 2 of 32 px
            assert (viz / "tree_frog.png").is_file() and (viz / "pool_table.png").is_file()
            d = np.load(viz / "classes.npz")
            assert d["probs"].shape == (4, 4) and np.allclose(d["probs"].sum(1), 1, atol=1e-4)
            # the composite's lower-left quadrant is the pool table's image (clockwise from upper left)
            assert np.array_equal(img[32:, :32], d["images"][3])
    # optimizer state only for the newest epoch
    assert sorted(p.name for p in (run / "train" / "scratch").glob("*.optim.pt")) == ["epoch_002.optim.pt"]
    assert (run / "logs" / "train" / "scratch" / "epoch_002.log").read_text().count("[train scratch]") >= 2


def test_rerun_does_nothing(tiny_run):
    workdir, _, _ = tiny_run
    proc = snakemake(workdir, "-n", configs=[TINY])
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_deleting_a_checkpoint_reruns_only_what_depends_on_it(tiny_run):
    workdir, run, _ = tiny_run
    (run / "train" / "scratch" / "epoch_002.pt").unlink()
    counts = job_counts(snakemake(workdir, "-n", configs=[TINY]).stdout)
    assert counts == {"train_epoch": 1, "visualize": 1, "history": 1, "accuracy_table": 1,
                      "evolution_figure": 1, "learning_curves": 1, "feature_metrics": 1, "all": 1}, counts


def test_temporary_checkpoints_are_deleted_once_used_and_nothing_else_is(tmp_path):
    """train.keep_checkpoints: false, the README's way to keep the paper run's disk small."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "temp.yaml").write_text("train: {keep_checkpoints: false}\nexperiments: {pretrained: {epochs: 1}}\n")
    snakemake(tmp_path, configs=[TINY, tmp_path / "temp.yaml"])
    run = tmp_path / "results" / "tiny"
    assert list((run / "train").glob("*/epoch_*[0-9].pt")) == []
    for exp, last in (("scratch", 2), ("pretrained", 1)):
        assert (run / "train" / exp / f"epoch_{last:03d}.json").is_file()
        assert all((run / "viz" / exp / f"epoch_{e:03d}" / "composite.png").is_file() for e in range(last + 1))
    assert (run / "figures" / "fig1.pdf").is_file() and (run / "tables" / "table2.md").is_file()
    # missing temporary files are not missing outputs: a second run has nothing to do
    proc = snakemake(tmp_path, "-n", configs=[TINY, tmp_path / "temp.yaml"])
    assert "Nothing to be done" in proc.stdout + proc.stderr

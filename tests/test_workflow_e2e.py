"""The whole DAG at toy size through snakemake: outputs, no-op rerun, partial rerun."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import TINY_RUN
from snakemake_helpers import ROOT, job_counts, snakemake

pytestmark = pytest.mark.e2e
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


EPOCHS = {"scratch": 2, "pretrained": 2, "frozen": 1}  # tests/configs/tiny.yaml
SEEDS = (0, 1)  # config.yaml


def test_every_paper_artifact_is_written(tiny_run):
    _, run, _ = tiny_run
    for name in ("fig1", "fig2", "fig_frozen", "fig3", "learning_curves"):
        for ext in ("png", "pdf"):
            assert (run / "figures" / f"{name}.{ext}").stat().st_size > 1000
    for name in ("table1", "table2", "table_frozen"):
        for ext in ("csv", "md", "tex"):
            assert (run / "tables" / f"{name}.{ext}").is_file()
    md = (run / "tables" / "table1.md").read_text()
    assert "60%" in md and "| 1 |" in md  # the paper's value for epoch 1 beside ours
    assert "seeds 0, 1" in md  # mean and spread over the seeds
    t = pd.read_csv(run / "tables" / "table1.csv")
    assert {"val_acc_std", "val_acc_seed0", "val_acc_seed1"} <= set(t.columns)
    assert "Validation Accuracy" in (run / "tables" / "table1.tex").read_text()


def test_metrics_for_every_experiment_and_seed(tiny_run):
    _, run, _ = tiny_run
    for exp, last in EPOCHS.items():
        for seed in SEEDS:
            m = pd.read_csv(run / "metrics" / f"{exp}_seed{seed}.csv")
            assert len(m) == (last + 1) * 4 and m["own_prob"].between(0, 1).all() and m["png_ratio"].gt(0).all()
            assert m["judge_prob"].between(0, 1).all() and m["judge_similarity"].between(-1, 1.0001).all()
            assert m["judge_leak"].between(0, 1).all() and m["saturated"].between(0, 1).all()
            # every image scored against the run's real validation images, per class-epoch and per restart
            assert m["real_percentile"].between(0, 1).all() and m["hf_ratio"].gt(0).all()
            # every checkpoint's decisions on the stand-in's cue-conflict images (a share, or NaN
            # where no decision named either cue)
            assert m["parts_share"].dropna().between(0, 1).all() and m["parts_share"].notna().any()
            r = pd.read_csv(run / "metrics" / f"{exp}_seed{seed}_restarts.csv")
            assert r["real_percentile"].between(0, 1).all() and len(r) == len(m) * 2
            # tests/configs/tiny.yaml: 2 restarts; the change from the epoch before from epoch 1 on
            assert m["restart_spread"].gt(0).all() and m["change"].isna().sum() == 4
            assert m["changed"].isin([True, False]).all() and m.loc[4:, "top_jaccard"].between(0, 1).all()
            for kind in ("metrics", "confusion"):
                assert (run / "figures" / f"{kind}_{exp}_seed{seed}.png").stat().st_size > 1000


def test_claims_table_top_images_and_fig3_judged(tiny_run):
    _, run, _ = tiny_run
    claims = pd.read_csv(run / "tables" / "claims.csv")
    # the paper's claims (C2 as it states it, C2c the weaker reading), the layers settling
    # bottom up (C5), colour first, parts later on the cue-conflict images (C6), the positive
    # controls (P), the judge's floor (J) and the sanity check's two rows (S-a: the judge,
    # S-b: the PNG ratio)
    assert set(claims["claim"]) == {"C1a", "C1b", "C2", "C2c", "C3", "C4a", "C4b", "C5", "C6a", "C6b", "C6c", "P", "J",
                                    "S-a", "S-b"}
    assert set(claims["holds"]) <= {"yes", "no", "not significant", "underpowered", "not testable",
                                    "not identifiable"}
    assert set(claims[claims["claim"] == "P"]["measure"].str.split(":").str[0]) == {"png_ratio", "hf_energy",
                                                                                   "total_variation"}
    # two restarts against two (an exact test over 6 splits) can never reach 0.05: the sanity
    # check's rows say so rather than "not significant" (or not testable: a judge at the tiny
    # run's accuracy reads nothing, a constant measure is not tested)
    sanity = claims[claims["claim"].isin(["S-a", "S-b"])]
    assert set(sanity["holds"]) <= {"underpowered", "not testable"} and "underpowered" in set(sanity["holds"])
    assert sanity[sanity["holds"] == "underpowered"]["note"].str.contains("smallest p this design").all()
    roles = set(claims["role"])  # frozen is the control, and says what kind
    assert "test" in roles and "control (convolutions frozen, classifier trains)" in roles, roles
    assert (claims["test"].str.len() > 5).all()  # every claim says its test
    assert "| claim |" in (run / "tables" / "claims.md").read_text()
    for exp in EPOCHS:
        assert (run / "figures" / f"top_{exp}.png").stat().st_size > 1000
    ref = pd.read_csv(run / "metrics" / "reference.csv")
    assert len(ref) == 4 and ref["judge_prob"].between(0, 1).all()
    # Fig. 3 is drawn with every checkpoint's recipe: the same steps, restarts and objective
    fig3 = np.load(run / "viz" / "reference" / "classes.npz")
    ckpt = np.load(run / "viz" / "scratch" / "seed0" / "epoch_002" / "classes.npz")
    assert fig3["trace"].shape == ckpt["trace"].shape == (8, 8)  # 8 steps, 2 restarts x 4 classes
    assert fig3["restart_images"].shape == (2, 4, 32, 32, 3)
    assert ckpt["top_index"].shape == (4, 3)
    # each job stored the recipe it read (tiny.yaml's layered over config.yaml), which the figures print
    from featevo.figures.charts import recipe_line
    from featevo.config.settings import load_config

    layered = load_config(ROOT / "config.yaml", ROOT / "tests" / "configs" / "tiny.yaml")["visualize"]
    for d in (fig3, ckpt, np.load(run / "viz" / "scratch" / "seed0" / "epoch_001" / "units.npz")):
        recipe = json.loads(str(d["recipe"]))
        assert recipe == {k: v for k, v in layered.items() if k != "threads"}
        assert recipe_line(d).startswith(f"objective: {layered['objective']}, pixel image, ascent, "
                                         f"8 steps of {layered['step_size']}")


def test_animation_and_optional_methods(tiny_run):
    _, run, _ = tiny_run
    for exp, last in EPOCHS.items():
        with Image.open(run / "figures" / f"evolution_{exp}.gif") as gif:
            assert gif.n_frames == last + 1  # every epoch, from the untrained network on
        for method in ("saliency", "occlusion", "inversion"):
            assert (run / "figures" / f"{method}_{exp}.png").stat().st_size > 1000
        d = np.load(run / "explain" / exp / f"epoch_{last:03d}.npz")
        assert d["saliency"].shape == (4, 32, 32) and d["inversion"].shape == (3, 4, 32, 32, 3)


def test_frozen_experiment_trains_only_its_classifier(tiny_run):
    _, run, _ = tiny_run
    import torch

    before, after = (torch.load(run / "train" / "frozen" / "seed0" / f"epoch_00{e}.pt", weights_only=True)["model"]
                     for e in (0, 1))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("features."))
    assert not torch.equal(before["classifier.6.weight"], after["classifier.6.weight"])


def test_checkpoints_histories_and_visualizations(tiny_run):
    _, run, _ = tiny_run
    for exp in ("scratch", "pretrained"):
        for seed in SEEDS:
            h = pd.read_csv(run / "train" / exp / f"seed{seed}" / "history.csv")
            assert h["epoch"].tolist() == [0, 1, 2]
            assert h["val_acc"].between(0, 1).all() and h.loc[1:, "train_loss"].notna().all()
        for e in range(3):
            viz = run / "viz" / exp / "seed0" / f"epoch_{e:03d}"
            img = np.asarray(Image.open(viz / "composite.png"))
            assert img.shape == (64, 64, 3)  # 2 x 2 of 32 px
            assert (viz / "tree_frog.png").is_file() and (viz / "pool_table.png").is_file()
            d = np.load(viz / "classes.npz")
            assert d["probs"].shape == (4, 4) and np.allclose(d["probs"].sum(1), 1, atol=1e-4)
            # the composite's lower-left quadrant is the pool table's image (clockwise from upper left)
            assert np.array_equal(img[32:, :32], d["images"][3])
    # the seeds are different runs: other initial weights
    w0, w1 = (torch_load(run / "train" / "scratch" / f"seed{s}" / "epoch_000.pt") for s in SEEDS)
    assert not np.array_equal(w0, w1)
    # every epoch's optimizer state is kept (train.keep_optimizer_state: true), declared to Snakemake
    folder = run / "train" / "scratch" / "seed0"
    assert sorted(p.name for p in folder.glob("*.optim.pt")) == ["epoch_001.optim.pt", "epoch_002.optim.pt"]
    assert (run / "logs" / "train" / "scratch" / "seed0" / "epoch_002.log").read_text().count(
        "[train scratch seed 0]") >= 2


def torch_load(path):
    import torch

    return torch.load(path, weights_only=True)["model"]["features.0.weight"].numpy()


def test_rerun_does_nothing(tiny_run):
    workdir, _, _ = tiny_run
    proc = snakemake(workdir, "-n", configs=TINY_RUN)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_deleting_a_checkpoint_reruns_only_what_depends_on_it(tiny_run):
    workdir, run, _ = tiny_run
    (run / "train" / "scratch" / "seed1" / "epoch_002.pt").unlink()
    counts = job_counts(snakemake(workdir, "-n", configs=TINY_RUN).stdout)
    # seed 1 is not in the images, GIF or methods (seed 0's): only its own chain and the summaries
    # (Fig. 1 chooses its epochs on the mean over seeds, as Table 1 does)
    # (and the layers' CKA, read over every seed)
    assert counts == {"train_epoch": 1, "visualize": 1, "history": 1, "accuracy_table": 1, "evolution_figure": 1,
                      "top_figure": 1, "learning_curves": 1, "feature_metrics": 1, "representations": 1, "claims": 1,
                      "all": 1}, counts
    (run / "train" / "scratch" / "seed0" / "epoch_002.pt").unlink()
    counts = job_counts(snakemake(workdir, "-n", configs=TINY_RUN).stdout)
    assert counts == {"train_epoch": 2, "visualize": 2, "history": 2, "accuracy_table": 1, "evolution_figure": 1,
                      "learning_curves": 1, "feature_metrics": 2, "animation": 1, "explain": 1,
                      "method_figure": 3, "top_figure": 1, "claims": 1, "visualize_units": 1, "units_figure": 1,
                      "representations": 1, "sanity_networks": 1, "visualize_sanity": 3, "sanity_metrics": 1,
                      "atlas_render": 1, "atlas_page": 1, "all": 1}, counts
    # (the sanity check re-initializes the first seed's last checkpoint; the atlas shows its last epoch)
    # rebuilt, the run is complete again (and the session's other tests see it whole)
    snakemake(workdir, configs=TINY_RUN)
    assert (run / "train" / "scratch" / "seed0" / "epoch_002.pt").is_file()
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(snakemake(workdir, "-n", configs=TINY_RUN))


@pytest.mark.slow
def test_temporary_checkpoints_are_deleted_once_used_and_nothing_else_is(tmp_path):
    """train.keep_checkpoints: false, docs/reproducing.md's way to keep the paper run's disk small."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    # no frozen experiment and the sanity check's control alone: the deletion is the same, and a
    # toy DAG's jobs are mostly start-up (2 minutes of make test-all with them)
    (tmp_path / "temp.yaml").write_text("seeds: [1]\ntrain: {keep_checkpoints: false}\nsanity: {levels: [all]}\n"
                                        "experiments: {pretrained: {epochs: 1}, frozen: null}\n")
    snakemake(tmp_path, configs=[TINY, tmp_path / "temp.yaml"])
    run = tmp_path / "results" / "tiny"
    assert list((run / "train").glob("*/*/epoch_*[0-9].pt")) == []
    for exp, last in (("scratch", 2), ("pretrained", 1)):
        assert (run / "train" / exp / "seed1" / f"epoch_{last:03d}.json").is_file()
        assert all((run / "viz" / exp / "seed1" / f"epoch_{e:03d}" / "composite.png").is_file()
                   for e in range(last + 1))
    assert (run / "figures" / "fig1.pdf").is_file() and (run / "tables" / "table2.md").is_file()
    assert (run / "explain" / "scratch" / "epoch_002.npz").is_file()  # methods ran before the deletion
    # missing temporary files are not missing outputs: a second run has nothing to do
    proc = snakemake(tmp_path, "-n", configs=[TINY, tmp_path / "temp.yaml"])
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_the_judge_is_trained_apart_from_the_reference(tiny_run):
    """The metrics' fixed network: another architecture, seed and images than the
    reference that initialized the pretrained experiments (config.yaml's judge)."""
    import torch

    _, run, _ = tiny_run
    judge = torch.load(run / "judge" / "model.pt", weights_only=False)
    reference = torch.load(run / "reference" / "model.pt", weights_only=False)
    assert judge["spec"]["arch"] == "vgg11" and reference["spec"]["arch"] == "vgg16"
    assert judge["classes"] == reference["classes"][:4]  # the subset's four classes, its own head
    own = np.load(run / "data" / "judge" / "train_images.npy")
    ref_images = np.load(run / "data" / "reference" / "train_images.npy")
    flat = {img.tobytes() for img in ref_images}
    assert not any(img.tobytes() in flat for img in own)  # images of its own
    m = pd.read_csv(run / "metrics" / "scratch_seed0.csv")
    assert {"judge_prob", "judge_similarity"} <= set(m.columns)


def test_inner_units_get_a_figure_per_experiment(tiny_run):
    """visualize.units (tests/configs/tiny.yaml): every checkpoint of the first seed, one job
    each, and a figure of each unit over the epochs."""
    _, run, _ = tiny_run
    for exp in ("scratch", "pretrained", "frozen"):
        assert (run / "figures" / f"units_{exp}.png").stat().st_size > 0
        d = np.load(run / "viz" / exp / "seed0" / "epoch_001" / "units.npz")
        assert d["units"].tolist() == ["features.28:3", "features.10:1:2:2"]
        assert d["images"].shape == (2, 32, 32, 3) and d["activation"].shape == (2, 2)
    assert not (run / "viz" / "scratch" / "seed1" / "epoch_001" / "units.npz").exists()  # the first seed only

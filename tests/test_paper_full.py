"""configs/paper.yaml itself, at full size (VGG-16, 224 px, pool 7), end to end through snakemake.

Layered only with a small override file: a fake ImageNet in the official layout
(ILSVRC2012_img_train.tar of <wnid>.tar, with distractor synsets and ImageNet's
quirks), a weights file in torchvision's exact format and name scheme (seeded
random weights, so its digest is passed as reference.sha256, the key whose
default is the published file's), few images, one epoch per experiment, a few
visualization steps, the optional methods off.  What a user with ImageNet gets,
at a size that runs on 2 cores in minutes.
"""

import shutil
import threading
import time

import numpy as np
import pytest
import torch
import yaml
import fake_imagenet as fake  # benchmarks/fake_imagenet.py (conftest puts it on the path)
from snakemake_helpers import ROOT, snakemake

pytestmark = pytest.mark.e2e
PAPER = ROOT / "configs" / "paper.yaml"
WNIDS = fake.PAPER_WNIDS
PER_CLASS, VAL = 8, 2
CHECKPOINT_MIB = 512  # docs/reproducing.md's budget per checkpoint of the 4-class VGG-16 (and per ImageNet import)


def fake_train_tar(folder):
    return fake.train_tar(folder, PER_CLASS + 2)


def torchvision_weights(folder):
    return fake.vgg16_weights(folder)


def du(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    return run_paper(tmp_path_factory, {})


# train.keep_checkpoints: false is tested on the tiny DAG (test_workflow_e2e): a second run at full
# size for it took 3 min 19 s of make test-all and checked nothing the tiny one does not


def run_paper(tmp_path_factory, train, experiments=None):
    work = tmp_path_factory.mktemp("paper")
    inputs = tmp_path_factory.mktemp("inputs")
    shutil.copy(ROOT / "config.yaml", work / "config.yaml")
    tar = fake_train_tar(inputs)
    weights, digest = torchvision_weights(inputs)
    override = {
        "data": {"imagenet": str(tar), "images_per_class": PER_CLASS, "val_per_class": VAL},
        "reference": {"weights": str(weights), "sha256": digest},
        # no frozen experiment: at 224 px each job of VGG-16 costs 10-25 s on 2 cores, and its 12
        # jobs took about 3 of this run's 10 minutes; the toy DAGs run it, and at full size it
        # differs from pretrained only in which weights train
        "experiments": {"scratch": {"epochs": 1}, "pretrained": {"epochs": 1}, "frozen": None,
                        **(experiments or {})},
        # the sanity check's control alone (the claims read it): a visualization job per level and
        # experiment is the run's dearest step at 224 px on a CPU
        "sanity": {"levels": ["all"]},
        "train": {"threads": 2, "batch_size": 8, **train},
        # 3 steps: each step of 8 images through VGG-16 at 224 px takes 1.7 s here, and 14
        # visualization jobs across both runs took 8 steps each (2 minutes of make test-all)
        "visualize": {"steps": 3, "threads": 2, "restarts": 2, "top_k": 4},
        # the optional methods left out: their jobs' cost at 224 px is VGG-16's start (about 22 s
        # each, 4 jobs and 6 figures); the toy DAGs and the own-network runs draw every method
        "methods": {"saliency": {"enabled": False}, "occlusion": {"enabled": False},
                    "inversion": {"enabled": False}},
        # the atlas at 224 px is a GPU's work (20 channels of VGG-16 a job): the toy DAG and the
        # GPU check's toy workflow run it
        "atlas": {"enabled": False},
    }
    (work / "small.yaml").write_text(yaml.safe_dump(override))
    peak, done = [0], threading.Event()

    def watch():  # the run's disk use, sampled
        while not done.is_set():
            try:
                peak[0] = max(peak[0], du(work / "results"))
            except (FileNotFoundError, OSError):
                pass
            time.sleep(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    start = time.monotonic()
    proc = snakemake(work, configs=[PAPER, work / "small.yaml"])
    done.set()
    thread.join()
    return work, work / "results" / "paper", weights, peak[0], time.monotonic() - start, proc


def test_every_figure_and_table_is_written(paper_run):
    _, run, *_ = paper_run
    for name in ("fig1", "fig2", "fig3", "learning_curves"):
        for ext in ("png", "pdf"):
            assert (run / "figures" / f"{name}.{ext}").stat().st_size > 1000, name
    for name in ("table1", "table2"):
        for ext in ("csv", "md", "tex"):
            assert (run / "tables" / f"{name}.{ext}").is_file()
    assert (run / "tables" / "claims.md").read_text().count("|") > 10
    manifest = (run / "data" / "main" / "manifest.csv").read_text()
    assert not any(w in manifest for w in fake.DISTRACTORS)


def test_every_checkpoint_loads_into_torchvision_vgg16(paper_run):
    import torchvision

    _, run, *_ = paper_run
    ckpts = sorted((run / "train").glob("*/seed0/epoch_*[0-9].pt"))
    assert len(ckpts) == 4
    for path in ckpts:
        model = torchvision.models.vgg16(num_classes=4)
        model.load_state_dict(torch.load(path, weights_only=True)["model"])


def test_pretrained_epoch_0_holds_the_file_s_conv_and_fc6_fc7_weights(paper_run):
    _, run, weights, *_ = paper_run
    ours = torch.load(run / "train" / "pretrained" / "seed0" / "epoch_000.pt", weights_only=True)["model"]
    theirs = torch.load(weights, weights_only=True)
    for k, v in theirs.items():
        if k.startswith(("features.", "classifier.0.", "classifier.3.")):
            assert torch.equal(ours[k], v), k
    assert ours["classifier.6.weight"].shape == (4, 4096)  # the head cannot be transferred


def test_fig3_draws_units_31_130_933_736_of_the_imagenet_head(paper_run):
    """Checked against the weights file's own network (torchvision's VGG-16), not ours."""
    import torchvision

    from featevo.data.inputs import MEAN, STD

    _, run, weights, *_ = paper_run
    d = np.load(run / "viz" / "reference" / "classes.npz")
    assert d["units"].tolist() == list(WNIDS.values())
    net = torchvision.models.vgg16()
    net.load_state_dict(torch.load(weights, weights_only=True))
    x = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = net.eval()(x)[:, d["units"]]
    # each image raises its own unit above what the other three images give it
    for k in range(4):
        assert logits[k, k] > max(logits[j, k] for j in range(4) if j != k), logits


def test_disk_at_its_peak_is_within_the_docs_budget(paper_run):
    work, run, _, peak, seconds, _ = paper_run
    docs = (ROOT / "docs" / "reproducing.md").read_text()
    assert f"checkpoint of the 4-class VGG-16 is {CHECKPOINT_MIB} MiB" in docs
    # 4 checkpoints, the imported ImageNet network, and at most one optimizer state per experiment
    # (1 GiB at this size) while its next epoch is written; the subset and figures are small
    budget = (4 + 1) * CHECKPOINT_MIB * 2**20 * 1.04 + 2 * 2**30 + 100 * 2**20
    assert peak <= budget, (peak / 2**30, budget / 2**30)
    print(f"\n[paper full size] {seconds:.0f} s, peak disk {peak / 2**30:.2f} GiB")

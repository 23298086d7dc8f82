"""Your own run: an experiment whose checkpoints come from a plain PyTorch training loop
(experiments.*.checkpoints) is visualized, measured and drawn like a trained one."""

import numpy as np
import pytest
import torch
import torchvision

from conftest import train_settings, write_subset
from featevo.stages import train as train_stage
from featevo.models.checkpoint import load_checkpoint
from snakemake_helpers import ROOT, tiny_with


def plain_loop(folder, epochs: int, lightning_at: int | None = None):
    """A user's own training: torchvision's ResNet-18, a few SGD steps an epoch, a state
    dict per epoch as torch.save writes it (a Lightning checkpoint at ``lightning_at``)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(epochs + 1):
        if epoch:
            for _ in range(2):
                x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 4, (8,))
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        state = model.state_dict()
        if epoch == lightning_at:  # LightningModule.net = model: keys net.*, under state_dict
            state = {"epoch": epoch, "state_dict": {f"net.{k}": v for k, v in state.items()}}
        torch.save(state, folder / f"epoch_{epoch}.pt")
    return model


@pytest.mark.slow  # a whole DAG (minutes on 2 cores): the full tier
def test_an_imported_run_gives_its_figures_and_tables(tmp_path):
    plain_loop(tmp_path / "runs" / "mine", epochs=2, lightning_at=2)
    tiny_with(tmp_path, (
        "run_name: own\n"
        "model: {arch: resnet18, width_divisor: 1, pool_size: 7}\n"
        # no reference, the toy judge, one sanity level, no pretrained or frozen experiment: 51
        # jobs instead of 113 (3 min 36 s of make test-all), the imported run's path the same
        "reference: {source: none}\nsanity: {levels: [all]}\n"
        "experiments:\n"
        "  scratch: {init: random, epochs: 1}\n  pretrained: null\n  frozen: null\n"
        "  mine: {checkpoints: 'runs/mine/epoch_{epoch}.pt', epochs: 2, figure: fig_mine, table: table_mine}\n"
        "methods: {saliency: {enabled: false}, occlusion: {enabled: false}, inversion: {enabled: false}}\n"
        "visualize: {units: ['layer3.1.conv2:7']}\n"))
    run = tmp_path / "results" / "own"
    for name in ("fig_mine.png", "top_mine.png", "evolution_mine.gif", "metrics_mine_seed0.png", "units_mine.png"):
        assert (run / "figures" / name).stat().st_size > 0, name
    assert "| 2 |" in (run / "tables" / "table_mine.md").read_text()
    assert "mine" in (run / "tables" / "claims.md").read_text()
    # nothing was trained for it: its checkpoints are the loop's, epoch 0 included
    ckpt = load_checkpoint(run / "train" / "mine" / "seed0" / "epoch_002.pt")
    assert ckpt["metrics"]["init"].startswith("imported from runs/mine/epoch_2.pt")
    assert not (run / "train" / "mine" / "seed1").exists()
    assert not list((run / "train" / "mine" / "seed0").glob("*.optim.pt"))


def test_a_run_without_an_epoch_0_file_gets_methods_and_atlas_from_its_first_epoch(tmp_path):
    """The schema lets a run of one's own start at epoch 1; the methods and the atlas, which
    counted epochs from 0, asked for its missing epoch 0 (a traceback in the dry run)."""
    from snakemake_helpers import job_counts

    (tmp_path / "runs").mkdir()
    for e in (1, 2, 3):  # no epoch_0.pt (a dry run reads no checkpoint)
        (tmp_path / "runs" / f"epoch_{e}.pt").write_bytes(b"")
    dry = tiny_with(tmp_path, (
        "run_name: own\nreference: {source: none}\n"
        "experiments: {scratch: null, pretrained: null, frozen: null,\n"
        "  mine: {checkpoints: 'runs/epoch_{epoch}.pt', epochs: 3}}\n"
        "methods: {every: 2}\natlas: {enabled: true, every: 2, experiment: mine}\n"), args=["-n"])
    out = dry.stdout + dry.stderr
    counts = job_counts(dry.stdout)
    assert counts["import_checkpoint"] == 3 and counts["explain"] == 2 and counts["atlas_render"] == 2, counts
    assert "explain/mine/epoch_000" not in out and "atlas/mine/epoch_000" not in out
    for e in ("001", "003"):  # every second of its own epochs from its first, and the last
        assert f"explain/mine/epoch_{e}.npz" in out and f"atlas/mine/epoch_{e}" in out, e


def test_a_checkpoint_that_does_not_fit_is_named_with_its_first_mismatch(tmp_path):
    data = write_subset(tmp_path / "data", n_train=6, n_val=6)
    torch.save(torchvision.models.resnet34(num_classes=3).state_dict(), tmp_path / "r34.pt")
    args = ["import", "--source", str(tmp_path / "r34.pt"), "--epoch", "1", "--data", str(data), "--out",
            str(tmp_path / "e.pt"), "--metrics", str(tmp_path / "e.json"),
            "--seed", "0", "--settings", train_settings(model={"arch": "resnet18", "width_divisor": 1,
                                                                "pool_size": 7})]
    with pytest.raises(SystemExit, match=r"r34.pt does not fit model.arch: it has layer1.2.conv1.weight "
                                         r"\(64, 64, 3, 3\)"):
        train_stage.main(args)
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), tmp_path / "r34.pt")  # 5 classes, not 3
    with pytest.raises(SystemExit, match=r"its fc.weight is \(5, 512\), the config's network has \(3, 512\)"):
        train_stage.main(args)
    torch.save({"optimizer": {}}, tmp_path / "r34.pt")
    with pytest.raises(SystemExit, match="holds no state dict"):
        train_stage.main(args)


def import_args(tmp_path, source, arch="resnet18"):
    data = tmp_path / "data"
    if not data.exists():
        write_subset(data, n_train=6, n_val=6)
    return ["import", "--source", str(source), "--epoch", "1", "--data", str(data), "--out", str(tmp_path / "e.pt"),
            "--metrics", str(tmp_path / "e.json"), "--seed", "0", "--settings",
            train_settings(model={"arch": arch, "width_divisor": 1, "pool_size": 7})]


def test_a_lightning_checkpoint_with_extra_entries_is_imported_and_a_real_mismatch_still_named(tmp_path, caplog):
    """A LightningModule holding the network as self.model, a class-weighted loss
    (loss_fn.weight) and an EMA copy (ema.*): the network is the tensors under model.;
    the rest is named in the log and ignored.  Under the prefix, a tensor more or less
    is another network, named."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3)
    state = {"loss_fn.weight": torch.tensor([1.0, 2.0, 0.5])}
    state.update({f"model.{k}": v for k, v in net.state_dict().items()})
    state.update({f"ema.{k}": torch.zeros_like(v) for k, v in net.state_dict().items()})
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "lit.ckpt")
    with caplog.at_level("INFO", logger="featevo.models.checkpoint"):
        assert train_stage.main(import_args(tmp_path, tmp_path / "lit.ckpt")) == 0
    imported = load_checkpoint(tmp_path / "e.pt")["model"]
    assert all(torch.equal(imported[k], v) for k, v in net.state_dict().items())  # model.*, not ema.*
    note = caplog.text
    assert "the network's 122 tensors are those of its modules under 'model.'" in note
    assert "loss_fn.weight" in note and "ema.* (122)" in note
    # a LightningModule that is the network itself: its loss's weight beside the layers
    caplog.clear()
    torch.save({"state_dict": {**net.state_dict(), "loss_fn.weight": torch.ones(3)}}, tmp_path / "flat.ckpt")
    with caplog.at_level("INFO", logger="featevo.models.checkpoint"):
        assert train_stage.main(import_args(tmp_path, tmp_path / "flat.ckpt")) == 0
    assert "under ''; ignored 1 entries of other modules, not the network's: loss_fn.weight" in caplog.text
    # nested wrappers (model.net.*) are found too
    torch.save({"state_dict": {f"model.net.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "nested.ckpt")
    assert train_stage.main(import_args(tmp_path, tmp_path / "nested.ckpt")) == 0
    # under the prefix, a tensor more than the config's network: refused, named with the prefix
    r34 = {f"model.{k}": v for k, v in torchvision.models.resnet34(num_classes=3).state_dict().items()}
    torch.save({"state_dict": {"loss_fn.weight": torch.ones(3), **r34}}, tmp_path / "r34.ckpt")
    with pytest.raises(SystemExit, match=r"r34.ckpt does not fit model.arch: it has model.layer1.2.conv1.weight "
                                         r"\(64, 64, 3, 3\)"):
        train_stage.main(import_args(tmp_path, tmp_path / "r34.ckpt"))
    # and a tensor less
    short = {k: v for k, v in state.items() if not k.startswith("ema.") and k != "model.layer4.1.bn2.running_var"}
    torch.save({"state_dict": short}, tmp_path / "short.ckpt")
    with pytest.raises(SystemExit, match=r"short.ckpt does not fit model.arch: it has no "
                                         r"model.layer4.1.bn2.running_var \(512,\)"):
        train_stage.main(import_args(tmp_path, tmp_path / "short.ckpt"))


def tiny_vgg_run(folder, epochs: int, seed: int = 0):
    """A user's run of the toy network (tests/configs/tiny.yaml's model.*, three classes):
    a state dict per epoch; the last a Lightning checkpoint with a weighted loss beside it."""
    from featevo.models.networks import ModelSpec, build_model

    folder.mkdir(parents=True, exist_ok=True)
    spec = ModelSpec(arch="vgg16", num_classes=3, width_divisor=16, pool_size=1)
    for epoch in range(epochs + 1):
        state = build_model(spec, seed=seed * 100 + epoch).state_dict()
        if epoch == epochs:
            state = {"state_dict": {"loss_fn.weight": torch.ones(3), **{f"model.{k}": v for k, v in state.items()}}}
        torch.save(state, folder / f"epoch_{epoch}.pt")


def test_a_run_folder_copied_elsewhere_reruns_nothing_and_a_changed_file_reruns_its_epoch(tmp_path):
    """Imported through snakemake (a Lightning checkpoint with a weighted loss among them),
    beside one trained epoch and one visualization, whose job logs carry dates and ETAs;
    then the run folder copied elsewhere, then one of its files changed."""
    import re
    import shutil

    from snakemake_helpers import job_counts
    from test_own_classes import shapes_folder

    shapes_folder(tmp_path / "shapes", per_class=20)
    tiny_vgg_run(tmp_path / "runs" / "mine", epochs=2)
    own = ("run_name: own\n"
           f"data: {{source: folder, path: {tmp_path / 'shapes'}, images_per_class: 12, val_per_class: 4,\n"
           "  classes: [{name: circle}, {name: square}, {name: triangles}]}\n"
           "reference: {source: none}\njudge: {images_per_class: 8}\n"
           "train: {batch_size: 8}\nvisualize: {steps: 100}\n"  # 3 batches an epoch; progress at step 50
           "experiments: {scratch: {init: random, epochs: 1}, pretrained: null, frozen: null,\n"
           "  mine: {checkpoints: '%s/epoch_{epoch}.pt', epochs: 2}}\n")
    targets = ["--", *(f"results/own/train/mine/seed0/epoch_00{e}.pt" for e in range(3)),
               "results/own/train/scratch/seed0/epoch_001.pt", "results/own/viz/mine/seed0/epoch_002/composite.png"]
    tiny_with(tmp_path, own % "runs/mine", args=targets)
    run = tmp_path / "results" / "own" / "train" / "mine" / "seed0"
    logs = tmp_path / "results" / "own" / "logs"
    log = (logs / "train" / "mine" / "seed0" / "epoch_002.log").read_text()
    assert "ignored 1 entries of other modules, not the network's: loss_fn.weight" in log
    date = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "  # the paper's CPU run lasts days
    assert re.search(date + r"featevo.models.train INFO: imported epoch 2", log, re.M), log
    log = (logs / "train" / "scratch" / "seed0" / "epoch_001.log").read_text()
    assert re.search(date + r"featevo.models.train INFO: \[train scratch seed 0\] epoch 1 batch 1/3 .* img/s ETA \d+ s$",
                     log, re.M), log
    log = (logs / "viz" / "mine" / "seed0" / "epoch_002.log").read_text()
    assert re.search(date + r"featevo.optvis.render INFO: step 50/100 .* steps/s ETA \d+ s$", log, re.M), log
    assert re.search(r"step 100/100 .* steps/s$", log, re.M), log  # none left: no ETA
    made = {e: (run / f"epoch_00{e}.pt").stat().st_mtime_ns for e in range(3)}

    # the same files elsewhere (cp -a), the old folder gone: nothing to do
    shutil.copytree(tmp_path / "runs" / "mine", tmp_path / "elsewhere" / "copy", copy_function=shutil.copy2)
    shutil.rmtree(tmp_path / "runs")
    dry = tiny_with(tmp_path, own % "elsewhere/copy", args=["-n", *targets])
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    # a copy without its times (plain cp) holds the same: nothing to do either
    for f in (tmp_path / "elsewhere" / "copy").iterdir():
        f.touch()
    dry = tiny_with(tmp_path, own % "elsewhere/copy", args=["-n", *targets])
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]

    # one file's content changed: that epoch, and only it, is imported again
    tiny_vgg_run(tmp_path / "other", epochs=2, seed=7)
    shutil.copy(tmp_path / "other" / "epoch_1.pt", tmp_path / "elsewhere" / "copy" / "epoch_1.pt")
    dry = tiny_with(tmp_path, own % "elsewhere/copy", args=["-n", *targets])
    # (and epoch 2's visualization, which reads epoch 1 for each layer's weight change)
    assert job_counts(dry.stdout) == {"import_checkpoint": 1, "visualize": 1}, dry.stdout[-3000:]
    assert "results/own/train/mine/seed0/epoch_001.pt" in dry.stdout
    tiny_with(tmp_path, own % "elsewhere/copy", args=targets)
    new = load_checkpoint(run / "epoch_001.pt")["model"]
    theirs = torch.load(tmp_path / "other" / "epoch_1.pt", weights_only=True)
    assert all(torch.equal(new[k], v) for k, v in theirs.items())
    assert {e: (run / f"epoch_00{e}.pt").stat().st_mtime_ns for e in (0, 2)} == {e: made[e] for e in (0, 2)}


# toy sizes of the test's own (no key about any network: tests/configs/tiny.yaml's inner
# units are the VGG's), under which the held-out config below runs in minutes
TOY_SIZES = """
seeds: [0]
data: {images_per_class: 12, val_per_class: 4, image_size: 32}
reference: {images_per_class: 10, val_per_class: 2, epochs: 1}
experiments: {scratch: {epochs: 1}, pretrained: {epochs: 1}, frozen: null}
sanity: {levels: [all]}
visualize: {steps: 6, restarts: 2, top_k: 3}
methods: {every: 2, occlusion: {window: 8, stride: 8}, inversion: {steps: 2}}
judge: {epochs: 1}
represent: {pool: 2}
"""


@pytest.mark.slow  # the whole DAG of a ResNet-18 (minutes): the full tier
def test_a_held_out_user_config_runs_end_to_end_on_the_first_try(tmp_path):
    """The README's 'your network, your classes, your run', as a user writes it, layered on
    config.yaml (and the test's toy sizes): model.arch, a folder of classes, ImageNet
    weights of theirs in torchvision's format under a name of their own with the digest
    pinned, and a run of their own checkpoints. Nothing about VGG's sizes, the inversion
    layers or the judge's images: those follow the network and the data."""
    import shutil

    import pandas as pd

    from featevo.models.weights import sha256
    from snakemake_helpers import snakemake
    from test_own_classes import shapes_folder

    shapes_folder(tmp_path / "shapes", per_class=20)  # 12 for the experiments, 8 left for the judge
    torch.manual_seed(0)
    weights = tmp_path / "my imagenet resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    plain_loop(tmp_path / "runs" / "mine", epochs=2)  # their run: ResNet-18 state dicts
    for f in (tmp_path / "runs" / "mine").iterdir():  # of their three classes
        state = torch.load(f, weights_only=True)
        state["fc.weight"], state["fc.bias"] = state["fc.weight"][:3], state["fc.bias"][:3]
        torch.save(state, f)
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "sizes.yaml").write_text(TOY_SIZES)
    (tmp_path / "mine.yaml").write_text(
        "run_name: mine\n"
        "model: {arch: resnet18}\n"
        "data: {source: folder, path: shapes, classes: [{name: circle}, {name: square}, {name: triangles}]}\n"
        f"reference: {{source: torchvision, weights: '{weights}', sha256: {sha256(weights)}}}\n"
        "experiments:\n  mine: {checkpoints: 'runs/mine/epoch_{epoch}.pt', epochs: 2}\n")
    snakemake(tmp_path, configs=[tmp_path / "sizes.yaml", tmp_path / "mine.yaml"])
    run = tmp_path / "results" / "mine"
    claims = pd.read_csv(run / "tables" / "claims.csv")
    assert {"mine", "scratch", "pretrained"} <= set(claims["experiment"])
    # the judge took the 8 images each class's folder had left, and held out a quarter
    assert len(np.load(run / "data" / "judge" / "train_labels.npy")) == 3 * 6
    assert len(np.load(run / "data" / "judge" / "val_labels.npy")) == 3 * 2
    assert pd.read_csv(run / "metrics" / "judge.csv")["val_images"].iloc[-1] == 3 * 4  # the run's own
    explained = np.load(run / "explain" / "mine" / "epoch_002.npz")
    # ResNet's own stages: at 32 px its layer4 is 1 x 1, no stage, and layer3 ends the last
    assert explained["inversion_layers"].tolist() == ["layer1", "layer2", "layer3"]
    for exp in ("mine", "scratch", "pretrained"):
        assert (run / "figures" / f"metrics_{exp}_seed0.png").is_file()
    assert "no Fig. 3" in (run / "tables" / "claims.md").read_text()  # their classes have no ImageNet unit


def _zero_middle(path, n=4096):
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + n] = bytes(n)
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_of_your_run_is_refused_at_parse_time_and_by_the_import(tmp_path):
    """4 KiB zeroed in a checkpoint's middle: torch.load reads it without a word (zeroed
    weights); the zip's own checksums name it, before any job and in the job."""
    from featevo.preflight.checks import check_config
    from featevo.config.settings import load_config

    model = plain_loop(tmp_path / "runs", epochs=2)
    cfg = load_config(ROOT / "config.yaml")
    cfg["experiments"] = {"mine": {"checkpoints": str(tmp_path / "runs" / "epoch_{epoch}.pt"), "epochs": 2}}
    cfg["model"] = {**cfg["model"], "arch": "resnet18", "width_divisor": 1, "pool_size": 7}
    assert not [e for e in check_config(cfg) if "experiments.mine" in e]
    damaged = tmp_path / "runs" / "epoch_2.pt"
    _zero_middle(damaged)
    assert set(torch.load(damaged, weights_only=True)) == set(model.state_dict())  # torch does not notice
    errors = [e for e in check_config(cfg) if "experiments.mine" in e]
    assert len(errors) == 1 and f"{damaged} is damaged: its part" in errors[0] and "copy it again" in errors[0]
    data = write_subset(tmp_path / "data", 6, 6)
    with pytest.raises(SystemExit, match="is damaged: its part"):
        train_stage.main(["import", "--data", str(data), "--out", str(tmp_path / "e.pt"), "--metrics",
                    str(tmp_path / "e.json"), "--epoch", "2", "--seed", "0", "--source", str(damaged),
                    "--settings", train_settings(model={"arch": "resnet18"})])
    assert not (tmp_path / "e.pt").exists()


def test_a_damaged_checkpoint_of_the_workflow_is_refused_when_loaded(tmp_path):
    from featevo.models.checkpoint import save_checkpoint
    from featevo.models.networks import ModelSpec, build_model

    spec = ModelSpec(num_classes=3, width_divisor=16, pool_size=1)
    save_checkpoint(tmp_path / "e.pt", build_model(spec, seed=0), spec, epoch=1, classes=["a", "b", "c"])
    assert load_checkpoint(tmp_path / "e.pt")["epoch"] == 1
    _zero_middle(tmp_path / "e.pt")
    with pytest.raises(ValueError, match="e.pt is damaged: its part .* no longer matches the checksum"):
        load_checkpoint(tmp_path / "e.pt")

import json
import os

import numpy as np
import pytest
import torch

from conftest import train_settings, viz_settings, write_subset
from featevo.data import inputs
from featevo.models import train
from featevo.stages import train as train_stage
from featevo.models.checkpoint import atomic_save, load_checkpoint, load_model, save_checkpoint
from featevo.models.networks import ModelSpec, build_model, transfer

SPEC = ModelSpec(num_classes=3, width_divisor=16, pool_size=1)


@pytest.fixture
def data(tmp_path):
    return write_subset(tmp_path / "data", n_train=24, n_val=9)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = build_model(SPEC, seed=1)
    path = tmp_path / "c.pt"
    save_checkpoint(path, model, SPEC, epoch=3, classes=["n1", "n2", "n3"], metrics={"val_acc": 0.5})
    raw = torch.load(path, weights_only=True)  # no pickled classes
    assert raw["epoch"] == 3 and raw["classes"] == ["n1", "n2", "n3"] and raw["metrics"] == {"val_acc": 0.5}
    loaded, _ = load_model(path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded(x))


def test_checkpoint_loads_into_torchvision_vgg16(tmp_path):
    import torchvision

    spec = ModelSpec(num_classes=4)
    path = tmp_path / "full.pt"
    save_checkpoint(path, build_model(spec, seed=0), spec, epoch=0, classes=[])
    tv = torchvision.models.vgg16(num_classes=4)
    tv.load_state_dict(load_checkpoint(path)["model"])  # same names and shapes as torchvision


def test_failed_save_leaves_nothing_behind(tmp_path):
    path = tmp_path / "c.pt"
    atomic_save({"a": torch.zeros(1)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        atomic_save({"f": lambda: 0}, path)  # cannot be pickled
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_checkpoints_get_the_mode_of_any_output_and_leftovers_of_a_killed_write_go(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "epoch_001.pt"
        leftover = tmp_path / ".epoch_001.pt.k1ll3d.tmp"  # what a write killed mid-way leaves
        leftover.write_bytes(b"x" * 1000)
        other = tmp_path / ".epoch_002.pt.abc.tmp"  # another file's: not ours to remove
        other.write_bytes(b"y")
        atomic_save({"a": torch.zeros(1)}, path)
        assert oct(path.stat().st_mode & 0o777) == "0o644"
        assert not leftover.exists() and other.exists()
    finally:
        os.umask(old)


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / "epoch_003.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="epoch_003.pt is damaged, cut short, or not a file torch.save wrote"):
        load_checkpoint(bad)


def test_transfer_copies_all_but_the_head():
    ref = build_model(ModelSpec(num_classes=10, width_divisor=16, pool_size=1), seed=1)
    new = build_model(SPEC, seed=2)
    head_before = new.classifier[6].weight.clone()
    missing = transfer(new, ref.state_dict())
    assert missing == ["classifier.6.weight", "classifier.6.bias"]
    assert torch.equal(new.features[0].weight, ref.features[0].weight)
    assert torch.equal(new.classifier[3].weight, ref.classifier[3].weight)
    assert torch.equal(new.classifier[6].weight, head_before)


def run_init(data, out, *extra, train_keys=None):
    train_stage.main(["init", "--data", str(data), "--out", str(out), "--metrics", str(out.with_suffix(".json")),
                "--seed", "0",
                "--settings", train_settings(model={"width_divisor": 16, "pool_size": 1}, train=train_keys or {}),
                *extra])


def optim(ckpt):
    return ckpt.with_suffix(".optim.pt")


def run_epoch(data, prev, out, *extra, state=True, train_keys=None, freeze="none", labels="given"):
    """As the rule runs it: the previous epoch's optimizer state in (from epoch 1 on), this one's out."""
    given = ["--previous-optim", str(optim(prev))] if state and "000" not in prev.name else []
    train_stage.main(["epoch", "--experiment", "x", "--data", str(data), "--previous", str(prev), "--out", str(out),
                "--optim-out", str(optim(out)), "--metrics", str(out.with_suffix(".json")), "--seed", "0",
                "--settings", train_settings(train={"batch_size": 8, **(train_keys or {})},
                                             experiments={"x": {"freeze": freeze, "labels": labels}}),
                *given, *extra])


def test_epochs_chain_deterministically_and_consume_optimizer_state(tmp_path, data):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        run.mkdir()
        run_init(data, run / "epoch_000.pt")
        run_epoch(data, run / "epoch_000.pt", run / "epoch_001.pt")
        run_epoch(data, run / "epoch_001.pt", run / "epoch_002.pt")
    wa, wb = load_checkpoint(a / "epoch_002.pt")["model"], load_checkpoint(b / "epoch_002.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    w0 = load_checkpoint(a / "epoch_000.pt")["model"]
    assert not torch.equal(wa["features.0.weight"], w0["features.0.weight"])  # it trained
    # the job deletes nothing: whether a state is kept is Snakemake's (temp()) to decide
    assert sorted(p.name for p in a.glob("*.optim.pt")) == ["epoch_001.optim.pt", "epoch_002.optim.pt"]
    m = json.loads((a / "epoch_002.json").read_text())
    assert m["epoch"] == 2 and m["optimizer_state"] == "continued" and 0 <= m["val_acc"] <= 1
    # rerun from epoch 1 with its state: the same weights
    run_epoch(data, a / "epoch_001.pt", tmp_path / "again.pt")
    again = load_checkpoint(tmp_path / "again.pt")["model"]
    assert all(torch.equal(wa[k], again[k]) for k in wa)


def test_an_epoch_without_its_predecessor_s_state_resets_it_and_says_so(tmp_path, data, caplog):
    run_init(data, tmp_path / "epoch_000.pt")
    run_epoch(data, tmp_path / "epoch_000.pt", tmp_path / "epoch_001.pt")
    run_epoch(data, tmp_path / "epoch_001.pt", tmp_path / "again.pt", state=False)
    assert [r.levelname for r in caplog.records if "fresh Adadelta state" in r.getMessage()] == ["WARNING"]
    assert json.loads((tmp_path / "again.json").read_text())["optimizer_state"] == "reset"


def test_a_missing_or_damaged_state_is_named(tmp_path, data):
    run_init(data, tmp_path / "epoch_000.pt")
    run_epoch(data, tmp_path / "epoch_000.pt", tmp_path / "epoch_001.pt")
    optim(tmp_path / "epoch_001.pt").write_bytes(b"cut")
    with pytest.raises(SystemExit, match="epoch_001.optim.pt .*cannot be read"):
        run_epoch(data, tmp_path / "epoch_001.pt", tmp_path / "epoch_002.pt")
    optim(tmp_path / "epoch_001.pt").unlink()
    with pytest.raises(SystemExit, match="epoch_001.optim.pt .*is missing"):
        run_epoch(data, tmp_path / "epoch_001.pt", tmp_path / "epoch_002.pt")


def test_init_from_reference_transfers(tmp_path, data):
    ref_spec = ModelSpec(num_classes=7, width_divisor=16, pool_size=1)
    save_checkpoint(tmp_path / "ref.pt", build_model(ref_spec, seed=5), ref_spec, epoch=1, classes=[])
    run_init(data, tmp_path / "epoch_000.pt", "--from-checkpoint", str(tmp_path / "ref.pt"))
    ours, ref = load_checkpoint(tmp_path / "epoch_000.pt")["model"], load_checkpoint(tmp_path / "ref.pt")["model"]
    assert torch.equal(ours["features.0.weight"], ref["features.0.weight"])
    assert ours["classifier.6.weight"].shape == (3, 256)


def test_hflip_augmentation_mirrors_a_seeded_half_and_none_changes_nothing():
    x = torch.arange(2 * 64 * 3 * 4, dtype=torch.float32).view(64, 3, 2, 4)
    assert torch.equal(train.augment_batch(x, "none", torch.Generator().manual_seed(0)), x)
    a = train.augment_batch(x, "hflip", torch.Generator().manual_seed(0))
    b = train.augment_batch(x, "hflip", torch.Generator().manual_seed(0))
    assert torch.equal(a, b)  # seeded: a rerun of the epoch sees the same flips
    flipped = [torch.equal(a[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(a[i], x[i]) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept)) and 16 < sum(flipped) < 48
    with pytest.raises(ValueError, match="train.augment"):
        train.augment_batch(x, "rotate", torch.Generator())


def test_epoch_with_augmentation_trains_deterministically(tmp_path, data):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        run_init(data, tmp_path / run / "epoch_000.pt")
        run_epoch(data, tmp_path / run / "epoch_000.pt", tmp_path / run / "epoch_001.pt",
                  train_keys={"augment": "hflip"})
    wa, wb = (load_checkpoint(tmp_path / r / "epoch_001.pt")["model"] for r in ("a", "b"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_frozen_features_keep_their_weights_and_the_classifier_trains(tmp_path, data):
    run_init(data, tmp_path / "epoch_000.pt")
    run_epoch(data, tmp_path / "epoch_000.pt", tmp_path / "epoch_001.pt", freeze="features")
    w0, w1 = (load_checkpoint(tmp_path / f"epoch_00{e}.pt")["model"] for e in (0, 1))
    for name in w0:
        same = torch.equal(w0[name], w1[name])
        assert same if name.startswith("features.") else not same, name
    state = torch.load(tmp_path / "epoch_001.optim.pt", weights_only=True)
    classifier = [v for n, v in w0.items() if n.startswith("classifier.")]
    assert [s["square_avg"].shape for s in state["state"].values()] == [v.shape for v in classifier]
    assert json.loads((tmp_path / "epoch_001.json").read_text())["frozen"] == "features"
    # the next epoch continues with the classifier-only state
    run_epoch(data, tmp_path / "epoch_001.pt", tmp_path / "epoch_002.pt", freeze="features")
    assert json.loads((tmp_path / "epoch_002.json").read_text())["optimizer_state"] == "continued"


def test_a_diverged_loss_stops_the_epoch_naming_it(data):
    model = build_model(SPEC, seed=0)
    with torch.no_grad():
        model.classifier[6].weight[0, 0] = float("nan")
    opt = train.make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
    with pytest.raises(FloatingPointError, match="scratch epoch 3: the loss became nan"):
        train.train_one_epoch(model, opt, inputs.Subset(data, "train"), epoch=3, seed=0, batch_size=8,
                              device=torch.device("cpu"), precision="fp32", augment="none", log=lambda m: None, tag="scratch")


def test_epoch_statistics_match_a_per_batch_reading(data):
    # the sums stay on the device; they must equal reading every batch on the host
    model, ref = build_model(SPEC, seed=0), build_model(SPEC, seed=0)
    stats = train.train_one_epoch(model, train.make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta"), inputs.Subset(data, "train"),
                                  epoch=1, seed=0, batch_size=8, device=torch.device("cpu"), precision="fp32", augment="none",
                                  log=lambda m: None)
    subset = inputs.Subset(data, "train")
    order = np.random.default_rng([0, 1]).permutation(len(subset))
    opt = train.make_optimizer(ref, 1.0, 0.95, 1e-8, "adadelta")
    ref.train()
    torch.manual_seed(0 * 100_003 + 1)
    losses, hits = [], 0
    for b in range(0, len(order), 8):
        idx = sorted(order[b:b + 8])
        x, y = inputs.to_input(subset.images[idx], torch.device("cpu")), torch.from_numpy(subset.labels[idx])
        out = ref(x)
        loss = torch.nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item() * len(idx))
        hits += (out.argmax(1) == y).sum().item()
    assert stats["train_loss"] == pytest.approx(sum(losses) / len(order), rel=1e-12)
    assert stats["train_acc"] == hits / len(order)


def test_the_bf16_autocast_branch_trains_and_saves_float32(tmp_path, data):
    """What `precision: auto` does on CUDA, run on the CPU at toy size so that a GPU is not
    the first place it runs: autocast bf16, channels_last, the device-resident data path."""
    from featevo.optvis.render import activation_maximization

    run_init(data, tmp_path / "epoch_000.pt", train_keys={"precision": "bf16"})
    run_epoch(data, tmp_path / "epoch_000.pt", tmp_path / "epoch_001.pt", train_keys={"precision": "bf16"})
    ckpt = load_checkpoint(tmp_path / "epoch_001.pt")
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values())
    m = json.loads((tmp_path / "epoch_001.json").read_text())
    assert np.isfinite([m["train_loss"], m["val_loss"]]).all()
    model, _ = load_model(tmp_path / "epoch_001.pt")
    result = activation_maximization(model, [0, 1, 2], **viz_settings(steps=3, precision="bf16"))
    assert torch.isfinite(result["images"]).all() and result["logits"].dtype == torch.float32


def test_the_reference_classifier_init_keeps_the_signal_s_scale():
    """torchvision's N(0, 0.01) shrinks a narrow classifier's output about 80-fold;
    kaiming_classifier keeps it (and is seeded)."""
    from featevo.models.networks import kaiming_classifier

    spec = ModelSpec(num_classes=10, width_divisor=8, pool_size=2, dropout=0.0)
    tv, ours, again = build_model(spec, seed=0).eval(), build_model(spec, seed=0).eval(), build_model(spec, seed=0)
    kaiming_classifier(ours, seed=3)
    kaiming_classifier(again, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), again.state_dict().values()))
    assert torch.equal(ours.features[0].weight, tv.features[0].weight)  # the convolutions are torchvision's
    x = torch.randn(16, 3, 64, 64)
    with torch.no_grad():
        assert ours(x).std() > 20 * tv(x).std()


def test_a_scheduler_steps_after_every_batch(data):
    model = build_model(SPEC, seed=0)
    opt = train.make_optimizer(model, 1e-3, 0.95, 1e-8, "adam")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=100, pct_start=0.05)
    subset = inputs.Subset(data, "train")
    train.train_one_epoch(model, opt, subset, epoch=1, seed=0, batch_size=8, device=torch.device("cpu"),
                          precision="fp32", augment="hflip", log=lambda m: None, scheduler=sched)
    assert sched.last_epoch == -(-len(subset) // 8)


def test_the_reference_command_trains_in_its_recipe(tmp_path, data):
    out = tmp_path / "model.pt"
    train_stage.main(["reference", "--data", str(data), "--out", str(out), "--metrics", str(tmp_path / "model.json"),
                "--settings", train_settings(model={"width_divisor": 16, "pool_size": 1},
                                             reference={"epochs": 2, "batch_size": 8}, seeds=[0])])
    ckpt = load_checkpoint(out)
    assert [h["epoch"] for h in ckpt["history"]] == [1, 2]
    assert json.loads((tmp_path / "model.json").read_text())["epoch"] == 2
    # the judge: its own architecture, epochs and (where it sets them) narrowing, in the same recipe
    train_stage.main(["reference", "--net", "judge", "--data", str(data), "--out", str(tmp_path / "judge.pt"),
                "--metrics", str(tmp_path / "judge.json"),
                "--settings", train_settings(model={"arch": "resnet18", "width_divisor": 1, "pool_size": 7},
                                             reference={"batch_size": 8},  # the judge trains judge.epochs
                                             judge={"arch": "vgg11", "epochs": 1, "width_divisor": 32,
                                                    "pool_size": 1, "seed": 1})])
    judge = load_checkpoint(tmp_path / "judge.pt")
    assert (judge["spec"]["arch"], judge["spec"]["width_divisor"], judge["spec"]["pool_size"]) == ("vgg11", 32, 1)
    assert [h["epoch"] for h in judge["history"]] == [1]


def test_glorot_init_is_keras_s_glorot_uniform_with_zero_biases():
    """model.init: glorot, the paper's Keras default: U(+-sqrt(6 / (fan_in + fan_out)))
    for every convolution and linear layer (fans times the kernel area), zero biases."""
    import math

    import torch

    spec = ModelSpec(num_classes=4, width_divisor=16, pool_size=1)
    model = build_model(spec, seed=3, init="glorot")
    assert torch.equal(model.state_dict()["features.0.weight"],
                       build_model(spec, seed=3, init="glorot").state_dict()["features.0.weight"])  # seeded
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            w = m.weight
            area = w[0, 0].numel() if w.dim() == 4 else 1
            limit = math.sqrt(6 / ((w.shape[1] + w.shape[0]) * area))
            assert w.abs().max() <= limit and w.abs().max() > 0.9 * limit, m
            assert abs(w.std().item() - limit / math.sqrt(3)) < 0.25 * limit  # uniform, not normal
            assert torch.count_nonzero(m.bias) == 0
    torchvision_init = build_model(spec, seed=3)
    assert not torch.equal(torchvision_init.classifier[6].weight, model.classifier[6].weight)
    with pytest.raises(ValueError, match="model.init"):
        build_model(spec, init="he")


def test_a_progress_line_s_eta_is_what_is_left_at_the_measured_rate():
    from featevo.jobs.progress import eta

    assert eta(1, 3, 10.0) == "ETA 20 s"
    assert eta(10, 100, 30.0) == "ETA 4 min 30 s"
    assert eta(1, 1000, 9.0) == "ETA 2 h 29 min"  # 999 batches of 9 s: 8991 s
    assert eta(2, 100, 7200.0) == "ETA 4 d 2 h"  # 98 batches of an hour: the paper's CPU run lasts days
    assert eta(3, 3, 5.0) == "" and eta(0, 3, 0.0) == ""  # nothing left, or nothing measured yet


def test_shuffled_labels_train_on_a_fixed_permutation_and_say_so(tmp_path, data):
    """experiments.*.labels: shuffled (C1's negative control): another network than with
    the given labels from the same start, the same one on a rerun, and the metrics say which."""
    import json

    run_init(data, tmp_path / "epoch_000.pt")
    for name, labels in (("g.pt", "given"), ("s.pt", "shuffled"), ("s2.pt", "shuffled")):
        run_epoch(data, tmp_path / "epoch_000.pt", tmp_path / name, labels=labels)
    g, s1, s2 = (load_checkpoint(tmp_path / n)["model"] for n in ("g.pt", "s.pt", "s2.pt"))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not torch.equal(g["features.0.weight"], s1["features.0.weight"])
    assert json.loads((tmp_path / "s.json").read_text())["labels"] == "shuffled"


def test_torch_s_refusals_are_one_sentence_a_person_can_act_on(tmp_path):
    """A pickled model, a file cut short, bytes that are no torch file: named with what to
    do, without torch's colour codes and paragraphs."""
    from featevo.jobs.files import torch_refusal

    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")  # a whole module pickled, not its state dict
    torch.save({"w": torch.zeros(1000)}, tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:2000])
    (tmp_path / "text.pt").write_bytes(b"not a checkpoint")
    said = {}
    for name in ("model.pt", "cut.pt", "text.pt"):
        with pytest.raises(Exception) as exc:
            torch.load(tmp_path / name, weights_only=True)
        said[name] = torch_refusal(tmp_path / name, exc.value)
        assert "\x1b[" not in said[name] and "\n" not in said[name] and len(said[name]) < 300
    assert "torch.save(model.state_dict(), path)" in said["model.pt"] and "Python objects" in said["model.pt"]
    assert "damaged, cut short" in said["cut.pt"] and "damaged, cut short" in said["text.pt"]

"""torchvision's ImageNet VGG-16 weights: a fake file with the real shapes and names."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from snakemake_helpers import snakemake

from featevo.models.checkpoint import load_model
from featevo.models.networks import build_model
from conftest import save_as_torchvision
from featevo.models.weights import IMAGENET_SPEC, PUBLISHED_SHA256, WeightsError, import_weights, sha256

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory):
    """A VGG-16 state dict (138 M parameters, ~528 MiB) named as torchvision names it."""
    folder = tmp_path_factory.mktemp("weights")
    model = build_model(IMAGENET_SPEC, seed=0)
    path, _ = save_as_torchvision(model.state_dict(), folder)
    return path, model


def test_fake_weights_load_as_a_1000_class_checkpoint(fake_weights, tmp_path):
    path, model = fake_weights
    digest = sha256(path)
    info = import_weights(str(path), tmp_path / "ref.pt", digest)
    assert info["sha256"] == digest
    loaded, ckpt = load_model(tmp_path / "ref.pt")
    assert ckpt["spec"]["num_classes"] == 1000
    x = torch.rand(1, 3, 224, 224)
    assert torch.equal(loaded(x), model.eval()(x))


def test_tampered_file_is_refused(fake_weights, tmp_path):
    path, _ = fake_weights
    bad = tmp_path / path.name  # same published name, one byte changed
    shutil.copy(path, bad)
    with open(bad, "r+b") as fh:
        fh.seek(-100, 2)
        byte = fh.read(1)
        fh.seek(-100, 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match="corrupt or not the published file"):
        import_weights(str(bad), tmp_path / "ref.pt")
    assert not (tmp_path / "ref.pt").exists()


def test_file_without_hash_in_name_or_missing_is_refused(fake_weights, tmp_path):
    """VGG-16's whole published digest is known: any name is checked against it. A
    network whose digest is not known and is not pinned needs the name's digits."""
    path, _ = fake_weights
    renamed = tmp_path / "vgg16.pth"
    renamed.symlink_to(path)
    with pytest.raises(WeightsError, match="is corrupt or not the published file"):
        import_weights(str(renamed), tmp_path / "ref.pt")
    resnet = tmp_path / "resnet18.pth"
    resnet.write_bytes(b"never hashed")
    with pytest.raises(WeightsError, match="no hash in its name"):
        import_weights(str(resnet), tmp_path / "ref.pt", arch="resnet18")
    with pytest.raises(WeightsError, match="does not exist"):
        import_weights(str(tmp_path / "vgg16-397923af.pth"), tmp_path / "ref.pt")


def test_other_network_with_a_valid_hash_is_refused(tmp_path):
    path, digest = save_as_torchvision({"features.0.weight": torch.zeros(2, 3, 3, 3)}, tmp_path)
    with pytest.raises(WeightsError, match=r"does not fit torchvision's vgg16: it has no features.0.bias \(64,\) \(31 of the "
                                           r"network's 32 tensors missing: features.0.bias, features.2.weight, "):
        import_weights(str(path), tmp_path / "ref.pt", digest)


def test_a_file_whose_name_matches_but_whose_whole_digest_does_not_is_refused(fake_weights, tmp_path):
    """The name's 8 hex digits are 32 bits: the whole SHA-256 (reference.sha256) is checked too."""
    published = PUBLISHED_SHA256["vgg16-397923af.pth"]
    assert published.startswith("397923af")  # checked by default: reference.sha256 is null
    path, _ = fake_weights
    with pytest.raises(WeightsError, match=f"not {published} \\(reference.sha256, else the published"):
        import_weights(str(path), tmp_path / "ref.pt")
    assert not (tmp_path / "ref.pt").exists()


def test_a_truncated_file_under_its_own_name_and_digest_is_named(fake_weights, tmp_path):
    """Cut short, renamed to its new digest and that digest given as reference.sha256:
    the hash checks pass, and the reading names the file instead of a raw traceback."""
    path, _ = fake_weights
    cut = tmp_path / "cut.pth"
    with open(path, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(1 << 20))
    digest = sha256(cut)
    named = cut.rename(tmp_path / f"vgg16-{digest[:8]}.pth")
    with pytest.raises(WeightsError, match=r"is damaged, cut short, or not a file torch.save wrote"):
        import_weights(str(named), tmp_path / "ref.pt", digest)
    assert not (tmp_path / "ref.pt").exists()


def test_any_torchvision_network_s_weights_import_and_say_how_to_pin_them(tmp_path, caplog):
    """resnet18-<8 hex>.pth, as torchvision names it: its name's digits are checked, a
    warning gives the whole digest to pin (the project knows only VGG-16's), and the
    weights' own preprocessing is recorded."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    path, digest = save_as_torchvision(net.state_dict(), tmp_path, "resnet18")
    info = import_weights(str(path), tmp_path / "ref.pt", arch="resnet18", image_size=64)
    assert info["sha256"] == digest and info["sha256_checked"] == "name's 8 hex digits"
    assert f"set reference.sha256: {digest}" in caplog.text and "trained at 224 px" in caplog.text
    assert info["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    loaded, ckpt = load_model(tmp_path / "ref.pt")
    assert ckpt["spec"]["arch"] == "resnet18" and ckpt["spec"]["num_classes"] == 1000
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), net.eval()(x))
    caplog.clear()
    assert import_weights(str(path), tmp_path / "ref2.pt", digest, arch="resnet18")["sha256_checked"] == "whole"
    assert "set reference.sha256" not in caplog.text
    with pytest.raises(WeightsError, match=r"does not fit torchvision's resnet34: it has no layer1.2.conv1.weight "
                                           r"\(64, 64, 3, 3\) \(.* missing: layer1.2.conv1.weight, .*\); point "
                                           r"reference.weights at resnet34-"):
        import_weights(str(path), tmp_path / "ref3.pt", arch="resnet34")


def test_the_reference_s_weights_take_the_wrappers_a_run_of_one_s_own_may_carry(tmp_path):
    """As a run of one's own is read (featevo.models.checkpoint.fitted_state): a Lightning
    checkpoint's state_dict under model., DataParallel's module. prefix; the same network
    comes out. Extra tensors of the network's own modules are another network, named."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    plain = net.state_dict()
    for i, wrapped in enumerate(({f"module.{k}": v for k, v in plain.items()},
                                 {"epoch": 3, "state_dict": {**{f"model.{k}": v for k, v in plain.items()},
                                                             "loss_fn.weight": torch.ones(3)}})):
        path = tmp_path / f"wrapped{i}.pth"
        torch.save(wrapped, path)
        import_weights(str(path), tmp_path / f"ref{i}.pt", sha256(path), arch="resnet18")
        loaded, _ = load_model(tmp_path / f"ref{i}.pt")
        x = torch.rand(1, 3, 64, 64)
        torch.testing.assert_close(loaded(x), net.eval()(x))
    extra = tmp_path / "extra.pth"
    torch.save({**plain, "layer1.2.conv1.weight": torch.zeros(64, 64, 3, 3)}, extra)
    with pytest.raises(WeightsError, match=r"reference.weights: .*extra.pth does not fit torchvision's resnet18: "
                                           r"it has layer1.2.conv1.weight \(64, 64, 3, 3\) \(1 tensors more"):
        import_weights(str(extra), tmp_path / "ref_extra.pt", sha256(extra), arch="resnet18")


def test_a_pinned_digest_accepts_a_file_of_any_name(fake_weights, tmp_path):
    """Your own ImageNet weights in torchvision's format, under a name of your own: the whole
    SHA-256 pinned in reference.sha256 is the check; unpinned, the name must carry digits."""
    path, model = fake_weights
    own = tmp_path / "my_vgg16.pth"
    own.symlink_to(path)
    info = import_weights(str(own), tmp_path / "ref.pt", sha256(path))
    assert info["sha256_checked"] == "whole"
    with pytest.raises(WeightsError, match="is corrupt or not the published file"):
        import_weights(str(own), tmp_path / "ref2.pt")  # unpinned: VGG-16's published digest


def _paper_workdir(tmp_path, own: dict):
    import yaml

    import fake_imagenet as fake

    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    tar = fake.train_tar(tmp_path, 4)
    site = {"data": {"imagenet": str(tar), "images_per_class": 4, "val_per_class": 1}, "visualize": {"top_k": 2},
            **own}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    return [ROOT / "configs" / "paper.yaml", tmp_path / "site.yaml"]


def test_the_paper_config_s_default_weights_come_from_the_torch_hub_cache(fake_weights, tmp_path, monkeypatch):
    """configs/paper.yaml leaves reference.weights null: torchvision's file is read from the
    torch hub cache ($TORCH_HOME/hub/checkpoints/vgg16-397923af.pth), through snakemake.
    (The fake file's own digest is pinned: the published one would refuse it.)"""
    path, model = fake_weights
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    os.link(path, cache / "vgg16-397923af.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    work = tmp_path / "work"
    work.mkdir()
    configs = _paper_workdir(work, {"reference": {"sha256": sha256(path)}})
    dry = snakemake(work, "-n", "-p", "results/paper/reference/model.pt", configs=configs)
    shown = dry.stdout + dry.stderr
    assert "featevo weights --settings" in shown and '"weights": null' in shown and "--weights" not in shown
    snakemake(work, "--", "results/paper/reference/model.pt", configs=configs)
    info = json.loads((work / "results" / "paper" / "reference" / "model.json").read_text())
    assert info["source"] == str(cache / "vgg16-397923af.pth") and info["sha256_checked"] == "whole"
    loaded, ckpt = load_model(work / "results" / "paper" / "reference" / "model.pt")
    x = torch.rand(1, 3, 224, 224)
    assert torch.equal(loaded(x), model.eval()(x))


def test_a_weights_path_with_a_tilde_is_the_same_file_at_parse_time_and_in_the_job(fake_weights, tmp_path,
                                                                                     monkeypatch):
    path, _ = fake_weights
    home = tmp_path / "home"
    home.mkdir()
    os.link(path, home / path.name)
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    configs = _paper_workdir(work, {"reference": {"weights": f"~/{path.name}", "sha256": sha256(path)}})
    snakemake(work, "--", "results/paper/reference/model.pt", configs=configs)
    info = json.loads((work / "results" / "paper" / "reference" / "model.json").read_text())
    assert info["source"] == str(home / path.name)


def test_an_unpinned_file_without_digits_in_its_name_is_named_at_parse_time(tmp_path):
    """No digest of ResNet-18's file is known and none is pinned: its name must carry the
    digits, and a name without them is named before any job (the judge would train first)."""
    weights = tmp_path / "resnet18_mine.pth"
    weights.write_bytes(b"not read at parse time")
    work = tmp_path / "work"
    work.mkdir()
    configs = _paper_workdir(work, {"model": {"arch": "resnet18"}, "reference": {"weights": str(weights)},
                                    "methods": {"inversion": {"enabled": False}}})
    proc = snakemake(work, "-n", configs=configs, check=False)
    assert proc.returncode != 0
    assert "reference.weights: resnet18_mine.pth has no hash in its name" in proc.stderr + proc.stdout
    (work / "pin.yaml").write_text(f"reference: {{sha256: '{'0' * 64}'}}\n")
    assert snakemake(work, "-n", configs=[*configs, work / "pin.yaml"], check=False).returncode == 0

"""Any torchvision classifier by name (model.arch): one member of every family builds
with N classes, takes a transferred state dict (all but its output layer), trains a
step and runs a visualization step on the CPU, and a checkpoint of it loads back."""

import copy

import pytest
import torch

from conftest import viz_settings
from featevo.models.checkpoint import load_model, save_checkpoint
from featevo.preflight.checks import check_config
from featevo.config.settings import load_config
from featevo.models.networks import ModelSpec, build_model, head_name, num_outputs, shape_problem, torchvision_classifiers
from featevo.models.networks import transfer
from featevo.models.train import freeze, make_optimizer
from featevo.optvis.render import activation_maximization
from snakemake_helpers import ROOT

# one member of every torchvision classification family, and the side its images need
# (ViT and MaxViT are made for 224 px, Inception v3 for 75 px and more)
LIGHT = {"vgg11": 32, "resnet18": 32, "densenet121": 32, "mobilenet_v2": 32, "mobilenet_v3_small": 32,
         "efficientnet_b0": 32, "regnet_y_400mf": 32, "mnasnet0_5": 32, "shufflenet_v2_x0_5": 32,
         "squeezenet1_1": 64, "googlenet": 32, "alexnet": 64, "swin_t": 64}
HEAVY = {"resnext50_32x4d": 32, "wide_resnet50_2": 32, "efficientnet_v2_s": 32, "convnext_tiny": 32,
         "inception_v3": 96, "vit_b_16": 224, "maxvit_t": 224}
FAMILIES = [pytest.param(n, s, id=n) for n, s in LIGHT.items()] + [
    pytest.param(n, s, id=n, marks=pytest.mark.slow) for n, s in HEAVY.items()]


@pytest.mark.parametrize("arch, size", FAMILIES)
def test_a_family_member_builds_transfers_trains_and_is_visualized(arch, size, tmp_path):
    spec = ModelSpec(arch=arch, num_classes=3, width_divisor=16 if arch == "vgg11" else 1,
                     pool_size=1 if arch == "vgg11" else 7)
    model = build_model(spec, seed=0)
    assert num_outputs(model) == 3
    again = build_model(spec, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # ImageNet's 1000-way twin: everything but the output layer transfers
    imagenet = build_model(ModelSpec(**{**spec.as_dict(), "num_classes": 1000}), seed=1).state_dict()
    not_copied = transfer(model, imagenet)
    head = head_name(model)
    assert not_copied and all(n.startswith(head + ".") for n in not_copied)
    copied = [n for n in model.state_dict() if n not in not_copied]
    assert all(torch.equal(model.state_dict()[n], imagenet[n]) for n in copied)
    # a training step with the features frozen changes only what trains: VGG's classifier,
    # another network's output layer (a linear probe)
    before = copy.deepcopy(model.state_dict())
    freeze(model, "features", arch)
    opt = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
    model.train()
    x, y = torch.rand(2, 3, size, size), torch.tensor([0, 2])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trains = "classifier." if arch == "vgg11" else head + "."
    assert changed and all(n.startswith(trains) for n in changed)
    # a visualization step, and the checkpoint loads back as the same network
    r = activation_maximization(model, [0, 1, 2], **viz_settings(image_size=size, steps=1, restarts=1))
    assert r["images"].shape == (3, 3, size, size) and 0 <= r["images"].min() and r["images"].max() <= 1
    save_checkpoint(tmp_path / "c.pt", model, spec, epoch=1, classes=["a", "b", "c"])
    loaded, _ = load_model(tmp_path / "c.pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.slow
def test_every_classifier_torchvision_lists_builds_with_n_classes():
    """The full tier: every name get_model builds, on the meta device (shapes only)."""
    failed = {}
    for arch in torchvision_classifiers():
        size = 299 if arch == "inception_v3" else 224
        problem, _ = shape_problem(ModelSpec(arch=arch, num_classes=5), size)
        if problem:
            failed[arch] = problem
    assert not failed, failed


def test_architecture_problems_are_named_at_parse_time():
    cfg = load_config(ROOT / "config.yaml")
    cfg["model"] = {**cfg["model"], "arch": "vit_b_16", "width_divisor": 1, "pool_size": 7}
    cfg["methods"] = {**cfg["methods"], "inversion": {**cfg["methods"]["inversion"], "layers": ["features.8"]}}
    errors = "\n".join(check_config(cfg))
    assert "model.arch vit_b_16: data.image_size: vit_b_16 does not take 64 px images" in errors
    assert "methods.inversion.layers: ['features.8'" in errors  # VGG's layers, not ViT's
    cfg["model"]["arch"] = "resnet99"
    assert "model.arch: unknown 'resnet99'" in "\n".join(check_config(cfg))
    cfg["model"]["arch"] = "resnet181"
    assert "model.arch: unknown 'resnet181'; did you mean resnet18 or " in "\n".join(check_config(cfg))
    cfg["model"]["arch"] = "fasterrcnn_resnet50_fpn"
    assert "'fasterrcnn_resnet50_fpn' is one of torchvision's models but not an image classifier" in \
        "\n".join(check_config(cfg))
    # width_divisor and pool_size narrow featevo's VGG only: a ResNet over the VGG demo's config
    # (width_divisor 8, pool_size 2) needs no reset, and is built at its own size
    demo = load_config(ROOT / "config.yaml")
    assert (demo["model"]["width_divisor"], demo["model"]["pool_size"]) == (8, 2)
    assert not check_config({**demo, "model": {**demo["model"], "arch": "resnet18"}})
    assert not check_config({**demo, "judge": {**demo["judge"], "arch": "resnet18"}})
    assert ModelSpec(arch="resnet18", width_divisor=8, pool_size=2) == ModelSpec(arch="resnet18")
    assert ModelSpec(arch="vgg16", width_divisor=8).width_divisor == 8
    assert not check_config(load_config(ROOT / "config.yaml", ROOT / "configs" / "resnet-demo.yaml"))


# configs/resnet-demo.yaml's whole DAG at toy size runs in tests/test_own_classes.py, with own
# classes and torchvision's weights file: two ResNet DAGs took 5 minutes of make test-all


def test_the_inversion_layers_default_to_the_network_s_own_stages():
    """methods.inversion.layers null: VGG-16's are the paper's relu2_2, relu3_3 and relu5_3,
    and another network's are the ends at the same places among its own stages."""
    from featevo.models.networks import inversion_layers, stage_ends

    vgg = ModelSpec(arch="vgg16", width_divisor=8, pool_size=2)
    assert stage_ends(vgg, 64) == ["features.3", "features.8", "features.15", "features.22", "features.29"]
    assert inversion_layers(vgg, 64) == ["features.8", "features.15", "features.29"]
    assert inversion_layers(ModelSpec(arch="resnet18"), 64) == ["layer1", "layer2", "layer4"]
    for arch in ("mobilenet_v3_small", "convnext_tiny", "densenet121"):
        spec = ModelSpec(arch=arch)
        names = {n for n, _ in build_model(spec, seed=0).named_modules()}
        layers = inversion_layers(spec, 64)
        assert len(layers) == 3 and set(layers) <= names, (arch, layers)
    # the default needs no check and no key of the user's: a ResNet over the VGG demo's config is clean
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["methods"]["inversion"]["enabled"] and cfg["methods"]["inversion"]["layers"] is None
    assert not check_config({**cfg, "model": {**cfg["model"], "arch": "resnet18"}})

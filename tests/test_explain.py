import json

import numpy as np
import pytest
import torch

from conftest import write_subset
from featevo.data.inputs import fixed_images
from featevo.measures import explain
from featevo.stages import explain as explain_stage
from featevo.models.checkpoint import save_checkpoint
from featevo.models.networks import ModelSpec, build_model
from featevo.data.inputs import Subset, imagenet_normalize


class TopLeft(torch.nn.Module):
    """Logit k = k * (mean of the top-left 8 x 8 pixels' normalized red channel)."""

    def forward(self, x):
        v = x[:, 0, :8, :8].mean(dim=(1, 2))
        return torch.stack([v * k for k in range(3)], 1)


def test_fixed_images_are_the_first_of_each_class(tmp_path):
    labels = np.array([2, 0, 1, 0, 2, 1, 0])
    data = Subset.__new__(Subset)
    data.images, data.labels = np.zeros((7, 4, 4, 3), np.uint8), labels
    assert fixed_images(data.labels, 2, 3, refuse="methods.images_per_class").tolist() == [1, 3, 2, 5, 0, 4]
    with pytest.raises(ValueError, match="methods.images_per_class"):
        fixed_images(data.labels, 4, 3, refuse="methods.images_per_class")


def test_saliency_is_the_absolute_input_gradient():
    net = explain.Normalized(build_model(ModelSpec(num_classes=3, width_divisor=16, pool_size=1), seed=0).eval())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([2, 0])
    ours = explain.saliency(net, x.clone().requires_grad_(True), target)
    xx = x.clone().requires_grad_(True)
    net(xx).gather(1, target.view(-1, 1)).sum().backward()
    np.testing.assert_allclose(ours, xx.grad.abs().amax(1).numpy(), rtol=1e-6)


def test_occlusion_finds_the_region_the_class_depends_on():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    x[:, 0, :8, :8] = 1.0  # bright red where the logit looks: hiding it lowers the score
    attr = explain.occlusion(explain.Normalized(TopLeft()), x, torch.tensor([2]), window=8, stride=8)
    assert attr.shape == (1, 32, 32)
    assert attr[0, :8, :8].min() > 0 and np.abs(attr[0, 8:, :]).max() == 0 and np.abs(attr[0, :, 8:]).max() == 0


def test_inversion_matches_the_features_of_its_image():
    model = build_model(ModelSpec(num_classes=3, width_divisor=16, pool_size=1), seed=0).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def dist(y):
        feats = {}
        h = model.features[8].register_forward_hook(lambda m, i, o: feats.__setitem__("f", o.clone()))
        with torch.no_grad():
            model(imagenet_normalize(x))
            fx = feats["f"]
            model(imagenet_normalize(y))
        h.remove()
        return ((feats["f"] - fx).pow(2).sum() / fx.pow(2).sum()).item()

    start = explain.invert(model, x, "features.8", steps=0, lr=0.05, tv_weight=0.0)
    end = explain.invert(model, x, "features.8", steps=60, lr=0.05, tv_weight=0.0)
    assert 0 <= end.min() and end.max() <= 1
    assert dist(end) < 0.3 * dist(start)


def methods(**sections) -> str:
    """explain's --settings: every method on, small, on the CPU (the schema fills in the rest)."""
    cfg = {"device": "cpu", "saliency": {"enabled": True}, "occlusion": {"enabled": True, "window": 8, "stride": 8},
           "inversion": {"enabled": True, "layers": ["features.3", "classifier.1"], "steps": 2}}
    for k, v in sections.items():
        cfg[k] = {**cfg[k], **v}
    return json.dumps({"methods": cfg})


def test_cli_writes_every_enabled_method(tmp_path):
    data = write_subset(tmp_path / "data", n_train=6, n_val=6)
    spec = ModelSpec(num_classes=3, width_divisor=16, pool_size=1)
    save_checkpoint(tmp_path / "e.pt", build_model(spec, seed=0), spec, epoch=4, classes=["a", "b", "c"])
    assert explain_stage.main(["--checkpoint", str(tmp_path / "e.pt"), "--data", str(data), "--out",
                         str(tmp_path / "x.npz"), "--settings", methods()]) == 0
    d = np.load(tmp_path / "x.npz")
    assert int(d["epoch"]) == 4 and d["labels"].tolist() == [0, 1, 2]
    assert d["saliency"].shape == (3, 32, 32) and d["occlusion"].shape == (3, 32, 32)
    assert d["inversion"].shape == (2, 3, 32, 32, 3) and d["inversion"].dtype == np.uint8
    assert d["probs"].shape == (3, 3)
    with pytest.raises(SystemExit, match="methods.inversion.layers"):
        explain_stage.main(["--checkpoint", str(tmp_path / "e.pt"), "--data", str(data), "--out",
                      str(tmp_path / "y.npz"), "--settings", methods(inversion={"layers": ["features.99"]})])
    # only the enabled methods run: saliency alone writes no occlusion or inversion
    assert explain_stage.main(["--checkpoint", str(tmp_path / "e.pt"), "--data", str(data), "--out",
                         str(tmp_path / "z.npz"), "--settings",
                         methods(occlusion={"enabled": False}, inversion={"enabled": False})]) == 0
    assert set(np.load(tmp_path / "z.npz")) & {"saliency", "occlusion", "inversion"} == {"saliency"}

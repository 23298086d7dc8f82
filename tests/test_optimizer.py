"""The paper's optimizer: torch.optim.Adadelta's update over the weights that train."""

import io
import subprocess
import sys

import pytest
import torch

from featevo.models.networks import ModelSpec, build_model
from featevo.models.train import epoch_optimizer, freeze


def steps(model, opt, n, gen):
    for _ in range(n):
        x = torch.randn(4, 3, 32, 32, generator=gen)
        y = torch.randint(0, 3, (4,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def small():
    return build_model(ModelSpec(num_classes=3, width_divisor=32, pool_size=1, dropout=0.0), seed=1)


def test_saved_state_continues_exactly(tmp_path):
    straight = small()
    steps(straight, epoch_optimizer(straight, 1.0, 0.95, 1e-8), 4, torch.Generator().manual_seed(0))
    model, gen = small(), torch.Generator().manual_seed(0)
    opt = epoch_optimizer(model, 1.0, 0.95, 1e-8)
    steps(model, opt, 2, gen)
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    resumed = epoch_optimizer(model, 1.0, 0.95, 1e-8)
    resumed.load_state_dict(torch.load(tmp_path / "o.pt", weights_only=True))
    steps(model, resumed, 2, gen)
    for a, b in zip(model.state_dict().values(), straight.state_dict().values()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), small().state_dict().values()))


def test_a_frozen_layer_has_no_optimizer_state():
    model = small()
    freeze(model, "features", "vgg16")
    opt = epoch_optimizer(model, 1.0, 0.95, 1e-8)
    steps(model, opt, 1, torch.Generator().manual_seed(0))
    trained = {id(p) for p in model.classifier.parameters()}
    assert {id(opt.params[i]) for i in opt.state} == trained


def _bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_functional_adadelta_is_torch_s_bit_for_bit_and_reads_its_files(layout):
    """The same weights and a state_dict that torch.save writes byte for byte as
    torch.optim.Adadelta's, so that checkpoints and .optim.pt files are those of before,
    and either continues the other's saved state exactly."""
    ours, theirs = small().to(memory_format=layout), small().to(memory_format=layout)
    if layout == torch.channels_last:  # as the epoch jobs hold the network; and the frozen experiment's case
        freeze(ours, "features", "vgg16")
        freeze(theirs, "features", "vgg16")
    trains = [p for p in theirs.parameters() if p.requires_grad]
    a = epoch_optimizer(ours, 1.0, 0.95, 1e-8)
    b = torch.optim.Adadelta(trains, lr=1.0, rho=0.95, eps=1e-8)
    steps(ours, a, 3, torch.Generator().manual_seed(0))
    steps(theirs, b, 3, torch.Generator().manual_seed(0))
    assert _bytes(ours.state_dict()) == _bytes(theirs.state_dict())
    assert _bytes(a.state_dict()) == _bytes(b.state_dict())
    # each continues the other's file
    a2 = epoch_optimizer(ours, 1.0, 0.95, 1e-8)
    a2.load_state_dict(torch.load(io.BytesIO(_bytes(b.state_dict())), weights_only=True))
    b2 = torch.optim.Adadelta(trains, lr=1.0, rho=0.95, eps=1e-8)
    b2.load_state_dict(torch.load(io.BytesIO(_bytes(a.state_dict())), weights_only=True))
    steps(ours, a2, 2, torch.Generator().manual_seed(1))
    steps(theirs, b2, 2, torch.Generator().manual_seed(1))
    assert _bytes(ours.state_dict()) == _bytes(theirs.state_dict())


def test_the_epoch_optimizer_does_not_import_torch_dynamo():
    """torch.optim.Optimizer imports torch._dynamo when built (1.0 s of a demo epoch job)."""
    code = ("import sys, torch; from featevo.models.train import epoch_optimizer; m = torch.nn.Linear(3, 2); "
            "o = epoch_optimizer(m, 1.0, 0.95, 1e-8); m(torch.ones(1, 3)).sum().backward(); o.step(); "
            "o.load_state_dict(o.state_dict()); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

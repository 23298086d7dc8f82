"""The paper's optimizer: torch.optim.Adadelta over the weights that train."""

import torch

from featevo.models import ModelSpec, build_model
from featevo.train import freeze, make_optimizer


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
    steps(straight, make_optimizer(straight, 1.0, 0.95, 1e-8, "adadelta"), 4, torch.Generator().manual_seed(0))
    model, gen = small(), torch.Generator().manual_seed(0)
    opt = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
    steps(model, opt, 2, gen)
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    resumed = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
    resumed.load_state_dict(torch.load(tmp_path / "o.pt", weights_only=True))
    steps(model, resumed, 2, gen)
    for a, b in zip(model.state_dict().values(), straight.state_dict().values()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), small().state_dict().values()))


def test_a_frozen_layer_has_no_optimizer_state():
    model = small()
    freeze(model, "features", "vgg16")
    opt = make_optimizer(model, 1.0, 0.95, 1e-8, "adadelta")
    steps(model, opt, 1, torch.Generator().manual_seed(0))
    trained = {id(p) for p in model.classifier.parameters()}
    assert {id(p) for p in opt.state} == trained

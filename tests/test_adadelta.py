import pytest
import torch

from featevo.adadelta import Adadelta
from featevo.models import ModelSpec, build_model


def steps(model, opt, n, gen):
    for _ in range(n):
        x = torch.randn(4, 3, 32, 32, generator=gen)
        y = torch.randint(0, 3, (4,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def small(pool_size=1):
    return build_model(ModelSpec(num_classes=3, width_divisor=32, pool_size=pool_size, dropout=0.0), seed=1)


def batches():
    return torch.Generator().manual_seed(0)


def test_equals_torch_optim_adadelta_bit_for_bit():
    ours, ref = small(), small()
    steps(ours, Adadelta(ours.named_parameters(), lr=1.0, rho=0.95, eps=1e-8), 5, batches())
    steps(ref, torch.optim.Adadelta(ref.parameters(), lr=1.0, rho=0.95, eps=1e-8), 5, batches())
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), small().state_dict().values()))


def test_saved_state_continues_exactly(tmp_path):
    straight = small()
    steps(straight, Adadelta(straight.named_parameters()), 4, batches())
    model, gen = small(), batches()
    opt = Adadelta(model.named_parameters())
    steps(model, opt, 2, gen)
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    resumed = Adadelta(model.named_parameters())
    resumed.load_state_dict(torch.load(tmp_path / "o.pt", weights_only=True))
    steps(model, resumed, 2, gen)
    for a, b in zip(model.state_dict().values(), straight.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.steps == 4


def test_refuses_foreign_state():
    opt = Adadelta(small().named_parameters())
    state = Adadelta(small().named_parameters()).state_dict()
    state["square_avg"].pop("classifier.6.weight")
    with pytest.raises(ValueError, match="another network"):
        opt.load_state_dict(state)
    with pytest.raises(ValueError, match="featevo-adadelta"):
        opt.load_state_dict({"state": {}, "param_groups": []})  # a torch.optim state

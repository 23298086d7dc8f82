"""What the ascent maximizes (``visualize.objective``): a class unit's logit, margin,
log-softmax or softmax, read at the network's output; or an inner unit (a channel
of a named module, ``visualize.units``), read by a forward hook that stops the
forward pass there."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from featevo.models.hooks import Reached, attach, detach, forward_until


def _own(scores: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    return scores.gather(1, units.view(-1, 1)).squeeze(1)


def _margin(logits: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    # own logit minus the largest other one: never flat, never capped
    own = _own(logits, units)
    if logits.shape[1] == 1:
        return own
    return own - logits.scatter(1, units.view(-1, 1), float("-inf")).amax(dim=1)


# visualize.objective: each image's value of its own unit, from the float32 logits
OBJECTIVES = {
    "logit": _own,  # the paper's a_i(x), before the softmax
    "margin": _margin,
    "log_softmax": lambda logits, units: _own(logits.log_softmax(dim=1), units),
    "softmax": lambda logits, units: _own(logits.softmax(dim=1), units),
}


def objective_values(logits: torch.Tensor, units: torch.Tensor, objective: str) -> torch.Tensor:
    """Per-image value of its own unit under the chosen objective (:data:`OBJECTIVES`)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"visualize.objective: unknown {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[objective](logits.float(), units)


class _Output:
    """Output units under an objective (the paper's class units): saturated when the
    objective's gradient on the image's own logit is exactly zero."""

    def __init__(self, target: torch.Tensor, objective: str):
        self.target, self.objective = target, objective

    def value(self, model, xn):
        logits = model(xn)
        return objective_values(logits, self.target, self.objective), logits

    def flat(self, dwatched, grad):
        return dwatched.float().gather(1, self.target.view(-1, 1)).squeeze(1) == 0

    def final(self, model, xn) -> dict:
        final = model(xn).float()
        return {"probs": final.softmax(dim=1).cpu(), "logits": final.cpu()}

    def close(self):
        pass


@dataclass(frozen=True)
class InnerUnit:
    """A unit of an inner layer (``visualize.units``): ``layer:channel`` is the channel's
    mean activation over space, ``layer:channel:y:x`` one neuron of it (``layer``: a
    module name, as torchvision's ``get_graph_node_names`` lists for modules); a linear
    layer's ``layer:index`` is its neuron."""

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None

    @classmethod
    def parse(cls, text: str) -> InnerUnit:
        parts = text.split(":")
        if len(parts) not in (2, 4) or not all(p.isdigit() for p in parts[1:]):
            raise ValueError(f"visualize.units: {text!r} is not layer:channel or layer:channel:y:x")
        return cls(parts[0], *map(int, parts[1:]))

    def __str__(self) -> str:
        return ":".join(map(str, [self.layer, self.channel] + ([self.y, self.x] if self.y is not None else [])))


class _Inner:
    """Inner units read by forward hooks on their layers; the forward pass stops once
    every layer asked for has run (the layers above do not matter)."""

    def __init__(self, model, units: list[InnerUnit]):
        self.units, self.outputs = units, {}
        layers = sorted({u.layer for u in units})

        def read(name, output):
            # a copy: an in-place activation after the layer would change its output in place
            self.outputs[name] = output.clone()
            if len(self.outputs) == len(layers):
                raise Reached

        self.handles = attach(model, layers, read)

    def _values(self, model, xn) -> torch.Tensor:
        self.outputs = {}
        forward_until(model, xn)
        out = []
        for i, u in enumerate(self.units):
            a = self.outputs[u.layer][i, u.channel].float()
            out.append(a.mean() if u.y is None else a[u.y, u.x])
        return torch.stack(out)

    def value(self, model, xn):
        return self._values(model, xn), None

    def flat(self, dwatched, grad):
        return (grad.flatten(1) == 0).all(dim=1)

    def final(self, model, xn) -> dict:
        return {"activation": self._values(model, xn).cpu()}

    def close(self):
        detach(self.handles)

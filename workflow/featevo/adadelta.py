"""Adadelta (Zeiler 2012), the paper's optimizer, without ``torch.optim``.

``torch.optim``'s optimizers import ``torch._dynamo`` on first use: 1.1 s on
the 2-core CPU, a third of a demo epoch, paid again by every per-epoch job.
This is the same arithmetic as ``torch.optim.Adadelta``'s single-tensor path
(weight decay 0), operation for operation, so that the weights are equal bit
for bit (tested).  Its state is keyed by parameter name, not position.
"""

from __future__ import annotations

import torch

FORMAT = "featevo-adadelta/1"


class Adadelta:
    def __init__(self, named_parameters, lr: float = 1.0, rho: float = 0.95, eps: float = 1e-8):
        self.params = {n: p for n, p in named_parameters if p.requires_grad}
        self.lr, self.rho, self.eps = float(lr), float(rho), float(eps)
        self.square_avg = {n: torch.zeros_like(p, memory_format=torch.preserve_format)
                           for n, p in self.params.items()}
        self.acc_delta = {n: torch.zeros_like(p, memory_format=torch.preserve_format)
                          for n, p in self.params.items()}
        self.steps = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        rho, eps = self.rho, self.eps
        for n, p in self.params.items():
            if p.grad is None:
                continue
            grad, square_avg, acc_delta = p.grad, self.square_avg[n], self.acc_delta[n]
            square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
            std = square_avg.add(eps).sqrt_()
            delta = acc_delta.add(eps).sqrt_()
            delta.div_(std).mul_(grad)
            acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            p.add_(delta, alpha=-self.lr)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"format": FORMAT, "lr": self.lr, "rho": self.rho, "eps": self.eps, "steps": self.steps,
                "square_avg": dict(self.square_avg), "acc_delta": dict(self.acc_delta)}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} optimizer state")
        names = set(self.params)
        if set(state["square_avg"]) != names or set(state["acc_delta"]) != names:
            raise ValueError("the optimizer state belongs to another network (parameter names differ)")
        with torch.no_grad():
            for n in names:
                self.square_avg[n].copy_(state["square_avg"][n])
                self.acc_delta[n].copy_(state["acc_delta"][n])
        self.steps = int(state["steps"])

"""Reading a network's layers: forward hooks on named modules, in one place.

Every reader of inner activations (the representations' Gram matrices, the judge's
and the scores' penultimate features, the inversion's target layer, the ascent's
inner units, the shape probe on the meta device) attaches its hooks here and has
them removed whatever happens.  A hook may raise :class:`Reached` to stop the
forward pass once what it reads has run (the layers above do not matter);
:func:`forward_until` runs the network up to there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch


class Reached(Exception):
    """Raised by a hook: what it reads has run, the rest of the forward pass is skipped."""


def attach(model: torch.nn.Module, names: Iterable[str], read: Callable[[str, object], None], *,
           inputs: bool = False) -> list:
    """Hooks on the modules ``names`` of ``model`` calling ``read(name, value)``: the
    module's output, or with ``inputs`` its first input (a forward pre-hook).  Returns
    the handles (:func:`detach` removes them)."""
    handles = []
    for name in names:
        module = model.get_submodule(name)
        if inputs:
            handles.append(module.register_forward_pre_hook(lambda m, args, n=name: read(n, args[0])))
        else:
            handles.append(module.register_forward_hook(lambda m, args, output, n=name: read(n, output)))
    return handles


def detach(handles: list) -> None:
    for h in handles:
        h.remove()


@contextlib.contextmanager
def hooked(model: torch.nn.Module, names: Iterable[str], read: Callable[[str, object], None], *,
           inputs: bool = False) -> Iterator[None]:
    """:func:`attach` for the length of a ``with`` block."""
    handles = attach(model, names, read, inputs=inputs)
    try:
        yield
    finally:
        detach(handles)


def forward_until(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Run ``model`` on ``x`` until a hook raises :class:`Reached` (or to its end)."""
    try:
        model(x)
    except Reached:
        pass

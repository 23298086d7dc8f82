"""Checkpoints: plain dicts of tensors and numbers, written atomically.

A checkpoint loads with ``torch.load(path, weights_only=True)``: no pickled
classes, so a checkpoint from anywhere can be opened safely.  It is written to
a temporary file in the same folder and renamed into place, so a job killed
mid-write never leaves a file that looks complete, and a job whose Snakemake is
gone leaves none at all.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from featevo.jobs import watch
from featevo.jobs.files import umask
from featevo.models.networks import ModelSpec, build_model

log = logging.getLogger(__name__)

FORMAT = "featevo-checkpoint/1"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` so that it is either complete or absent: written to a
    temporary file in the same folder, flushed to disk, renamed into place, and the
    rename made durable (the folder fsynced).  The file gets the mode any other
    output gets (0666 less the umask, not mkstemp's 0600), and leftovers of an
    earlier write of the same path that was killed are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale.is_file() and not stale.is_symlink() and stale.stat().st_uid == os.getuid():
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        # a job whose Snakemake is gone publishes nothing: the rerun owns this path now
        watch.stop_if_orphaned(before_exit=lambda: Path(tmp).unlink(missing_ok=True))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save_checkpoint(path: Path, model: torch.nn.Module, spec: ModelSpec, *, epoch: int, classes: list[str],
                    metrics: dict[str, float] | None = None, extra: dict[str, Any] | None = None) -> None:
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    atomic_save({
        "format": FORMAT,
        "model": state,
        "spec": spec.as_dict(),
        "epoch": int(epoch),
        "classes": list(classes),
        "metrics": dict(metrics or {}),
        **(extra or {}),
    }, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    from featevo.jobs.files import damaged

    problem = damaged(path)
    if problem:
        raise ValueError(problem)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or unsafe pickle
        from featevo.jobs.files import torch_refusal

        raise ValueError(f"checkpoint {torch_refusal(path, exc)}; or delete it and rerun to rebuild it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a featevo checkpoint (format {FORMAT!r} expected)")
    return ckpt


def load_model(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network stored in a checkpoint, in eval mode on the CPU, and the checkpoint."""
    ckpt = load_checkpoint(path)
    model = build_model(ModelSpec(**ckpt["spec"]))
    load_weights(model, ckpt["model"])
    return model.eval(), ckpt


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state)`` for a state stored as a plain dict: the module
    versions a state dict carries (MNASNet checks its own) are the fresh network's."""
    from collections import OrderedDict

    state = OrderedDict(state)
    state._metadata = getattr(model.state_dict(), "_metadata", None)  # type: ignore[attr-defined]
    model.load_state_dict(state)


# ---- a state dict of someone else's: a run of one's own, the reference's weights file ----


def plain_state(obj, source: Path) -> dict[str, torch.Tensor]:
    """The state dict in what ``torch.load`` read: itself, or a Lightning checkpoint's
    ``state_dict`` (also a ``model_state_dict`` or ``model`` entry)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return obj[key]
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise SystemExit(f"error: {source} holds no state dict (save one with torch.save(model.state_dict(), path))")


def _network_prefix(own: list[str], names: list[str]) -> str:
    """The prefix under which ``own`` (the network's names) sit in ``names``: ``""``, or a
    wrapper's (``model.``, ``model.net.``, ``_orig_mod.``), the one that holds most of
    them; between equals, the one whose first name comes first in the file."""
    candidates = {"": 0}
    for i, n in enumerate(names):
        parts = n.split(".")
        for k in range(1, min(4, len(parts))):
            candidates.setdefault(".".join(parts[:k]) + ".", i)
    present = set(names)
    return max(candidates, key=lambda pre: (sum(pre + n in present for n in own), -candidates[pre], -len(pre)))


def fitted_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path,
                 fits: str = "model.arch", fix: str = "set model.* to the network that was trained") -> dict[str, torch.Tensor]:
    """``state`` with its names as ``model``'s, or an error that names the first tensor that
    does not fit.

    The network's tensors are found under the prefix that holds most of them (a Lightning
    module's ``model.``, nested wrappers' ``model.net.``).  Entries outside it, or under
    it but of a module the network does not have at all (a weighted loss's
    ``loss_fn.weight``, a second copy such as an EMA's), are not the network's, and are
    ignored with a logged note.  Every tensor of the network must be there with its
    shape, and no other tensor of its modules: one more (``layer1.2.conv1.weight`` in a
    ResNet-18) is another network.  ``fits`` and ``fix``: what the file must fit and what
    to do, for the message (the reference's weights: torchvision's network, the file to
    point reference.weights at).  One home for a user's run and the reference's weights."""
    own = model.state_dict()
    names = list(state)
    prefix = _network_prefix(list(own), names)
    modules = {name for name, _ in model.named_children()}
    mine = {n[len(prefix):]: t for n, t in state.items()
            if n.startswith(prefix) and n[len(prefix):].split(".", 1)[0] in modules}
    others = [n for n in names if not (n.startswith(prefix) and n[len(prefix):] in mine)]
    missing = [n for n in own if n not in mine]
    if missing:
        raise SystemExit(f"error: {source} does not fit {fits}: it has no {prefix}{missing[0]} "
                         f"{tuple(own[missing[0]].shape)} ({len(missing)} of the network's {len(own)} tensors "
                         f"missing: {_some(missing)}); {fix}")
    for name, tensor in own.items():
        if tuple(mine[name].shape) != tuple(tensor.shape):
            raise SystemExit(f"error: {source} does not fit {fits}: its {prefix}{name} is "
                             f"{tuple(mine[name].shape)}, the config's network has {tuple(tensor.shape)} (model.* "
                             "or the number of data.classes differs from the run's)")
    extra = [n for n in mine if n not in own]
    if extra:
        raise SystemExit(f"error: {source} does not fit {fits}: it has {prefix}{extra[0]} "
                         f"{tuple(mine[extra[0]].shape)} ({len(extra)} tensors more than the config's network: "
                         f"{_some(extra)}); {fix}")
    if others:
        groups: dict[str, list[str]] = {}
        for n in others:
            groups.setdefault(n.split(".", 1)[0], []).append(n)
        log.info(f"{source}: the network's {len(own)} tensors are those of its modules under {prefix!r}; "
                 f"ignored {len(others)} entries of other modules, not the network's: "
                 + ", ".join(g[0] if len(g) == 1 else f"{k}.* ({len(g)})" for k, g in groups.items()))
    return {n: mine[n] for n in own}


def _some(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")

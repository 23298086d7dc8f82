"""Checkpoints: plain dicts of tensors and numbers, written atomically.

A checkpoint loads with ``torch.load(path, weights_only=True)``: no pickled
classes, so a checkpoint from anywhere can be opened safely.  It is written to
a temporary file in the same folder and renamed into place, so a job killed
mid-write never leaves a file that looks complete, and a job whose Snakemake is
gone leaves none at all.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from featevo.jobs import watch
from featevo.jobs.files import umask
from featevo.models.networks import ModelSpec, build_model

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

"""Checkpoints: plain dicts of tensors and numbers, written atomically.

A checkpoint loads with ``torch.load(path, weights_only=True)``: no pickled
classes, so a checkpoint from anywhere can be opened safely.  It is written to
a temporary file in the same folder and renamed into place, so a job killed
mid-write never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from featevo.models import ModelSpec, build_model

FORMAT = "featevo-checkpoint/1"


def atomic_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or unsafe pickle
        raise ValueError(f"checkpoint {path} cannot be read ({exc}); delete it and rerun to rebuild it") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a featevo checkpoint (format {FORMAT!r} expected)")
    return ckpt


def load_model(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network stored in a checkpoint, in eval mode on the CPU, and the checkpoint."""
    ckpt = load_checkpoint(path)
    model = build_model(ModelSpec(**ckpt["spec"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt

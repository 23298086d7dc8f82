"""Where and in which precision the tensors live: CUDA when present, else CPU."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path

import torch


_HELD = []  # lock files of GPUs this process has claimed, held until it exits


def claim_gpu(count: int, lock_dir: Path | None = None, timeout: float | None = None) -> int:
    """Index of a GPU that no other featevo job on this machine holds.

    Each GPU has a lock file; the claim lasts until the process ends (the OS
    drops the lock even when a job is killed).  Waits while all are taken.
    """
    lock_dir = Path(lock_dir or os.environ.get("FEATEVO_GPU_LOCK_DIR")
                    or Path(tempfile.gettempdir()) / "featevo-gpu-locks")
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        for i in range(count):
            fh = open(lock_dir / f"gpu{i}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            _HELD.append(fh)
            return i
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"all {count} GPUs are held by other featevo jobs ({lock_dir})")
        time.sleep(1.0)


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU.

    With CUDA, a device chosen for the job by its scheduler (CUDA_VISIBLE_DEVICES)
    is used as it is; otherwise, with several GPUs, the job claims a free one, so
    that concurrent jobs of a workstation each get their own.
    """
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if os.environ.get("CUDA_VISIBLE_DEVICES") or torch.cuda.device_count() == 1:
            return torch.device("cuda:0")
        return torch.device(f"cuda:{claim_gpu(torch.cuda.device_count())}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16 autocast when asked for (or 'auto' on CUDA); fp32 otherwise."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def configure(device: torch.device, threads: int | None, deterministic: bool = False) -> None:
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

"""Where and in which precision the tensors live: CUDA when present, else CPU."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from pathlib import Path

import torch

from featevo import runtime

_HELD = []  # lock files of GPUs this process has claimed, held until it exits
# machine-wide, so that every user's jobs see the same claims (FEATEVO_GPU_LOCK_DIR overrides)
DEFAULT_LOCK_DIR = Path("/tmp/featevo-gpu-locks")
DEFAULT_WAIT = 3600.0  # the schema's gpu_wait, for jobs started outside the workflow


def visible_gpu_ids(count: int, env=os.environ) -> list[str]:
    """The machine's ids of the GPUs this process sees, in CUDA's order: those listed in
    ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) when it is set, else ``0..count-1``."""
    listed = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def _holders(inode: int) -> list[str]:
    """Who holds a flock on the file with this inode: 'pid N (user)', from /proc/locks."""
    out = []
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if "->" in f or len(f) < 6 or f[1] != "FLOCK":
            continue
        if f[5].rsplit(":", 1)[-1] == str(inode):
            pid = int(f[4])
            try:
                uid = int(next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                               if x.startswith("Uid:")).split()[1])
                out.append(f"pid {pid} ({runtime.user_name(uid)})")
            except (OSError, StopIteration, ValueError):
                out.append(f"pid {pid}")
    return out


def claim_gpu(ids: list[str] | int, lock_dir: Path | None = None, timeout: float | None = None,
              log=None) -> int:
    """Position in ``ids`` of a GPU that no other featevo job on this machine holds.

    Each GPU has a lock file named by its machine id in a folder every user's jobs
    share (made 1777 and sticky like /tmp, owned by root or this user, or refused:
    :func:`runtime.shared_dir`); the files are opened read-only, without blocking
    and without following links, and never written, so a planted link, FIFO or file
    can neither hang the job, be used against this user nor be truncated.  A lock
    file that cannot be used (planted, unreadable) is skipped for the next GPU.
    The claim lasts until the process ends (the OS drops a flock even when a job
    is killed).  While every GPU is held it waits, naming the holders once a
    minute, and gives up after ``timeout`` seconds (default: ``FEATEVO_GPU_WAIT``,
    the config's ``gpu_wait``) with an error that names them.
    """
    ids = [str(i) for i in range(ids)] if isinstance(ids, int) else list(ids)
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    lock_dir = runtime.shared_dir(Path(lock_dir or os.environ.get("FEATEVO_GPU_LOCK_DIR") or DEFAULT_LOCK_DIR),
                                  hint="Ask its owner to remove it, or set FEATEVO_GPU_LOCK_DIR to a folder all "
                                       "GPU users share")
    if timeout is None:
        timeout = float(os.environ.get("FEATEVO_GPU_WAIT") or DEFAULT_WAIT)
    start, told = time.monotonic(), -1.0
    while True:
        held = []
        for i, gpu in enumerate(ids):
            name = "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", gpu) + ".lock"
            try:  # O_NONBLOCK: a FIFO planted under the name would block the open forever
                fd = runtime.open_in(lock_dir, name, os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK, 0o644)
            except (OSError, runtime.UnsafePath) as exc:
                held.append(f"GPU {gpu} not usable ({exc})")
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holders = _holders(os.fstat(fd).st_ino)
                os.close(fd)
                held.append(f"GPU {gpu} by {', '.join(holders) or 'a process not visible here'}")
                continue
            if not _still_named(fd, lock_dir / name):  # removed or replaced while we opened it
                os.close(fd)
                held.append(f"GPU {gpu}: its lock file was replaced while claiming it")
                continue
            _HELD.append(fd)
            return i
        waited = time.monotonic() - start
        if waited >= timeout:
            raise TimeoutError(f"no free GPU among {len(ids)} ({'; '.join(held)}; locks in {lock_dir}) after "
                               f"waiting {waited:.0f} s (gpu_wait); free one, remove a lock file that is not "
                               "usable, or raise gpu_wait")
        if told < 0 or waited - told >= 60:
            log(f"[gpu] waiting for a free GPU (gives up after {timeout:.0f} s, gpu_wait): {'; '.join(held)}")
            told = waited
        time.sleep(min(1.0, max(0.0, timeout - waited)))


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` (not followed if a link) is still the file open as ``fd``."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def release_all() -> None:
    """Drop every claim of this process (its jobs end; tests)."""
    while _HELD:
        os.close(_HELD.pop())


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU.

    With CUDA and one visible GPU (one the scheduler chose for the job through
    CUDA_VISIBLE_DEVICES, or the machine's only one) that GPU is used; with
    several, the job claims a free one among them (:func:`claim_gpu`), so that
    concurrent jobs of a workstation, of any user, each get their own.
    """
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        ids = visible_gpu_ids(torch.cuda.device_count())
        if len(ids) == 1:
            return torch.device("cuda:0")
        return torch.device(f"cuda:{claim_gpu(ids)}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16 autocast when asked for (or 'auto' on CUDA); fp32 otherwise."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def configure(device: torch.device, threads: int | None, deterministic: bool = False,
              precision: str = "auto") -> None:
    """Threads, determinism and float32 strictness for this job.

    ``deterministic``: PyTorch's deterministic algorithms, with the cuBLAS
    workspace setting they need on CUDA (``CUBLAS_WORKSPACE_CONFIG``, read when
    cuBLAS starts, which is after this).  ``fp32`` on CUDA turns TF32 off for
    matrix products and convolutions (cuDNN allows it by default), so that
    float32 means the float32 the paper trained in.
    """
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

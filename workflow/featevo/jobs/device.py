"""Where and in which precision the tensors live: CUDA when present, else CPU; and the
claims by which concurrent jobs, of any user, each get a GPU of their own.

The claims are lock files in a folder every user's jobs share.  A lab workstation or
a cluster's submit host has other users, and the shared temporary folder is theirs
too: the folder is made here or accepted only after its owner and mode are checked,
and files in it are opened relative to that folder without following symbolic links,
so a link or folder planted by someone else is refused with a message naming it,
never used.  (Python's ``tempfile`` makes private files but no reusable named
folder; nothing in the standard library checks a folder's owner, so it is written
here.)
"""


from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import stat
import sys
import time
from pathlib import Path

import torch

# ---- runtime folders on a machine shared with other users ----------------------------


class UnsafePath(RuntimeError):
    """A runtime folder or file that another user could control."""


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _parent_problem(path: Path) -> str | None:
    """Every existing folder above ``path`` must be this user's or root's, and one that
    others may write to must be sticky (as /tmp) or this user's: else its owner, or
    those others, could rename our folder away and put theirs in its place."""
    for parent in Path(path).absolute().parents:
        try:
            st = os.lstat(parent)  # a link is judged by its own owner, who chose where it points
        except FileNotFoundError:
            continue  # created below, by this user
        if st.st_uid not in (0, os.getuid()):
            return f"{parent}, above it, belongs to {user_name(st.st_uid)}"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX and st.st_uid != os.getuid() \
                and not stat.S_ISLNK(st.st_mode):
            return f"{parent}, above it, is writable by other users and not sticky"
    return None


def _make(path: Path, mode: int) -> None:
    """mkdir with ``mode`` exactly (mkdir's own mode is cut by the umask); an existing
    path is left as it is, for the caller's check."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, mode, follow_symlinks=False)


def _checked(path: Path, problems_of, advice: str) -> Path:
    """``path`` if it is a real folder (not a link), ``problems_of(its lstat)`` finds
    nothing, and its parent is safe; else :class:`UnsafePath` naming every problem."""
    st = os.lstat(path)
    problems = []
    if stat.S_ISLNK(st.st_mode):
        problems.append("is a symbolic link")
    elif not stat.S_ISDIR(st.st_mode):
        problems.append("is not a folder")
    problems += problems_of(st)
    parent = _parent_problem(path)
    if parent:
        problems.append(parent)
    if problems:
        raise UnsafePath(f"{path} {' and '.join(problems)}; featevo will not use it. {advice}")
    return path


def shared_dir(path: Path | str, *, hint: str = "") -> Path:
    """A folder several users share, as the system's temporary folder is shared:
    created world-writable with the sticky bit (1777, so nobody can remove or
    replace another's files in it), or accepted only when it is a real folder
    that is either private to this user, or sticky and world-writable and owned by
    this user or root (the owner of a sticky folder may still delete any file in
    it, a lock another job holds included)."""
    path = Path(path)
    _make(path, 0o1777)

    def problems(st):
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid == os.getuid() and not mode & 0o022:
            return []  # private to this user
        if mode & 0o1777 == 0o1777 and st.st_uid in (0, os.getuid()):
            return []  # shared as /tmp is, by someone who cannot be another user
        if mode & 0o1777 == 0o1777:
            return [f"belongs to {user_name(st.st_uid)}, who could delete the lock files in it (it must belong to "
                    "root or to you)"]
        return [f"belongs to {user_name(st.st_uid)} with mode {mode:04o} (1777, sticky and open to all, is "
                "needed to share it safely)"]

    return _checked(path, problems, hint or "Ask its owner to remove it")


def open_in(folder: Path, name: str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` of ``folder/name`` that never follows a symbolic link, in the
    folder or at the name (a planted link raises ``OSError`` ELOOP), and never
    opens anything but a regular file with one link (a planted hard link to a
    file of the victim's is refused too)."""
    import errno

    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
    except OSError as exc:  # ELOOP; or EACCES where the kernel protects links in sticky folders
        try:
            st = os.lstat(name, dir_fd=dfd)
        except OSError:
            raise exc from None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{folder / name} is a symbolic link (made by {user_name(st.st_uid)}); featevo never "
                             "follows one there. Remove it and rerun") from None
        if exc.errno in (errno.EACCES, errno.EPERM) and st.st_uid != os.getuid():
            raise UnsafePath(f"{folder / name} belongs to {user_name(st.st_uid)} and cannot be opened; remove it "
                             "or ask its owner to") from None
        raise
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise UnsafePath(f"{folder / name} is not a plain file of its own (a link or device); featevo will not "
                         "open it. Remove it and rerun")
    return fd


# ---- GPU claims and the device ----------------------------------------------------------

_HELD = []  # lock files of GPUs this process has claimed, held until it exits
# machine-wide, so that every user's jobs see the same claims (FEATEVO_GPU_LOCK_DIR overrides)
DEFAULT_LOCK_DIR = Path("/tmp/featevo-gpu-locks")


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
                out.append(f"pid {pid} ({user_name(uid)})")
            except (OSError, StopIteration, ValueError):
                out.append(f"pid {pid}")
    return out


def _schema_wait() -> float:
    """The schema's ``gpu_wait`` default, for a job started outside the workflow (whose
    rules pass the config's own in ``FEATEVO_GPU_WAIT``)."""
    from featevo.config.settings import schema_defaults

    return float(schema_defaults()["gpu_wait"])


def claim_gpu(ids: list[str] | int, lock_dir: Path | None = None, timeout: float | None = None,
              log=None) -> int:
    """Position in ``ids`` of a GPU that no other featevo job on this machine holds.

    Each GPU has a lock file named by its machine id in a folder every user's jobs
    share (made 1777 and sticky like /tmp, owned by root or this user, or refused:
    :func:`shared_dir`); the files are opened read-only, without blocking
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
    lock_dir = shared_dir(Path(lock_dir or os.environ.get("FEATEVO_GPU_LOCK_DIR") or DEFAULT_LOCK_DIR),
                                  hint="Ask its owner to remove it, or set FEATEVO_GPU_LOCK_DIR to a folder all "
                                       "GPU users share")
    if timeout is None:
        timeout = float(os.environ.get("FEATEVO_GPU_WAIT") or _schema_wait())
    start, told = time.monotonic(), -1.0
    while True:
        held = []
        for i, gpu in enumerate(ids):
            name = "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", gpu) + ".lock"
            try:  # O_NONBLOCK: a FIFO planted under the name would block the open forever
                fd = open_in(lock_dir, name, os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK, 0o644)
            except (OSError, UnsafePath) as exc:
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


# what says a job was given a GPU: the variables CUDA's runtime and SLURM set for it
GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE", "GPU_DEVICE_ORDINAL")


def gpu_given(env: dict | None = None) -> str | None:
    """Which variable says this job was given a GPU (``CUDA_VISIBLE_DEVICES=0``, SLURM's
    ``SLURM_JOB_GPUS`` ...), or None.  Empty, ``-1``, ``NoDevFiles`` and ``0`` GPUs on the
    node say none was."""
    env = os.environ if env is None else env
    for var in GPU_VARIABLES:
        value = (env.get(var) or "").strip()
        if not value or value in ("-1", "NoDevFiles", "none") or (var == "SLURM_GPUS_ON_NODE" and value == "0"):
            continue
        return f"{var}={value}"
    return None


def cuda_problem() -> str:
    """Why torch cannot use CUDA here, in words a user can act on."""
    if torch.version.cuda is None:
        return ("this torch was built without CUDA (a CPU wheel); install the locked requirements "
                "(make install), whose torch is built for CUDA")
    try:
        torch.cuda.init()
    except Exception as exc:  # no driver, a driver too old for the wheel, no device
        reason = str(exc).strip().splitlines()[0]
    else:
        reason = "no device is visible to it"
    driver = ""
    with contextlib.suppress(OSError):
        driver = Path("/proc/driver/nvidia/version").read_text().split("Kernel Module", 1)[-1].split()[0]
    return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) cannot use it: {reason}"
            + (f" (the driver is {driver})" if driver else " (no NVIDIA driver is loaded)")
            + "; CUDA 13 wheels need an NVIDIA driver 580 or newer")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU; but a job that was given a GPU
    (:func:`gpu_given`) that torch cannot use stops at once with the reason, rather than
    running for days on the CPU (``cpu`` runs on the CPU on purpose).

    With CUDA and one visible GPU (one the scheduler chose for the job through
    CUDA_VISIBLE_DEVICES, or the machine's only one) that GPU is used; with
    several, the job claims a free one among them (:func:`claim_gpu`), so that
    concurrent jobs of a workstation, of any user, each get their own.
    """
    if name == "auto":
        if not torch.cuda.is_available():
            given = gpu_given()
            if given:
                raise RuntimeError(f"this job was given a GPU ({given}) but {cuda_problem()}; or set device: cpu "
                                   "to run on the CPU on purpose")
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


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads, where given (the rule's ``threads:``; none: torch's own
    choice): the one place a stage sets them."""
    if threads:
        torch.set_num_threads(threads)


def configure(device: torch.device, threads: int | None, deterministic: bool = False,
              precision: str = "auto") -> None:
    """Threads, determinism and float32 strictness for this job.

    ``deterministic``: PyTorch's deterministic algorithms, with the cuBLAS
    workspace setting they need on CUDA (``CUBLAS_WORKSPACE_CONFIG``, read when
    cuBLAS starts, which is after this).  ``fp32`` on CUDA turns TF32 off for
    matrix products and convolutions (cuDNN allows it by default), so that
    float32 means the float32 the paper trained in.
    """
    set_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

"""Runtime files on a machine shared with other users, and the job's tie to Snakemake.

Standard library only: the Snakefile and every job (``python -m featevo``) import it.

A lab workstation or a cluster's submit host has other users, and the shared
temporary folder is theirs too.  Every folder featevo keeps runtime files in is
made here or accepted only after its owner and mode are checked, and files in
it are opened relative to that folder without following symbolic links, so a
link or folder planted by someone else is refused with a message naming it,
never used.  (Python's ``tempfile`` makes private files but no reusable named
folder; nothing in the standard library checks a folder's owner, so it is
written here.)
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
import threading
import time
from pathlib import Path


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


# ---- the job's tie to the Snakemake that started it ------------------------------------

SNAKEMAKE_ENV = "FEATEVO_SNAKEMAKE"  # "<pid>:<start time>" of the Snakemake process, set by the Snakefile


def _stat(pid: int | str) -> list[bytes] | None:
    """Fields 3 on of /proc/<pid>/stat (after the command name, which may hold spaces
    and parentheses); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat), which tells
    a living process from a later one that reuses its pid; None when it is gone."""
    fields = _stat(pid)
    return None if fields is None else fields[19].decode()


def this_process() -> str:
    """The value of ``FEATEVO_SNAKEMAKE`` for this process."""
    return f"{os.getpid()}:{process_start(os.getpid())}"


def alive(mark: str) -> bool:
    pid, _, start = mark.partition(":")
    if not pid.isdigit():
        return True  # not a mark this module wrote: nothing to watch
    if not os.path.isdir("/proc/self"):  # no procfs: only ask whether the pid exists
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return process_start(int(pid)) == start


def watch_snakemake(interval: float = 0.5, *, on_gone=None) -> threading.Thread | None:
    """End this job as soon as the Snakemake that started it is gone.

    A Snakemake killed by SIGKILL (a closed terminal, the OOM killer, a dropped
    SSH session) leaves its jobs running; one that kept going would write
    outputs after the next run had started or judged them.  The Snakefile puts
    its own process in ``FEATEVO_SNAKEMAKE``; a daemon thread checks it and
    ends the job (exit status 1, before it writes anything more).  Outside
    Snakemake (the variable unset) it does nothing.
    """
    mark = os.environ.get(SNAKEMAKE_ENV)
    if not mark or not alive(mark):
        return None if not mark else _gone(mark, on_gone)

    def loop():
        while alive(mark):
            time.sleep(interval)
        _gone(mark, on_gone)

    thread = threading.Thread(target=loop, name="featevo-watch-snakemake", daemon=True)
    thread.start()
    return thread


def stop_if_orphaned(before_exit=None) -> None:
    """End this job (exit status 1) if the Snakemake that started it is gone, after
    ``before_exit``; called right before an output is put in place.  The watcher polls
    every ``interval``, and an epoch that ended inside that window would otherwise
    still publish its checkpoint (seen: a 0.5 s test epoch)."""
    mark = os.environ.get(SNAKEMAKE_ENV)
    if mark and not alive(mark):
        if before_exit is not None:
            before_exit()
        _gone(mark, None)


def _gone(mark: str, on_gone) -> None:
    print(f"[featevo] the Snakemake that started this job (pid {mark.partition(':')[0]}) is gone; the job stops "
          "here and writes nothing more. Rerun snakemake (with --rerun-incomplete if it asks)",
          file=sys.stderr, flush=True)
    if on_gone is not None:
        on_gone()
        return
    _end_job()


def _children(pid: int) -> list[int]:
    """The processes whose parent (field 4 of their stat) is pid."""
    out = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _end_job() -> None:
    """Exit 1, taking along what the job started (its children and theirs)."""
    import signal

    stack = _children(os.getpid())
    while stack:
        pid = stack.pop()
        stack += _children(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(1)


def eta(done: int, total: int, elapsed: float) -> str:
    """What a progress line says is left: the ``total - done`` steps (batches, ascent
    steps) still to go at the rate measured over the ``done`` in ``elapsed`` seconds,
    as ``ETA 3 min 20 s`` (``ETA 2 h 05 min``, ``ETA 1 d 3 h``); empty once all are done."""
    if done <= 0 or done >= total:
        return ""
    left = round((total - done) * elapsed / done)
    if left < 60:
        return f"ETA {left} s"
    if left < 3600:
        return f"ETA {left // 60} min {left % 60:02d} s"
    if left < 86400:
        return f"ETA {left // 3600} h {left % 3600 // 60:02d} min"
    return f"ETA {left // 86400} d {left % 86400 // 3600} h"


def configure_logging() -> None:
    """Logging configured once, at a stage's entry (``python -m featevo <stage>`` or
    ``python -m featevo.<stage>``): every stage logs under ``featevo.<stage>``, with the
    date and time (a CPU run of the paper lasts days), to standard output (its job's log)."""
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    logging.captureWarnings(True)

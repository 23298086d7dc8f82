"""The job's tie to the Snakemake that started it: a job stops, writing nothing more,
as soon as its Snakemake is gone.

Snakemake does not do this itself: a Snakemake killed by SIGKILL (the OOM killer, a
closed SSH session's kill, ``kill -9``) leaves its running jobs running (measured with
Snakemake 9.27: the job's shell and its child outlived it), and one that kept going
would write outputs after the next run had started or judged them.

Standard library only: the Snakefile and every job (``python -m featevo``) import it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

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

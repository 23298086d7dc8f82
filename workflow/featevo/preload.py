"""Every rule's launcher: run a stage, in a process forked from a warm server when asked.

``import torch`` costs about 1.7 s on a 2-core CPU, more than half of a demo
epoch's work, and every job of the workflow pays it.  Every rule runs
``python -m featevo.preload featevo.<stage> ARGS``; the config's ``preload``
reaches it as ``FEATEVO_PRELOAD`` in the environment (so turning it on or off
changes no rule's command and reruns nothing):

* ``FEATEVO_PRELOAD=0`` (or unset): the stage runs in this process, as
  ``python -m featevo.<stage> ARGS`` would run it;
* ``FEATEVO_PRELOAD=1``: a small client (standard library only) hands its
  arguments, working folder, environment and its stdin/stdout/stderr to a
  server of this user, which forks a child that runs the stage.  The server
  starts on first use and exits when idle.

What the server trusts, and what it does not:

* it lives in this user's private runtime folder (``$XDG_RUNTIME_DIR/featevo``,
  else ``featevo-<uid>`` in the temporary folder), created with mode 0700 or
  refused when it is a link or another user's or open to others
  (:func:`featevo.runtime.private_dir`); its lock and log are opened without
  following links;
* it serves only processes of its own user (the peer's uid, from the kernel
  by ``SO_PEERCRED``), and the client talks only to a server of its own user;
* it runs only the workflow's stage modules (:data:`STAGES`), never a module
  named by the request;
* its installed code and packages are stamped when it starts: a client whose
  stamp differs (a package or featevo upgraded, another interpreter) talks to
  another server, and a server that finds its stamp changed stops serving.

What stays as without it:

* the stage's code is read from disk by each child (the server imports only
  third-party libraries), so an edit takes effect at the next job;
* the child starts from the job's environment as a fresh process would see it:
  its temporary folder, and torch's thread count from ``OMP_NUM_THREADS``
  (Snakemake sets it per job); numpy's BLAS, loaded once by the server, stays
  single-threaded (the stages compute in torch);
* output goes to the client's own stdout and stderr (the rule's log file);
* the client's exit status is the stage's; SIGTERM, SIGINT or SIGHUP to the
  client is passed to the stage's process group;
* no job outlives what Snakemake believes: the stage runs in a process group of
  its own, killed whole when its client goes (even by SIGKILL) or when the
  server dies (the client then kills it and waits for it before returning 1);
* when no server can be reached, the client runs the stage itself.

``FEATEVO_PRELOAD_DIR`` overrides the runtime folder (checked the same way);
``FEATEVO_PRELOAD_IDLE`` is the server's idle timeout in seconds (default 120).
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

from featevo import runtime

# the workflow's stage modules: the only ones a server runs
STAGES = frozenset(f"featevo.{m}" for m in (
    "extract", "standin", "train", "visualize", "figures", "tables", "metrics", "claims", "explain", "weights"))
# for tests only: more modules the server may run, read from the server's own environment at its start
EXTRA_ENV = "FEATEVO_PRELOAD_EXTRA_STAGES"
# imported by the server before it forks anything; never featevo's own modules
PRELOAD = ("numpy", "torch", "torch._dynamo", "pandas", "PIL.Image", "scipy.ndimage", "matplotlib")
# The server's libraries start single-threaded, as the demo's jobs are: OpenBLAS (numpy)
# and MKL read these once, when loaded, and their idle threads spin, so a server with
# the machine's default made every forked job 10% slower (measured on the demo's DAG).
# Each child then sets torch's threads from its own job's environment.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
HEADER = 8  # bytes of the length prefix of each message
_SERVER_CWD = os.getcwd()


def allowed_stages(env=os.environ) -> frozenset[str]:
    extra = {m for m in env.get(EXTRA_ENV, "").split(",") if m}
    return STAGES | extra


def stamp() -> str:
    """What the server's code depends on: the interpreter, the import path, this
    file, and every site-packages folder (its mtime changes when a package is
    installed, removed or upgraded), without importing anything."""
    parts = [sys.executable, os.environ.get("PYTHONPATH", ""), os.environ.get(EXTRA_ENV, "")]
    for p in [__file__, runtime.__file__, *sys.path]:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if p in (__file__, runtime.__file__) or "-packages" in p:
            parts.append(f"{p}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def folder() -> Path:
    given = os.environ.get("FEATEVO_PRELOAD_DIR")
    if given:
        return runtime.private_dir(given, hint="set FEATEVO_PRELOAD_DIR to a folder of your own")
    return runtime.runtime_dir()


def socket_path(stamp_: str | None = None) -> Path:
    """One server per user and stamp."""
    return folder() / f"preload-{stamp_ or stamp()}.sock"


def _send(conn: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    msg = len(data).to_bytes(HEADER, "big") + data
    if fds:
        socket.send_fds(conn, [msg], fds)
    else:
        conn.sendall(msg)


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _recv(conn: socket.socket) -> dict:
    return json.loads(_recv_exact(conn, int.from_bytes(_recv_exact(conn, HEADER), "big")))


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end, as the kernel recorded it (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


# ---- client ---------------------------------------------------------------------------


def _connect(path: Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        s.close()
        return None
    uid = peer_uid(s)
    if uid != os.getuid():
        s.close()
        raise runtime.UnsafePath(f"the preload server at {path} runs as {runtime.user_name(uid)}, not as you; "
                                 "featevo will not talk to it. Remove that socket")
    return s


def _start_server(path: Path) -> subprocess.Popen:
    fd = runtime.open_in(path.parent, path.with_suffix(".log").name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    env = {**os.environ, **{k: "1" for k in THREAD_VARS}}  # not one job's counts: see THREAD_VARS
    try:
        return subprocess.Popen([sys.executable, "-m", "featevo.preload", "--serve", str(path)],
                                stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
                                close_fds=True, env=env)
    finally:
        os.close(fd)


def connect(stamp_: str, wait: float = 60.0) -> socket.socket | None:
    """A connection to this user's server for ``stamp_``, started if need be; None when
    it could not start (the reason is in its log, beside the socket)."""
    path = socket_path(stamp_)
    conn = _connect(path)
    if conn:
        return conn
    server = _start_server(path)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
        conn = _connect(path)
        if conn:
            return conn
        if server.poll() not in (None, 0):  # it failed (0: another server of ours is starting)
            print(f"[preload] the server could not start; see {path.with_suffix('.log')}", file=sys.stderr,
                  flush=True)
            return None
    return None


def run_here(module: str, args: list[str]) -> int:
    """The stage in this process, as ``python -m module args`` would run it; it ends
    at once if the Snakemake that started it is gone (:func:`runtime.watch_snakemake`)."""
    runtime.watch_snakemake()
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # SystemExit("message"), as the interpreter does
    return 1


def _signal_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to a job's process group; False when none of it is left (or the
    group is no longer ours, so nothing of the job is)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_group(pgid: int, timeout: float = 30.0) -> None:
    """SIGKILL a job's process group and wait until none of it is left."""
    deadline = time.monotonic() + timeout
    while _signal_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def client(module: str, args: list[str]) -> int:
    if module not in allowed_stages():
        print(f"featevo.preload: {module!r} is not a stage of the workflow ({', '.join(sorted(STAGES))})",
              file=sys.stderr)
        return 2
    if os.environ.get("FEATEVO_PRELOAD", "0") != "1":
        return run_here(module, args)
    my_stamp = stamp()
    try:
        conn = connect(my_stamp)
    except runtime.UnsafePath as exc:
        print(f"[preload] {exc}; running here", file=sys.stderr, flush=True)
        return run_here(module, args)
    if conn is None:
        print("[preload] no server could be reached; running here", file=sys.stderr, flush=True)
        return run_here(module, args)
    with conn:
        _send(conn, {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ),
                     "stamp": my_stamp}, [0, 1, 2])
        reply: dict = {}
        try:
            reply = _recv(conn)
            pid = int(reply["pid"])
        except (ConnectionError, KeyError, ValueError, TypeError):
            why = f": {reply['refused']}" if "refused" in reply else ""
            print(f"[preload] the server did not start the job{why}; running here", file=sys.stderr, flush=True)
            return run_here(module, args)

        def forward(signum, frame):
            _signal_group(pid, signum)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        try:
            code = _recv(conn)["exit"]
        except (ConnectionError, KeyError, ValueError):
            # the server died: its job must not outlive this client, which Snakemake waits on
            _kill_group(pid)
            print(f"[preload] lost the server while job {pid} ran; the job was killed", file=sys.stderr,
                  flush=True)
            return 1
    return 128 - code if code < 0 else code  # killed by signal n: 128 + n, as a shell reports it


# ---- server ---------------------------------------------------------------------------


def _die_with_parent(server: int) -> None:
    """Linux: SIGKILL this process when the server that forked it dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != server:  # it died before the line above took effect
        os._exit(1)


def _fresh_process_state(env: dict) -> None:
    """What a fresh interpreter would have read from the job's environment at start."""
    import tempfile

    tempfile.tempdir = None  # tempfile caches the folder: read TMPDIR again
    torch = sys.modules.get("torch")
    if torch is not None:
        threads = env.get("OMP_NUM_THREADS") or env.get("MKL_NUM_THREADS") or ""
        # unset: what a fresh process's OpenMP takes, one thread per CPU this process may use
        torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0
                              else len(os.sched_getaffinity(0)))


def _child(conn: socket.socket, request: dict, fds: list[int], close: list[int], server: int) -> None:
    """In the forked child: become the stage's process and run it."""
    code = 1
    try:
        os.setsid()  # its own session and process group, killed whole by the server or the client
        _die_with_parent(server)
        for fd in close:
            try:
                os.close(fd)
            except OSError:
                pass
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        os.chdir(request["cwd"])
        if sys.path and sys.path[0] == _SERVER_CWD:  # `python -m` puts the working folder first
            sys.path[0] = request["cwd"]
        os.environ.clear()
        os.environ.update(request["env"])
        _fresh_process_state(request["env"])
        code = run_here(request["module"], request["args"])
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _refuse(conn: socket.socket, why: str) -> None:
    print(f"[preload] refused: {why}", flush=True)
    try:
        _send(conn, {"refused": why})
    except OSError:
        pass
    conn.close()


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    conn.settimeout(10)
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    try:
        n = int.from_bytes(msg[:HEADER], "big")
        data = msg[HEADER:]
        if len(data) < n:  # the rest of a request longer than the first read
            data += _recv_exact(conn, n - len(data))
        conn.settimeout(None)
        request = json.loads(data)
        if len(fds) != 3 or not isinstance(request, dict):
            raise ValueError("not a job request")
        return request, fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def serve(path: Path, idle: float) -> None:
    import fcntl
    import select

    path = Path(path)
    runtime.private_dir(path.parent)  # as the client checked it: still this user's alone
    lock_fd = runtime.open_in(path.parent, path.with_suffix(".lock").name, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server of this user and stamp is starting or running
    start = time.monotonic()
    my_stamp = stamp()
    allowed = allowed_stages()
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        pass
    path.unlink(missing_ok=True)  # a stale socket of a server that died (in our private folder)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket itself: this user only, on top of the private folder
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(64)
    me = os.getpid()
    print(f"[preload] {path} ready in {time.monotonic() - start:.1f} s (pid {me})", flush=True)
    jobs: dict[int, socket.socket] = {}  # child pid (= its process group) -> its client's connection
    last = time.monotonic()
    accepting = True
    try:
        while jobs or (accepting and time.monotonic() - last < idle):
            ready, _, _ = select.select([listener, *jobs.values()] if accepting else [*jobs.values()], [], [], 0.1)
            for r in ready:
                if r is listener:
                    conn, _ = listener.accept()
                    uid = peer_uid(conn)
                    if uid != os.getuid():
                        _refuse(conn, f"a process of {runtime.user_name(uid)} asked for a job")
                        continue
                    try:
                        request, fds = _read_request(conn)
                    except (OSError, ValueError):
                        conn.close()
                        continue
                    why, stale = None, False
                    if request.get("module") not in allowed:
                        why = f"{request.get('module')!r} is not a stage of the workflow"
                    elif request.get("stamp") != my_stamp or stamp() != my_stamp:
                        why, stale = "the installed code or packages changed since this server started", True
                    if why:
                        for fd in fds:
                            os.close(fd)
                        _refuse(conn, why)
                        if stale:  # serve no more; the running jobs finish
                            accepting = False
                            listener.close()
                            path.unlink(missing_ok=True)
                            break
                        continue
                    close = [listener.fileno(), lock_fd, *(c.fileno() for c in jobs.values())]
                    pid = os.fork()
                    if pid == 0:
                        _child(conn, request, fds, close + [conn.fileno()], me)
                    for fd in fds:
                        os.close(fd)
                    _send(conn, {"pid": pid})
                    jobs[pid] = conn
                else:  # a client hung up before its job ended: the job's whole group goes too
                    for pid, conn in list(jobs.items()):
                        if conn is r and not conn.recv(1, socket.MSG_PEEK):
                            _signal_group(pid)
            for pid, conn in list(jobs.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    _signal_group(pid)  # whatever the stage started and left behind
                    try:
                        _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                    except OSError:
                        pass
                    conn.close()
                    del jobs[pid]
                    last = time.monotonic()
    finally:
        for pid in jobs:
            _signal_group(pid)
        if accepting:
            listener.close()
            path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(Path(argv[1]), float(os.environ.get("FEATEVO_PRELOAD_IDLE", "120")))
        return 0
    if not argv or argv[0].startswith("-"):
        print("usage: python -m featevo.preload featevo.<stage> [args...]", file=sys.stderr)
        return 2
    return client(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""Run a stage in a process forked from a warm server that has torch imported.

``import torch`` costs about 1.7 s on a 2-core CPU, more than half of a demo
epoch's work, and every job of the workflow pays it.  With ``preload: true``
the rules call ``python -m featevo.preload featevo.<stage> ARGS``: a small
client (standard library only) hands its arguments, working folder,
environment and its stdin/stdout/stderr to a server of this user, which forks
a child that runs ``python -m featevo.<stage> ARGS`` as usual.  The server
starts on first use and exits when idle.

What stays as without it:

* the stage's code is read from disk by each child (the server imports only
  third-party libraries), so an edit takes effect at the next job;
* output goes to the client's own stdout and stderr (the rule's log file);
* the client's exit status is the stage's; SIGTERM, SIGINT or SIGHUP to the
  client is passed to the stage, and a client that dies (even by SIGKILL) takes
  its stage with it;
* when no server can be reached, the client runs the stage itself.

``FEATEVO_PRELOAD=0`` turns it off; ``FEATEVO_PRELOAD_DIR`` is where sockets
live (default: a per-user folder in the temporary directory);
``FEATEVO_PRELOAD_IDLE`` is the server's idle timeout in seconds (default 120).
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# imported by the server before it forks anything; never featevo's own modules
PRELOAD = ("numpy", "torch", "torch._dynamo", "pandas", "PIL.Image", "scipy.ndimage", "matplotlib")
HEADER = 8  # bytes of the length prefix of each message
_SERVER_CWD = os.getcwd()


def _folder() -> Path:
    path = Path(os.environ.get("FEATEVO_PRELOAD_DIR") or Path(tempfile.gettempdir()) / f"featevo-preload-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def socket_path() -> Path:
    """One server per interpreter, import path and installed torch."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    torch_stamp = ""
    if spec and spec.origin:
        st = os.stat(spec.origin)
        torch_stamp = f"{spec.origin}:{st.st_mtime_ns}"
    key = "|".join([sys.executable, os.environ.get("PYTHONPATH", ""), str(Path(__file__).resolve()), torch_stamp])
    return _folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock"


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


# ---- client ---------------------------------------------------------------------------


def _connect(path: Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return s
    except OSError:
        s.close()
        return None


def _start_server(path: Path) -> None:
    log = open(path.with_suffix(".log"), "ab")
    subprocess.Popen([sys.executable, "-m", "featevo.preload", "--serve", str(path)], stdin=subprocess.DEVNULL,
                     stdout=log, stderr=log, start_new_session=True, close_fds=True)
    log.close()


def connect(wait: float = 60.0) -> socket.socket | None:
    """A connection to this environment's server, started if need be."""
    path = socket_path()
    conn = _connect(path)
    if conn:
        return conn
    _start_server(path)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
        conn = _connect(path)
        if conn:
            return conn
    return None


def run_here(module: str, args: list[str]) -> int:
    """The stage in this process, as ``python -m module args`` would run it."""
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


def client(module: str, args: list[str]) -> int:
    if os.environ.get("FEATEVO_PRELOAD", "1") == "0":
        return run_here(module, args)
    conn = connect()
    if conn is None:
        print("[preload] no server could be reached; running here", file=sys.stderr, flush=True)
        return run_here(module, args)
    with conn:
        _send(conn, {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}, [0, 1, 2])
        try:
            pid = _recv(conn)["pid"]
        except (ConnectionError, KeyError, ValueError):
            print("[preload] the server did not start the job; running here", file=sys.stderr, flush=True)
            return run_here(module, args)

        def forward(signum, frame):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        try:
            code = _recv(conn)["exit"]
        except (ConnectionError, KeyError, ValueError):
            print(f"[preload] lost the server while job {pid} ran", file=sys.stderr, flush=True)
            return 1
    return 128 - code if code < 0 else code  # killed by signal n: 128 + n, as a shell reports it


# ---- server ---------------------------------------------------------------------------


def _child(conn: socket.socket, request: dict, fds: list[int], close: list[int]) -> None:
    """In the forked child: become the stage's process and run it."""
    code = 1
    try:
        for fd in close:
            try:
                os.close(fd)
            except OSError:
                pass
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        os.setsid()  # its own process group, as a job started by a shell
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
        code = run_here(request["module"], request["args"])
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: Path, idle: float) -> None:
    import fcntl
    import select

    lock = open(path.with_suffix(".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server of this environment is starting or running
    start = time.monotonic()
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
    path.unlink(missing_ok=True)  # a stale socket of a server that died
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    print(f"[preload] {path} ready in {time.monotonic() - start:.1f} s (pid {os.getpid()})", flush=True)
    jobs: dict[int, socket.socket] = {}  # child pid -> its client's connection
    last = time.monotonic()
    try:
        while jobs or time.monotonic() - last < idle:
            ready, _, _ = select.select([listener, *jobs.values()], [], [], 0.1)
            for r in ready:
                if r is listener:
                    conn, _ = listener.accept()
                    try:
                        conn.settimeout(10)
                        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                        n = int.from_bytes(msg[:HEADER], "big")
                        data = msg[HEADER:]
                        while len(data) < n:
                            data += conn.recv(n - len(data))
                        conn.settimeout(None)
                        request = json.loads(data)
                    except (OSError, ValueError):
                        conn.close()
                        continue
                    close = [listener.fileno(), lock.fileno(), *(c.fileno() for c in jobs.values())]
                    pid = os.fork()
                    if pid == 0:
                        _child(conn, request, fds, close + [conn.fileno()])
                    for fd in fds:
                        os.close(fd)
                    _send(conn, {"pid": pid})
                    jobs[pid] = conn
                else:  # a client hung up before its job ended: the job goes too
                    for pid, conn in list(jobs.items()):
                        if conn is r and not conn.recv(1, socket.MSG_PEEK):
                            os.kill(pid, signal.SIGKILL)
            for pid, conn in list(jobs.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    try:
                        _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                    except OSError:
                        pass
                    conn.close()
                    del jobs[pid]
                    last = time.monotonic()
    finally:
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

"""featevo.preload: stages forked from a warm server behave as if started alone."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import train_args
from featevo import preload
from snakemake_helpers import ROOT

PROBE = '''
import os, sys, time, tempfile, subprocess
print("ppid", os.getppid(), "args", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("PROBE"), flush=True)
print("to stderr", file=sys.stderr)
print("version", VERSION)
print("path0", sys.path[0])
print("tmp", tempfile.gettempdir())
import torch
print("threads", torch.get_num_threads(), flush=True)
if sys.argv[1:2] == ["fail"]:
    raise RuntimeError("boom")
if sys.argv[1:2] == ["exit"]:
    sys.exit(int(sys.argv[2]))
if sys.argv[1:2] == ["sleep"]:
    # a grandchild in the job's process group, as a stage's helper process would be
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(sys.argv[3], "w").write(f"{os.getpid()} {helper.pid}")
    time.sleep(float(sys.argv[2]))
    open(sys.argv[3] + ".done", "w").write("the job ran to its end")
'''


@pytest.fixture
def env(tmp_path):
    """A module of the test's own, allowed as a stage, and a server of the test's own."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "probe.py").write_text("VERSION = 1\n" + PROBE)
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), str(ROOT / "workflow")]),
         "FEATEVO_PRELOAD_DIR": str(tmp_path / "sock"), "FEATEVO_PRELOAD_IDLE": "3", "FEATEVO_PRELOAD": "1",
         preload.EXTRA_ENV: "probe"}
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", preload.runtime.SNAKEMAKE_ENV):
        e.pop(k, None)
    yield e
    # the server ends when idle: wait for it, so that no test leaves one behind
    deadline = time.monotonic() + 10
    while list((tmp_path / "sock").glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.2)


def run(env, *args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "featevo.preload", "probe", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, **kw)


def field(out, name):
    return next(line.split()[1] for line in out.splitlines() if line.startswith(name + " "))


def test_output_exit_status_cwd_and_environment_are_the_stage_s(env, tmp_path):
    first = run(env, "a", "b", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"args ['a', 'b'] cwd {tmp_path} env None" in first.stdout and "to stderr" in first.stderr
    second = run({**env, "PROBE": "x"}, "c", cwd=tmp_path / "mods")
    assert f"args ['c'] cwd {tmp_path / 'mods'} env x" in second.stdout
    assert f"path0 {tmp_path / 'mods'}" in second.stdout  # as `python -m` would have it
    # both were forked by the same warm server (its pid is their parent)
    assert field(first.stdout, "ppid") == field(second.stdout, "ppid") != str(os.getpid())
    assert run(env, "exit", "7").returncode == 7
    failed = run(env, "fail")
    assert failed.returncode == 1 and "RuntimeError: boom" in failed.stderr


def test_the_job_sees_its_own_temporary_folder_and_thread_count(env, tmp_path):
    """What Snakemake sets per job (TMPDIR, OMP_NUM_THREADS) counts, as in a fresh process."""
    warm = run(env)
    assert warm.returncode == 0, warm.stderr
    (tmp_path / "t1").mkdir()
    (tmp_path / "t2").mkdir()
    one = run({**env, "TMPDIR": str(tmp_path / "t1"), "OMP_NUM_THREADS": "1"})
    two = run({**env, "TMPDIR": str(tmp_path / "t2"), "OMP_NUM_THREADS": "2"})
    assert field(one.stdout, "ppid") == field(two.stdout, "ppid") == field(warm.stdout, "ppid")
    assert field(one.stdout, "tmp") == str(tmp_path / "t1") and field(two.stdout, "tmp") == str(tmp_path / "t2")
    assert field(one.stdout, "threads") == "1" and field(two.stdout, "threads") == "2"
    alone = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           env={k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}, capture_output=True,
                           text=True)
    assert field(warm.stdout, "threads") == alone.stdout.strip()  # unset: a fresh process's default


def test_an_edited_module_takes_effect_at_once(env, tmp_path):
    assert "version 1" in run(env).stdout
    (tmp_path / "mods" / "probe.py").write_text("VERSION = 2\n" + PROBE)
    assert "version 2" in run(env).stdout  # the server never imported it


def test_changed_packages_get_a_fresh_server_and_the_old_one_stops_serving(env, tmp_path):
    pkgs = tmp_path / "site-packages"  # stands for an installed package folder (a venv's site-packages)
    pkgs.mkdir()
    env = {**env, "PYTHONPATH": os.pathsep.join([env["PYTHONPATH"], str(pkgs)]), "FEATEVO_PRELOAD_IDLE": "60"}
    first = run(env)
    old_socket = next((tmp_path / "sock").glob("*.sock"))
    time.sleep(0.01)
    (pkgs / "newpkg.py").write_text("")  # a package installed: the folder's mtime changes
    second = run(env)
    assert second.returncode == 0 and field(first.stdout, "ppid") != field(second.stdout, "ppid")
    # a request to the old server (as from a client that computed its stamp before the upgrade) is refused
    reply = raw_request(old_socket, {"module": "probe", "args": [], "cwd": str(tmp_path), "env": env,
                                     "stamp": "anything"})
    assert "changed" in reply.get("refused", ""), reply
    deadline = time.monotonic() + 10
    while old_socket.exists() and time.monotonic() < deadline:  # it serves no more
        time.sleep(0.05)
    assert not old_socket.exists()
    os.kill(int(field(second.stdout, "ppid")), signal.SIGTERM)
    for sock in (tmp_path / "sock").glob("*.sock"):
        sock.unlink()


def raw_request(path, request):
    """Talk to a server as a client would, without the client's checks."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.settimeout(20)
    with s, open(os.devnull, "w") as null:
        preload._send(s, request, [null.fileno()] * 3)
        return preload._recv(s)


def test_only_the_workflow_s_stages_run(env, tmp_path):
    run(env)  # a warm server
    path = next((tmp_path / "sock").glob("*.sock"))
    (tmp_path / "mods" / "evil.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w')\n")
    reply = raw_request(path, {"module": "evil", "args": [], "cwd": str(tmp_path), "env": env,
                               "stamp": preload.stamp()})
    assert "not a stage of the workflow" in reply["refused"]
    time.sleep(0.5)
    assert not (tmp_path / "pwned").exists()
    # and the client names what it runs only among the stages
    out = subprocess.run([sys.executable, "-m", "featevo.preload", "evil"], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "not a stage of the workflow" in out.stderr
    assert not (tmp_path / "pwned").exists()


def wait_for(path, timeout=20):
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [int(x) for x in path.read_text().split()]


def gone(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 128 + 15), (signal.SIGKILL, -9)])
def test_a_stopped_client_stops_its_whole_job(env, tmp_path, sig, status):
    pid_file = tmp_path / "pid"
    run(env)  # a warm server
    client = subprocess.Popen([sys.executable, "-m", "featevo.preload", "probe", "sleep", "60", str(pid_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job = wait_for(pid_file)
    client.send_signal(sig)
    assert client.wait(10) == status
    assert gone(job), f"job {job} still runs after its client got {sig!r}"


def test_a_server_that_dies_takes_its_job_with_it_before_the_client_returns(env, tmp_path):
    pid_file = tmp_path / "pid"
    first = run(env)
    server = int(field(first.stdout, "ppid"))
    client = subprocess.Popen([sys.executable, "-m", "featevo.preload", "probe", "sleep", "3", str(pid_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    job = wait_for(pid_file)
    os.kill(server, signal.SIGKILL)
    assert client.wait(20) == 1
    assert "lost the server" in client.stderr.read()
    assert gone(job, timeout=0.5), "the job outlived its client"  # already gone when the client returned
    time.sleep(4)
    assert not (tmp_path / "pid.done").exists()  # it never wrote after Snakemake was told it failed


def test_off_or_unreachable_runs_the_stage_in_the_client(env, tmp_path):
    off = run({**env, "FEATEVO_PRELOAD": "0"}, "a")
    assert off.returncode == 0 and "args ['a']" in off.stdout
    assert field(off.stdout, "ppid") == str(os.getpid())  # the client's parent: this test
    assert not list((tmp_path / "sock").glob("*.sock"))  # no server was started


def test_a_real_stage_runs_through_it(env, tmp_path):
    out = subprocess.run([sys.executable, "-m", "featevo.preload", "featevo.train", "epoch", "--data",
                          str(tmp_path / "none"), "--previous", str(tmp_path / "none.pt"), "--out",
                          str(tmp_path / "x.pt"), "--optim-out", str(tmp_path / "x.optim.pt"), "--metrics",
                          str(tmp_path / "x.json"), *train_args("epoch")], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "none.pt does not exist" in out.stderr, out.stderr[-2000:]
    assert "usage: train.py" in subprocess.run([sys.executable, "-m", "featevo.preload", "featevo.train", "-h"],
                                              env=env, capture_output=True, text=True).stdout


def test_a_job_ends_when_the_snakemake_that_started_it_is_gone(env, tmp_path):
    """Snakemake killed by SIGKILL leaves its jobs running; ours stop on their own."""
    pid_file = tmp_path / "pid"
    for on in ("1", "0"):  # forked from the server, and in the launcher's own process
        fake_snakemake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        mark = f"{fake_snakemake.pid}:{preload.runtime.process_start(fake_snakemake.pid)}"
        pid_file.unlink(missing_ok=True)
        job = subprocess.Popen([sys.executable, "-m", "featevo.preload", "probe", "sleep", "30", str(pid_file)],
                               env={**env, "FEATEVO_PRELOAD": on, preload.runtime.SNAKEMAKE_ENV: mark},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(pid_file)
        fake_snakemake.kill()
        fake_snakemake.wait()
        assert job.wait(10) == 1
        assert "is gone" in job.stderr.read()
        # a job started after its Snakemake died does not start at all
        late = run({**env, "FEATEVO_PRELOAD": on, preload.runtime.SNAKEMAKE_ENV: mark})
        assert late.returncode == 1 and "is gone" in late.stderr and "ppid" not in late.stdout
    assert not (tmp_path / "pid.done").exists()
    # outside Snakemake (no mark) nothing is watched
    assert run({**env, "FEATEVO_PRELOAD": "0"}).returncode == 0


def test_a_gone_snakemake_finds_the_job_s_children_and_theirs():
    """What _end_job kills: the job's children, found by their parent in /proc, and theirs."""
    code = ("import subprocess, time; p = subprocess.Popen(['sleep', '30']); print(p.pid, flush=True); "
            "time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grandchild = int(child.stdout.readline())
    try:
        assert child.pid in preload.runtime._children(os.getpid())
        assert preload.runtime._children(child.pid) == [grandchild]
        assert preload.runtime.process_start(grandchild) is not None
    finally:
        child.kill()
        child.wait()
        os.kill(grandchild, signal.SIGKILL)
    assert preload.runtime._children(child.pid) == []

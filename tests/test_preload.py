"""featevo.preload: stages forked from a warm server behave as if started alone."""

import os
import signal
import subprocess
import sys
import time

import pytest

from snakemake_helpers import ROOT

PROBE = '''
import os, sys, time
print("ppid", os.getppid(), "args", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("PROBE"), flush=True)
print("to stderr", file=sys.stderr)
print("version", VERSION)
print("path0", sys.path[0])
if sys.argv[1:2] == ["fail"]:
    raise RuntimeError("boom")
if sys.argv[1:2] == ["exit"]:
    sys.exit(int(sys.argv[2]))
if sys.argv[1:2] == ["sleep"]:
    open(sys.argv[3], "w").write(str(os.getpid()))
    time.sleep(float(sys.argv[2]))
'''


@pytest.fixture
def env(tmp_path):
    """A module of the test's own on the import path, and a server of the test's own."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "probe.py").write_text("VERSION = 1\n" + PROBE)
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), str(ROOT / "workflow")]),
         "FEATEVO_PRELOAD_DIR": str(tmp_path / "sock"), "FEATEVO_PRELOAD_IDLE": "3"}
    e.pop("FEATEVO_PRELOAD", None)
    yield e
    # the server ends when idle: wait for it, so that no test leaves one behind
    deadline = time.monotonic() + 10
    while list((tmp_path / "sock").glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.2)


def run(env, *args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "featevo.preload", "probe", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, **kw)


def test_output_exit_status_cwd_and_environment_are_the_stage_s(env, tmp_path):
    first = run(env, "a", "b", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"args ['a', 'b'] cwd {tmp_path} env None" in first.stdout and "to stderr" in first.stderr
    second = run({**env, "PROBE": "x"}, "c", cwd=tmp_path / "mods")
    assert f"args ['c'] cwd {tmp_path / 'mods'} env x" in second.stdout
    assert f"path0 {tmp_path / 'mods'}" in second.stdout  # as `python -m` would have it
    # both were forked by the same warm server (its pid is their parent)
    ppid = lambda out: out.split()[1]  # noqa: E731
    assert ppid(first.stdout) == ppid(second.stdout) != str(os.getpid())
    assert run(env, "exit", "7").returncode == 7
    failed = run(env, "fail")
    assert failed.returncode == 1 and "RuntimeError: boom" in failed.stderr


def test_an_edited_module_takes_effect_at_once(env, tmp_path):
    assert "version 1" in run(env).stdout
    (tmp_path / "mods" / "probe.py").write_text("VERSION = 2\n" + PROBE)
    assert "version 2" in run(env).stdout  # the server never imported it


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 128 + 15), (signal.SIGKILL, -9)])
def test_a_stopped_client_stops_its_stage(env, tmp_path, sig, status):
    pid_file = tmp_path / "pid"
    run(env)  # a warm server
    client = subprocess.Popen([sys.executable, "-m", "featevo.preload", "probe", "sleep", "60", str(pid_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    stage = int(pid_file.read_text())
    client.send_signal(sig)
    assert client.wait(10) == status
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(stage, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"stage {stage} still runs after its client got {sig!r}")


def test_off_or_unreachable_runs_the_stage_in_the_client(env, tmp_path):
    off = run({**env, "FEATEVO_PRELOAD": "0"}, "a")
    assert off.returncode == 0 and "args ['a']" in off.stdout
    assert off.stdout.split()[1] == str(os.getpid())  # the client's parent: this test
    assert not list((tmp_path / "sock").glob("*.sock"))  # no server was started


def test_a_real_stage_runs_through_it(env, tmp_path):
    out = subprocess.run([sys.executable, "-m", "featevo.preload", "featevo.train", "epoch", "--data",
                          str(tmp_path / "none"), "--previous", str(tmp_path / "none.pt"), "--out",
                          str(tmp_path / "x.pt"), "--metrics", str(tmp_path / "x.json")],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "none.pt does not exist" in out.stderr
    assert "usage: train.py" in subprocess.run([sys.executable, "-m", "featevo.preload", "featevo.train", "-h"],
                                              env=env, capture_output=True, text=True).stdout

"""A second user of the same machine (the `nobody` account) cannot subvert a run.

Each test plays the other user with `setpriv`, as CI (root) can; elsewhere they
are skipped.  The shared temporary folder is played by a fresh 1777 folder.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from featevo import device, preload, runtime
from snakemake_helpers import ROOT

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"),
                                reason="plays a second user with setpriv: needs root")


def as_nobody(args, env=None, **kw):
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *map(str, args)]
    return subprocess.Popen(cmd, env=env, **kw)


def nobody_py(code, env=None, **kw):
    return as_nobody([sys.executable, "-c", textwrap.dedent(code)],
                     env={**(env or os.environ), "PYTHONPATH": str(ROOT / "workflow")}, **kw)


@pytest.fixture(scope="module", autouse=True)
def nobody_reaches_the_checkout():
    """The second user runs this checkout's code with this interpreter, as a colleague would."""
    ok = as_nobody([sys.executable, "-c", "import torch, snakemake, featevo.preload"], cwd="/",
                   env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")}, stderr=subprocess.DEVNULL).wait()
    if ok != 0:
        pytest.skip(f"the nobody account cannot read {ROOT} or {sys.executable}")


@pytest.fixture
def shared():
    """Plays /tmp: world-writable and sticky, reachable by every user."""
    path = Path(tempfile.mkdtemp(prefix="featevo-shared-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def victim_file(tmp_path):
    path = tmp_path / "thesis.tex"
    path.write_text("precious")
    return path


@pytest.fixture
def env(tmp_path, shared):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "probe.py").write_text("import os, sys\nprint('ran', sys.argv[1:], os.getppid())\n")
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), str(ROOT / "workflow")]),
         "TMPDIR": str(shared), "FEATEVO_PRELOAD": "1", "FEATEVO_PRELOAD_IDLE": "5", preload.EXTRA_ENV: "probe"}
    for k in ("FEATEVO_PRELOAD_DIR", "XDG_RUNTIME_DIR", runtime.SNAKEMAKE_ENV):
        e.pop(k, None)
    return e


def probe(env, *args):
    return subprocess.run([sys.executable, "-m", "featevo.preload", "probe", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_runtime_folder_planted_by_another_user_is_refused_and_the_run_goes_on(env, shared):
    planted = shared / f"featevo-{os.getuid()}"
    assert as_nobody(["mkdir", "-m", "0777", planted]).wait() == 0
    out = probe(env, "x")
    assert out.returncode == 0 and "ran ['x']" in out.stdout
    assert "belongs to nobody" in out.stderr and "running here" in out.stderr, out.stderr
    assert os.listdir(planted) == []  # nothing of ours went into it: no socket, lock or log
    with pytest.raises(runtime.UnsafePath, match="belongs to nobody.*mode 0777"):
        runtime.private_dir(planted)


def test_our_own_folder_opened_to_others_is_refused_too(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    with pytest.raises(runtime.UnsafePath, match="mode 0777, which lets other users in"):
        runtime.private_dir(mine)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(runtime.UnsafePath, match="is a symbolic link"):
        runtime.private_dir(link)


def test_a_folder_planted_higher_up_is_refused_and_nothing_is_made_under_it(shared):
    """Not only the parent: any folder above ours that another user owns could be
    renamed away by that user. Missing folders are made only after the check."""
    planted = shared / "lab"
    assert as_nobody(["mkdir", "-m", "0755", planted]).wait() == 0
    with pytest.raises(runtime.UnsafePath, match=f"{planted}, above it, belongs to nobody"):
        runtime.private_dir(planted / "me" / "featevo")
    assert not (planted / "me").exists()
    made = runtime.private_dir(shared / "mine" / "deeper" / "featevo")  # missing folders of our own: 0700
    assert oct((shared / "mine").stat().st_mode & 0o777) == oct(0o700) and made.is_dir()


def test_a_planted_link_is_never_followed(shared, victim_file):
    before = victim_file.stat()
    assert as_nobody(["ln", "-s", victim_file, shared / "run.lock"]).wait() == 0
    with pytest.raises(runtime.UnsafePath, match="is a symbolic link \\(made by nobody\\)"):
        runtime.open_in(shared, "run.lock", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    after = victim_file.stat()
    assert victim_file.read_text() == "precious" and after.st_mtime_ns == before.st_mtime_ns


def test_the_server_serves_no_other_user(env, shared):
    private = shared / "ours"
    env = {**env, "FEATEVO_PRELOAD_DIR": str(private), "FEATEVO_PRELOAD_IDLE": "30"}
    first = probe(env, "warm")
    assert first.returncode == 0, first.stderr
    sock = next(private.glob("*.sock"))
    assert oct(sock.stat().st_mode & 0o777) == "0o600"  # the socket, too, is ours alone
    # a mistake that opens the way (folder and socket open to all): the uid check still holds
    private.chmod(0o755)
    sock.chmod(0o666)
    attacker = nobody_py(f"""
        import json, os, socket
        from featevo import preload
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect({str(sock)!r})
        preload._send(s, {{"module": "probe", "args": ["as-nobody"], "cwd": "/", "env": {{}},
                          "stamp": preload.stamp()}}, [0, 1, 2])
        print(json.dumps(preload._recv(s)))
        """, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = attacker.communicate(timeout=60)
    assert '"refused": "a process of nobody asked for a job"' in out, (out, err)
    assert "as-nobody" not in out
    os.kill(int(first.stdout.split()[-1]), 15)  # the server (the probe's parent)


def test_the_client_talks_to_no_other_user_s_server(env, tmp_path):
    private = tmp_path / "sock"
    env = {**env, "FEATEVO_PRELOAD_DIR": str(private)}
    path = Path(subprocess.run([sys.executable, "-c", "from featevo import preload; print(preload.socket_path())"],
                               env=env, capture_output=True, text=True, check=True).stdout.strip())
    # a listening socket at the client's path whose listener is nobody (as if planted)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    received = tmp_path / "received"
    received.touch()
    received.chmod(0o666)
    tmp_path.chmod(0o755)
    fake = as_nobody([sys.executable, "-c", textwrap.dedent(f"""
        import socket, sys
        s = socket.socket(fileno={s.fileno()})
        s.listen(1)
        s.settimeout(60)
        conn, _ = s.accept()
        conn.settimeout(5)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except OSError:
            pass
        open({str(received)!r}, "wb").write(data)
        """)], pass_fds=[s.fileno()])
    s.close()
    time.sleep(1.0)
    out = probe(env, "x")
    fake.wait(30)
    assert out.returncode == 0 and "ran ['x']" in out.stdout
    assert "runs as nobody, not as you" in out.stderr, out.stderr
    assert received.read_bytes() == b""  # it got nothing: no environment, no job


# ---- GPU claims ---------------------------------------------------------------------


def test_two_users_claim_different_gpus_and_a_waiting_job_names_the_holder(shared, capsys):
    locks = shared / "gpu-locks"
    holder = nobody_py(f"""
        import sys, time
        from featevo import device
        print(device.claim_gpu(["0", "1"], {str(locks)!r}, timeout=0), flush=True)
        time.sleep(60)
        """, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"  # the first user made the folder, sticky and open to all
        assert oct(locks.stat().st_mode & 0o7777) == "0o1777"
        assert device.claim_gpu(["0", "1"], locks, timeout=0) == 1  # the second user takes the other
        with pytest.raises(TimeoutError, match=r"GPU 0 by pid \d+ \(nobody\); GPU 1 by pid \d+ \(root\)"):
            device.claim_gpu(["0", "1"], locks, timeout=1.5)
        assert "waiting for a free GPU" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
        device.release_all()
    assert device.claim_gpu(["0", "1"], locks, timeout=0) == 0  # the OS dropped nobody's claim with its process
    device.release_all()


def test_a_planted_lock_folder_or_lock_link_is_refused(shared, victim_file):
    open_folder = shared / "gpu-locks"
    assert as_nobody(["mkdir", "-m", "0777", open_folder]).wait() == 0
    with pytest.raises(runtime.UnsafePath, match="belongs to nobody with mode 0777"):
        device.claim_gpu(["0"], open_folder, timeout=0)
    sticky = shared / "other-locks"
    assert as_nobody(["mkdir", "-m", "1777", sticky]).wait() == 0
    assert as_nobody(["ln", "-s", victim_file, sticky / "gpu-0.lock"]).wait() == 0
    with pytest.raises(runtime.UnsafePath, match="gpu-0.lock is a symbolic link"):
        device.claim_gpu(["0"], sticky, timeout=0)
    assert victim_file.read_text() == "precious"


# ---- two users' workflows side by side ----------------------------------------------


def colleague_python(shared):
    """The second user's own Python environment with the same packages: a venv of the
    system's interpreter of this version that reads this environment's site-packages
    (ours may come from a Python under a folder only its owner can enter)."""
    import site
    import sysconfig

    base = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if not base:
        pytest.skip("no system Python of this version for the second user")
    venv = shared / "colleague-venv"
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "featevo-colleague.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    subprocess.run(["chmod", "-R", "a+rX", venv], check=True)
    return venv / "bin" / "python"


def test_two_users_workflows_run_side_by_side(shared, tmp_path):
    """The tiny DAG's first epochs, as root and as nobody at once, each with preload on."""
    target = "results/tiny/train/scratch/seed0/epoch_001.pt"
    procs, dirs = [], []
    for who in ("root", "nobody"):
        work = shared / f"work-{who}"
        work.mkdir()
        shutil.copy(ROOT / "config.yaml", work / "config.yaml")
        env = {**os.environ, "TMPDIR": str(shared), "HOME": str(work), "MPLCONFIGDIR": str(work / "mpl"),
               "XDG_CACHE_HOME": str(work / "cache"), "FEATEVO_PRELOAD_IDLE": "5"}
        env.pop("XDG_RUNTIME_DIR", None)
        cmd = [Path(sys.executable).with_name("snakemake"), "-s", ROOT / "Snakefile", "--directory", work,
               "--cores", "1", "--configfile", ROOT / "tests" / "configs" / "tiny.yaml", "--config", "preload=True",
               "--", target]
        if who == "nobody":
            os.chown(work, NOBODY, NOBODY)
            cmd = [colleague_python(shared), "-m", "snakemake", *cmd[1:]]
            procs.append(as_nobody(cmd, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True))
        else:
            procs.append(subprocess.Popen(list(map(str, cmd)), env=env, cwd=work, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        dirs.append(work)
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]
    for work, uid in zip(dirs, (0, NOBODY)):
        assert (work / target).stat().st_uid == uid
        # each user's jobs went through a server of their own, in a folder of their own
        runtime_dir = shared / f"featevo-{uid}"
        st = runtime_dir.stat()
        assert st.st_uid == uid and st.st_mode & 0o777 == 0o700
        assert list(runtime_dir.glob("preload-*.log"))

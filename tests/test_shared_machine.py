"""A second user of the same machine (the `nobody` account) cannot subvert a run.

Each test plays the other user with `setpriv`, as CI (root) can; elsewhere they
are skipped.  The shared temporary folder is played by a fresh 1777 folder.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from featevo.jobs import device
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
    ok = as_nobody([sys.executable, "-c", "import torch, snakemake, featevo.jobs.device"], cwd="/",
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


def test_a_planted_link_is_never_followed(shared, victim_file):
    before = victim_file.stat()
    assert as_nobody(["ln", "-s", victim_file, shared / "run.lock"]).wait() == 0
    with pytest.raises(device.UnsafePath, match="is a symbolic link \\(made by nobody\\)"):
        device.open_in(shared, "run.lock", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    after = victim_file.stat()
    assert victim_file.read_text() == "precious" and after.st_mtime_ns == before.st_mtime_ns


# ---- GPU claims ---------------------------------------------------------------------


def test_two_users_claim_different_gpus_and_a_waiting_job_names_the_holder(shared, capsys):
    locks = shared / "gpu-locks"
    locks.mkdir()  # as an administrator would make it: root's, sticky and open to all
    locks.chmod(0o1777)
    holder = nobody_py(f"""
        import sys, time
        from featevo.jobs import device
        print(device.claim_gpu(["0", "1"], {str(locks)!r}, timeout=0), flush=True)
        time.sleep(60)
        """, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"  # the other user claims in root's folder
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
    with pytest.raises(device.UnsafePath, match="belongs to nobody with mode 0777"):
        device.claim_gpu(["0"], open_folder, timeout=0)
    # sticky and open to all, but its owner could delete the lock a job holds: refused too
    foreign = shared / "foreign-locks"
    assert as_nobody(["mkdir", "-m", "1777", foreign]).wait() == 0
    with pytest.raises(device.UnsafePath, match="belongs to nobody, who could delete the lock files"):
        device.claim_gpu(["0"], foreign, timeout=0)
    sticky = shared / "other-locks"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert as_nobody(["ln", "-s", victim_file, sticky / "gpu-0.lock"]).wait() == 0
    with pytest.raises(TimeoutError, match="gpu-0.lock is a symbolic link"):
        device.claim_gpu(["0"], sticky, timeout=0)
    assert victim_file.read_text() == "precious"
    assert device.claim_gpu(["0", "1"], sticky, timeout=0) == 1  # the planted one skipped for the next GPU
    device.release_all()


def test_a_planted_fifo_or_unreadable_lock_neither_hangs_nor_double_books(shared):
    """Root plants a FIFO and a file only root may read; the other user's job skips both
    for the next GPU, and with none left gives up after gpu_wait naming them."""
    locks = shared / "locks"
    locks.mkdir()
    locks.chmod(0o1777)
    os.mkfifo(locks / "gpu-0.lock", 0o666)
    (locks / "gpu-1.lock").touch(0o600)
    (locks / "gpu-1.lock").chmod(0o600)
    job = nobody_py(f"""
        import time
        from featevo.jobs import device
        print(device.claim_gpu(["0", "1", "2"], {str(locks)!r}, timeout=0), flush=True)
        device.release_all()
        start = time.monotonic()
        try:
            device.claim_gpu(["0", "1"], {str(locks)!r}, timeout=1.0)
        except TimeoutError as exc:
            print(f"{{time.monotonic() - start:.1f}}", exc, flush=True)
        """, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = job.communicate(timeout=60)
    first, second = out.splitlines()[:2]
    assert first == "2", (out, err)
    seconds, message = second.split(" ", 1)
    assert float(seconds) < 10  # bounded by gpu_wait: the FIFO did not block the open
    assert "GPU 0 not usable" in message and "not a plain file" in message
    assert "GPU 1 not usable" in message and "cannot be opened" in message


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
    """The tiny DAG's first epochs, as root and as nobody at once, in one shared temporary folder."""
    target = "results/tiny/train/scratch/seed0/epoch_001.pt"
    procs, dirs = [], []
    for who in ("root", "nobody"):
        work = shared / f"work-{who}"
        work.mkdir()
        shutil.copy(ROOT / "config.yaml", work / "config.yaml")
        env = {**os.environ, "TMPDIR": str(shared), "HOME": str(work), "MPLCONFIGDIR": str(work / "mpl"),
               "XDG_CACHE_HOME": str(work / "cache")}
        env.pop("XDG_RUNTIME_DIR", None)
        cmd = [Path(sys.executable).with_name("snakemake"), "-s", ROOT / "Snakefile", "--directory", work,
               "--cores", "1", "--configfile", ROOT / "tests" / "configs" / "tiny.yaml", "--", target]
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

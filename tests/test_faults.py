"""A training job killed mid-epoch loses that epoch and nothing else."""

import os
import signal
import subprocess
import sys

import pytest
import torch

from conftest import train_settings, write_subset
from featevo.stages import train as train_stage
from featevo.models.checkpoint import load_checkpoint


@pytest.fixture
def data(tmp_path):
    return write_subset(tmp_path / "data", n_train=480, n_val=12)


def epoch_args(data, prev, out):
    state = [] if prev.name.endswith("000.pt") else ["--previous-optim", str(prev.with_suffix(".optim.pt"))]
    return ["epoch", "--experiment", "x", "--data", str(data), "--previous", str(prev), "--out", str(out),
            "--optim-out", str(out.with_suffix(".optim.pt")), "--metrics", str(out.with_suffix(".json")), "--seed",
            "0", "--settings", train_settings(train={"batch_size": 4}), "--threads", "1", *state]


def chain(data, folder):
    folder.mkdir()
    train_stage.main(["init", "--data", str(data), "--out", str(folder / "epoch_000.pt"),
                "--metrics", str(folder / "epoch_000.json"), "--seed", "0",
                "--settings", train_settings(model={"width_divisor": 16, "pool_size": 1})])
    train_stage.main(epoch_args(data, folder / "epoch_000.pt", folder / "epoch_001.pt"))


def test_kill_mid_epoch_then_rerun_equals_an_uninterrupted_run(tmp_path, data):
    # uninterrupted: epochs 1 and 2
    chain(data, tmp_path / "ref")
    train_stage.main(epoch_args(data, tmp_path / "ref" / "epoch_001.pt", tmp_path / "ref" / "epoch_002.pt"))
    # interrupted: epoch 2 killed (SIGKILL, as a preempted or cancelled job) after its first progress line
    run = tmp_path / "run"
    chain(data, run)
    proc = subprocess.Popen([sys.executable, "-m", "featevo", "train",
                             *epoch_args(data, run / "epoch_001.pt", run / "epoch_002.pt")],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stdout:
        if "epoch 2 batch" in line:
            break
    else:
        pytest.fail("epoch 2 printed no progress before it ended")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # nothing half-written is taken as complete (nor left behind); the last complete epoch keeps its state
    assert sorted(p.name for p in run.iterdir()) == ["epoch_000.json", "epoch_000.pt", "epoch_001.json",
                                                     "epoch_001.optim.pt", "epoch_001.pt"]
    # rerunning the same command continues from epoch 1 and gives the uninterrupted weights
    train_stage.main(epoch_args(data, run / "epoch_001.pt", run / "epoch_002.pt"))
    ours, ref = load_checkpoint(run / "epoch_002.pt")["model"], load_checkpoint(tmp_path / "ref" / "epoch_002.pt")["model"]
    assert all(torch.equal(ours[k], ref[k]) for k in ref)



def test_a_job_whose_snakemake_died_publishes_nothing(tmp_path, data):
    """Even an epoch that ends before the watcher's next look: the check before the rename."""
    from featevo.jobs import watch

    run = tmp_path / "run"
    chain(data, run)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    mark = f"{gone.pid}:{watch.process_start(gone.pid)}"
    gone.wait()
    # the stage alone, without the entry's watcher (which would stop it before it trained)
    stage = ("import sys; from featevo.__main__ import configure_logging; from featevo.stages import train as train_stage; "
             "configure_logging(); sys.exit(train_stage.main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", stage, *epoch_args(data, run / "epoch_001.pt", run / "epoch_002.pt")],
                         env={**os.environ, watch.SNAKEMAKE_ENV: mark}, capture_output=True, text=True)
    assert out.returncode == 1 and "is gone" in out.stderr, out.stderr[-2000:]
    assert "epoch 2 batch" in out.stdout  # it trained, and then kept its result to itself
    # through the entry every rule runs, the watcher stops it before it starts
    out = subprocess.run([sys.executable, "-m", "featevo", "train",
                          *epoch_args(data, run / "epoch_001.pt", run / "epoch_002.pt")],
                         env={**os.environ, watch.SNAKEMAKE_ENV: mark}, capture_output=True, text=True)
    assert out.returncode == 1 and "is gone" in out.stderr and "epoch 2 batch" not in out.stdout
    assert sorted(p.name for p in run.iterdir()) == ["epoch_000.json", "epoch_000.pt", "epoch_001.json",
                                                     "epoch_001.optim.pt", "epoch_001.pt"]

# ---- through snakemake, against an uninterrupted run ------------------------------------

import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from snakemake_helpers import ROOT, snakemake  # noqa: E402

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
# scratch only matters here: epochs long enough (a few seconds) to be killed in the middle
FAULTS = {"seeds": [0], "data": {"images_per_class": 150, "val_per_class": 10},
          "standin": {"images_per_class": 150}, "experiments": {"scratch": {"epochs": 3}}}
# every checkpoint is a product, as in the workflow's rule all: a deleted one is rebuilt
TARGETS = [f"results/tiny/train/scratch/seed0/epoch_{e:03d}.pt" for e in (1, 2, 3)]


def faults_workdir(path, **train):
    import yaml

    path.mkdir()
    shutil.copy(ROOT / "config.yaml", path / "config.yaml")
    cfg = {**FAULTS, "train": {"batch_size": 8, **train}}
    (path / "faults.yaml").write_text(yaml.safe_dump(cfg))
    return path


def sm(workdir, *args, check=True):
    return snakemake(workdir, *args, "--", *TARGETS, configs=[TINY, workdir / "faults.yaml"], check=check)


def weights(workdir, epoch):
    ckpt = load_checkpoint(workdir / f"results/tiny/train/scratch/seed0/epoch_{epoch:03d}.pt")
    return ckpt["model"], ckpt["metrics"]["val_acc"], ckpt["metrics"]["val_loss"]


def same(a, b):
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:] == b[1:]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    work = faults_workdir(tmp_path_factory.mktemp("faults") / "reference")
    sm(work)
    return work, {e: weights(work, e) for e in (1, 2, 3)}


def featevo_jobs(workdir, stage="train"):
    """Processes still running a stage for this workdir."""
    out = subprocess.run(["pgrep", "-f", f"featevo {stage}"], capture_output=True, text=True).stdout
    found = []
    for pid in out.split():
        try:
            if str(workdir) in Path(f"/proc/{pid}/cwd").resolve(strict=True).as_posix():
                found.append(int(pid))
        except OSError:  # ended between pgrep and here
            pass
    return found


def kill_snakemake_once(work, configs, targets, log, marker, stage="train", timeout=300):
    """Start snakemake, SIGKILL it (alone, as a closed terminal or the OOM killer would) once
    ``log`` shows ``marker``, then wait until no ``stage`` job of ``work`` runs (at most 5 s);
    True if none does."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(ROOT / "Snakefile"), "--directory", str(work),
           "--cores", "2", "--configfile", *map(str, configs), "--", *targets]
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while not (log.is_file() and marker in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.is_file() and marker in log.read_text(), f"{log.name} never showed {marker!r}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while featevo_jobs(work, stage) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not featevo_jobs(work, stage)


def test_snakemake_killed_mid_epoch_then_rerun_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    _, reference = uninterrupted
    work = faults_workdir(tmp_path / "killed")
    log = work / "results/tiny/logs/train/scratch/seed0/epoch_002.log"
    # the orphaned job notices and stops within a second, writing nothing
    assert kill_snakemake_once(work, [TINY, work / "faults.yaml"], TARGETS, log, "epoch 2 batch"), \
        "a job outlived its Snakemake"
    assert "is gone" in log.read_text()
    folder = work / "results/tiny/train/scratch/seed0"
    assert not (folder / "epoch_002.pt").exists() and (folder / "epoch_001.optim.pt").is_file()
    # the documented recovery (docs/operations.md): unlock, rerun
    sm(work, "--unlock")
    sm(work, "--rerun-incomplete")
    assert all(same(weights(work, e), reference[e]) for e in (1, 2, 3))


@pytest.mark.parametrize("keep_state", [True, False])
def test_a_damaged_checkpoint_is_named_before_anything_is_deleted_and_its_rebuild_equals_the_first(
        tmp_path, uninterrupted, keep_state):
    _, reference = uninterrupted
    work = faults_workdir(tmp_path / "damaged", keep_optimizer_state=keep_state)
    sm(work)
    folder = work / "results/tiny/train/scratch/seed0"
    assert (folder / "epoch_001.optim.pt").exists() == keep_state  # temp() once epoch 2 used it
    epoch2 = folder / "epoch_002.pt"
    epoch3 = folder / "epoch_003.pt"
    third = epoch3.read_bytes()
    epoch2.write_bytes(epoch2.read_bytes()[:5000])  # cut short: a full disk, a copy interrupted
    proc = sm(work, check=False)
    assert proc.returncode != 0
    assert f"{epoch2.relative_to(work)} is damaged" in proc.stderr and "Delete it and rerun" in proc.stderr
    assert epoch3.read_bytes() == third  # nothing valid downstream was deleted
    epoch2.unlink()
    sm(work)
    assert all(same(weights(work, e), reference[e]) for e in (1, 2, 3))


def test_every_rule_runs_its_stage_as_a_job_that_watches_its_snakemake(tmp_path):
    """Whichever rule runs it, a stage runs as `python -m featevo <stage>`, the one entry
    that stops a job once its Snakemake is gone (the stand-in's job once went around it)."""
    import re

    work = faults_workdir(tmp_path / "dry")
    out = snakemake(work, "-n", "-p", configs=[TINY, work / "faults.yaml"]).stdout
    commands = [c for c in re.findall(r"^Shell command: (.*)$", out, re.M) if c != "None"]
    assert len(commands) > 20
    stages = set()
    for cmd in commands:
        calls = re.findall(r"python\S* (-\S+ \S+)( \w+)?", cmd)
        assert calls, cmd
        for flag, stage in calls:
            assert flag == "-m featevo", cmd
            stages.add(stage.strip())
    assert {"standin", "extract", "train", "visualize", "metrics", "claims", "figures", "tables"} <= stages


def test_snakemake_killed_while_the_stand_in_is_drawn_leaves_no_job_behind(tmp_path):
    work = faults_workdir(tmp_path / "standin")
    (work / "big.yaml").write_text("standin: {images_per_class: 3000}\ndata: {images_per_class: 150}\n")
    log = work / "results/tiny/logs/standin.log"
    assert kill_snakemake_once(work, [TINY, work / "faults.yaml", work / "big.yaml"], ["results/tiny/standin/main"],
                               log, "[standin] 1/4", stage="standin", timeout=120), \
        "the stand-in outlived its Snakemake"
    assert "is gone" in log.read_text()
    # the documented recovery works at once: unlock, rerun
    # (with the same configs: under the same run_name a smaller stand-in would be another run's)
    configs = [TINY, work / "faults.yaml", work / "big.yaml"]
    snakemake(work, "--unlock", "--", "results/tiny/standin/main", configs=configs)
    snakemake(work, "--rerun-incomplete", "--", "results/tiny/standin/main", configs=configs)

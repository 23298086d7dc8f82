"""A training job killed mid-epoch loses that epoch and nothing else."""

import os
import signal
import subprocess
import sys

import pytest
import torch

from conftest import write_subset
from featevo import train
from featevo.checkpoint import load_checkpoint


@pytest.fixture
def data(tmp_path):
    return write_subset(tmp_path / "data", n_train=480, n_val=12)


def epoch_args(data, prev, out):
    state = [] if prev.name.endswith("000.pt") else ["--previous-optim", str(prev.with_suffix(".optim.pt"))]
    return ["epoch", "--data", str(data), "--previous", str(prev), "--out", str(out), "--optim-out",
            str(out.with_suffix(".optim.pt")), "--metrics", str(out.with_suffix(".json")), "--batch-size", "4",
            "--threads", "1", *state]


def chain(data, folder):
    folder.mkdir()
    train.main(["init", "--data", str(data), "--out", str(folder / "epoch_000.pt"),
                "--metrics", str(folder / "epoch_000.json"), "--classes", "a", "b", "c",
                "--width-divisor", "16", "--pool-size", "1"])
    train.main(epoch_args(data, folder / "epoch_000.pt", folder / "epoch_001.pt"))


def test_kill_mid_epoch_then_rerun_equals_an_uninterrupted_run(tmp_path, data):
    # uninterrupted: epochs 1 and 2
    chain(data, tmp_path / "ref")
    train.main(epoch_args(data, tmp_path / "ref" / "epoch_001.pt", tmp_path / "ref" / "epoch_002.pt"))
    # interrupted: epoch 2 killed (SIGKILL, as a preempted or cancelled job) after its first progress line
    run = tmp_path / "run"
    chain(data, run)
    proc = subprocess.Popen([sys.executable, "-m", "featevo.train",
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
    train.main(epoch_args(data, run / "epoch_001.pt", run / "epoch_002.pt"))
    ours, ref = load_checkpoint(run / "epoch_002.pt")["model"], load_checkpoint(tmp_path / "ref" / "epoch_002.pt")["model"]
    assert all(torch.equal(ours[k], ref[k]) for k in ref)

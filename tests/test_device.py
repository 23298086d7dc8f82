import os

import pytest
import torch

from featevo import device
from featevo.device import autocast, claim_gpu, pick_device, visible_gpu_ids


def test_concurrent_jobs_claim_different_gpus_and_a_released_one_is_reused(tmp_path):
    locks = tmp_path / "locks"
    assert claim_gpu(2, locks) == 0
    assert claim_gpu(2, locks) == 1  # another open of the lock: as another job would
    with pytest.raises(TimeoutError, match="all 2 GPUs"):
        claim_gpu(2, locks, timeout=0)
    os.close(device._HELD.pop(0))  # the job on GPU 0 ends
    assert claim_gpu(2, locks, timeout=0) == 0
    device.release_all()


def test_claims_among_the_gpus_listed_in_cuda_visible_devices(tmp_path):
    locks = tmp_path / "locks"
    ids = visible_gpu_ids(2, {"CUDA_VISIBLE_DEVICES": "3, 5"})
    assert ids == ["3", "5"] and visible_gpu_ids(2, {}) == ["0", "1"]
    assert visible_gpu_ids(1, {"CUDA_VISIBLE_DEVICES": "GPU-8f2a,GPU-77"}) == ["GPU-8f2a"]
    # a job seeing 3,5 and another seeing 5,3 hold machine GPUs, not CUDA's positions
    assert claim_gpu(ids, locks) == 0  # machine GPU 3
    assert claim_gpu(["5", "3"], locks) == 0  # CUDA's cuda:0 for that job is machine GPU 5
    assert sorted(p.name for p in locks.iterdir()) == ["gpu-3.lock", "gpu-5.lock"]
    with pytest.raises(TimeoutError, match="GPU 3 by pid .*; GPU 5 by pid"):
        claim_gpu(ids, locks, timeout=0)
    device.release_all()


def test_the_wait_is_bounded_by_gpu_wait(tmp_path, monkeypatch):
    locks = tmp_path / "locks"
    assert claim_gpu(["0"], locks) == 0
    monkeypatch.setenv("FEATEVO_GPU_WAIT", "0.3")
    with pytest.raises(TimeoutError, match=r"after waiting 0 s \(gpu_wait\)"):
        claim_gpu(["0"], locks)
    device.release_all()


def test_cpu_without_cuda_and_a_clear_error_when_cuda_is_asked_for():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert pick_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_bf16_only_where_asked_or_on_cuda():
    cpu = torch.device("cpu")
    with autocast(cpu, "auto"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16

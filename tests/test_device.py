import pytest
import torch

from featevo import device
from featevo.device import autocast, claim_gpu, pick_device


def test_concurrent_jobs_claim_different_gpus_and_a_released_one_is_reused(tmp_path):
    assert claim_gpu(2, tmp_path) == 0
    assert claim_gpu(2, tmp_path) == 1  # another open of the lock: as another job would
    with pytest.raises(TimeoutError, match="all 2 GPUs"):
        claim_gpu(2, tmp_path, timeout=0)
    device._HELD.pop(0).close()  # the job on GPU 0 ends
    assert claim_gpu(2, tmp_path, timeout=0) == 0
    for fh in device._HELD:
        fh.close()
    device._HELD.clear()


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

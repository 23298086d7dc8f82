import os

import pytest
import torch

from featevo.jobs import device
from featevo.jobs.device import autocast, claim_gpu, pick_device, visible_gpu_ids


def test_concurrent_jobs_claim_different_gpus_and_a_released_one_is_reused(tmp_path):
    locks = tmp_path / "locks"
    assert claim_gpu(2, locks) == 0
    assert claim_gpu(2, locks) == 1  # another open of the lock: as another job would
    with pytest.raises(TimeoutError, match="no free GPU among 2"):
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


def test_cpu_without_cuda_and_a_clear_error_when_cuda_is_asked_for(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for var in device.GPU_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert pick_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_bf16_only_where_asked_or_on_cuda():
    cpu = torch.device("cpu")
    with autocast(cpu, "auto"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


def test_the_cuda_branch_of_pick_device_claims_among_the_listed_gpus(tmp_path, monkeypatch):
    """The first GPU run must not be the first time these lines run."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("FEATEVO_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert claim_gpu(["3"], tmp_path / "locks") == 0  # another job holds machine GPU 3
    assert pick_device("auto") == torch.device("cuda:1")  # so this one gets 5, CUDA's second
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    assert pick_device("auto") == torch.device("cuda:0")  # one GPU given by a scheduler: used as it is
    device.release_all()


def test_fp32_turns_tf32_off_and_deterministic_sets_what_cuda_needs(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.are_deterministic_algorithms_enabled())
    try:
        torch.backends.cudnn.allow_tf32 = True
        device.configure(torch.device("cpu"), None, deterministic=True, precision="fp32")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.use_deterministic_algorithms(before[2])


def test_the_pool_before_the_classifier_is_the_identity_at_its_size():
    from featevo.models.networks import AdaptivePool

    pool = AdaptivePool(7)
    x = torch.rand(2, 8, 7, 7)
    assert pool(x) is x  # no kernel at all: nothing nondeterministic on CUDA
    y = torch.rand(2, 8, 14, 14)
    assert torch.equal(pool(y), torch.nn.functional.adaptive_avg_pool2d(y, 7))


def test_our_vgg16_computes_what_torchvision_s_does():
    import torchvision

    from featevo.models.networks import ModelSpec, build_model

    ours = build_model(ModelSpec(num_classes=1000), seed=0).eval()
    tv = torchvision.models.vgg16().eval()
    tv.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), tv(x), atol=1e-6)


@pytest.mark.parametrize("var, value", [("CUDA_VISIBLE_DEVICES", "0"), ("SLURM_JOB_GPUS", "2"),
                                        ("SLURM_GPUS_ON_NODE", "1")])
def test_a_job_given_a_gpu_torch_cannot_use_stops_before_any_work_with_the_reason(tmp_path, monkeypatch, var, value):
    """device: auto fell back to the CPU whenever torch saw no CUDA, also in a SLURM job
    given a GPU (a 90-minute GPU job became days on the CPU, unsaid)."""
    from conftest import write_subset
    from featevo.stages import train as train_stage

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for v in device.GPU_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, value)
    with pytest.raises(RuntimeError, match=f"this job was given a GPU \\({var}={value}\\) but torch .* cannot "
                                           "use it: .*set device: cpu to run on the CPU on purpose"):
        pick_device("auto")
    assert pick_device("cpu").type == "cpu"  # on purpose
    data, out = write_subset(tmp_path / "d", 6, 3), tmp_path / "e0.pt"
    with pytest.raises(RuntimeError, match="given a GPU"):
        train_stage.main(["init", "--data", str(data), "--out", str(out), "--metrics", str(tmp_path / "e0.json"),
                    "--seed", "0", "--settings", '{"train": {"device": "auto"}, "model": {"width_divisor": 16}}'])
    assert not out.exists()


@pytest.mark.parametrize("env, given", [({}, None), ({"CUDA_VISIBLE_DEVICES": ""}, None),
                                        ({"CUDA_VISIBLE_DEVICES": "-1"}, None), ({"SLURM_GPUS_ON_NODE": "0"}, None),
                                        ({"CUDA_VISIBLE_DEVICES": "1,2"}, "CUDA_VISIBLE_DEVICES=1,2")])
def test_what_says_a_gpu_was_given(env, given):
    assert device.gpu_given(env) == given


def test_device_is_one_key_that_a_stage_may_override(tmp_path):
    """The top-level device reaches every stage that runs on one (train, visualize,
    methods), in the workflow and in a stage run by hand with --settings @FILE."""
    from featevo.config.settings import load_config, parse, shared_device

    assert shared_device({"device": "cpu", "visualize": {"device": "cuda:1", "steps": 3}}) == {
        "device": "cpu", "train": {"device": "cpu"}, "visualize": {"device": "cuda:1", "steps": 3},
        "methods": {"device": "cpu"}}
    assert shared_device({"train": {"lr": 1.0}}) == {"train": {"lr": 1.0}}  # none given: the stages' defaults
    (tmp_path / "c.yaml").write_text("device: cpu\nmethods: {device: auto}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert (cfg["train"]["device"], cfg["visualize"]["device"], cfg["methods"]["device"]) == ("cpu", "cpu", "auto")
    assert parse(f"@{tmp_path / 'c.yaml'}", "train epoch", exp="scratch").train.device == "cpu"
    assert parse(f"@{tmp_path / 'c.yaml'}", "explain").methods.device == "auto"


def test_the_workflow_s_gpu_resource_follows_the_one_device_key(tmp_path):
    import shutil

    from snakemake_helpers import ROOT, snakemake

    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    out = snakemake(tmp_path, "-n", "--config", "device=cpu", "visualize={device: auto}").stdout
    blocks = [b for b in out.split("\n\n") if "resources:" in b]
    gpu = {}
    for b in blocks:
        rule = next(line.split()[-1].rstrip(":") for line in b.splitlines()
                    if line.strip().startswith(("rule ", "localrule ")))  # a group's members are indented
        gpu.setdefault(rule, set()).add("gpu=1" in b)
    assert gpu["train_epoch"] == gpu["explain"] == {False} and gpu["visualize"] == {True}

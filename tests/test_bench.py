import json
import math
import sys

import torch

from conftest import ROOT, viz_settings

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench  # noqa: E402  (benchmarks/bench.py: a script beside the package, not in it)
from featevo.models.networks import ModelSpec, build_model  # noqa: E402
from featevo.optvis.render import activation_maximization, initial_images  # noqa: E402


def test_naive_baseline_computes_what_ours_computes():
    # a baseline that did other work would make the ratio meaningless
    spec = ModelSpec(num_classes=3, width_divisor=16, pool_size=1)
    args = viz_settings(step_size=0.05, median_every=3, median_size=3, restarts=1, steps=6)
    viz = args["recipe"]
    ours = activation_maximization(build_model(spec, seed=0), [0, 1, 2], **args)["images"]
    naive = bench.naive_visualization(build_model(spec, seed=0), [0, 1, 2], 32, 6, viz, torch.device("cpu"))
    assert naive.shape == ours.shape
    torch.testing.assert_close(naive, ours, atol=1e-4, rtol=0)
    start = initial_images(3, 32, viz["init"], viz["init_std"], viz["seed"])
    assert not torch.allclose(ours, start)  # the images did move


def test_scores_no_worse_tests_each_score_against_the_draw_s_noise():
    def scores(r, p, s, h, n=48):
        return {"per_image": {"R": [1.0] * int(r * n) + [0.0] * (n - int(r * n)), "p": [p] * n, "S": [s] * n,
                              "H": [h] * n}}
    theirs = scores(0.6, 0.6, 0.5, -0.4)
    assert bench.no_worse(scores(0.55, 0.6, 0.5, -0.4), theirs) == []  # 26 against 29 of 48: noise
    assert bench.no_worse(scores(0.2, 0.6, 0.5, -0.9), theirs) == ["R", "H"]
    assert bench.no_worse(scores(0.6, 0.5, 0.4, -0.2), theirs) == ["p", "S"]  # H closer to real is better


def test_step_flops_counts_forward_and_backward():
    spec = ModelSpec(num_classes=4, width_divisor=8, pool_size=1)
    train, viz = bench.step_flops(spec, 32, 1, train=True), bench.step_flops(spec, 32, 1, train=False)
    # training also computes the weights' gradients; visualization only the input's
    assert train > viz > 0
    first_conv = 2 * 3 * 9 * 8 * 32 * 32  # multiply-adds of conv1 alone, forward
    assert viz > 2 * first_conv


def test_bench_writes_every_row(tmp_path, capsys):
    out = tmp_path / "bench"
    assert bench.main(["--out", str(out), "--no-lucent", "--no-dag", "--no-full", "--viz-steps", "2",
                       "--per-class", "12", "--rounds", "1", "--fourier-steps", "2", "--fourier-epochs", "1",
                       "--fourier-per-class", "2", "--fourier-rounds", "1", "--atlas-channels", "2"]) == 0
    table = (out / "bench.md").read_text()
    for row in ("visualization, ours", "naive per-class loop", "ImageFolder", "matrix product",
                "training step, achieved", "demo epoch job: fixed cost", "Fourier images, ours",
                "real validation images' scores", "the network's forward and backward alone",
                "ours with visualize.precision: bf16", "atlas: 2 channels of features.28 in one batch",
                "atlas: the same channels one call each"):
        assert row in table, row
    assert "Machine: cpu" in table
    r = json.loads((out / "bench.json").read_text())
    for key in ("epoch_job_demo",):
        e = r[key]
        assert 0 < e["fixed_s"] < e["wall_s"] and 0 < e["fixed_fraction"] < 1
    assert r["training"]["ours_img_s"] > 0 and r["training"]["imagefolder_img_s"] > 0
    f = r["fourier"]
    assert f["images"] == 8 and f["scored"] == 16 and f["ours_img_s"] > 0 and 0 <= f["ours_scores"]["R"] <= 1
    # every speed is written, finite and positive; which is faster is the table's to say,
    # not a test's (at this toy size the first call's start-up decides it, and it differs
    # between CPUs); bf16 images are scored too
    for key in ("ours_img_s", "network_img_s", "ours_bf16_img_s"):
        assert math.isfinite(f[key]) and f[key] > 0, key
    for key in ("batched_channels_s", "one_at_a_time_channels_s"):
        assert math.isfinite(r["atlas"][key]) and r["atlas"][key] > 0, key
    assert 0 <= f["ours_bf16_scores"]["R"] <= 1
    assert "| measure | value | ratio | target |" in capsys.readouterr().out

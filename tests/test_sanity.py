"""The sanity check's re-initialized networks and the judge's floor."""

import numpy as np
import pytest
import torch

from featevo.models.networks import ModelSpec, build_model
from featevo.measures.sanity import LEVELS, reinitialized
from featevo.config.settings import Settings


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_layers_are_reinitialized_from_the_top(arch):
    spec = ModelSpec(arch=arch, num_classes=3, width_divisor=16 if arch == "vgg16" else 1,
                     pool_size=1 if arch == "vgg16" else 7)
    trained = build_model(spec, seed=0).state_dict()
    changed = {}
    for level in LEVELS:
        model = build_model(spec, seed=0)
        model, replaced = reinitialized(model, spec, level)
        state = model.state_dict()
        changed[level] = {k for k in state if not torch.equal(state[k], trained[k])}
        assert changed[level] <= set(replaced)
    head = "classifier.6." if arch == "vgg16" else "fc."
    assert {k.rsplit(".", 1)[0] + "." for k in changed["output"]} == {head}
    assert changed["output"] < changed["top_half"] < changed["all"]
    weights = {k for k, v in trained.items() if k.endswith(".weight") and v.ndim > 1}  # conv and linear
    assert weights <= changed["all"]
    first = "features.0.weight" if arch == "vgg16" else "conv1.weight"
    assert first not in changed["top_half"] and first in changed["all"]
    with pytest.raises(ValueError, match="unknown sanity level"):
        reinitialized(build_model(spec, seed=0), spec, "middle")


def test_the_random_network_starts_as_the_experiments_do():
    """configs/paper.yaml trains from Glorot's init (model.init): the sanity check's
    re-initialized network is drawn the same way, not by torchvision's constructor."""
    spec = ModelSpec(arch="vgg16", num_classes=3, width_divisor=16, pool_size=1)
    glorot, _ = reinitialized(build_model(spec, seed=0), spec, "all", init="glorot")
    assert torch.equal(glorot.state_dict()["features.0.weight"],
                       build_model(spec, seed=7919, init="glorot").state_dict()["features.0.weight"])
    plain, _ = reinitialized(build_model(spec, seed=0), spec, "all")
    assert not torch.equal(plain.state_dict()["features.0.weight"], glorot.state_dict()["features.0.weight"])


def test_the_judge_s_floor_reads_its_accuracy_and_the_starting_noise():
    from featevo.measures.judge import floor

    from featevo.data.inputs import MEAN, STD

    class Judge(torch.nn.Module):  # says "class 0" to anything grey, else the brighter of red or blue
        def forward(self, x):
            m = (x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)).mean(dim=(2, 3))
            return torch.stack([10 - 40 * (m[:, 0] - m[:, 2]).abs(), 8 * m[:, 0], 8 * m[:, 2]], 1)

    red, blue = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8)
    red[..., 0], blue[..., 2] = 250, 250
    images, labels = np.concatenate([red, blue]), np.array([0] * 4 + [1] * 4)
    recipe = Settings({"restarts": 3, "init": "noise", "init_std": 0.1, "seed": 0}, "visualize")
    df = floor(Judge(), [1, 2], ["red", "blue"], images, labels, recipe, 8, min_accuracy=0.8).set_index("class")
    assert df.loc["all", "accuracy"] == 1.0 and bool(df.loc["all", "testable"])
    # the noise is grey: the judge gives it to neither class's unit with confidence among the two
    assert df.loc["red", "noise_prob"] < 0.01 and df.loc["blue", "noise_prob"] < 0.01
    swapped = floor(Judge(), [2, 1], ["red", "blue"], images, labels, recipe, 8, 0.8).set_index("class")
    assert swapped.loc["all", "accuracy"] == 0.0 and not bool(swapped.loc["all", "testable"])


def test_the_levels_are_the_schema_s_and_a_config_draws_only_those_it_names(tmp_path):
    """sanity.levels: the registry (featevo.config.plan.SANITY_LEVELS) is the schema's enum; a run
    that names 'all' alone draws one re-initialized network per experiment; 'all' (the
    claims' control) cannot be left out."""
    import shutil

    import yaml

    from featevo.config.plan import SANITY_LEVELS
    from featevo.config.settings import SCHEMA_FILE
    from snakemake_helpers import ROOT, job_counts, snakemake

    levels = yaml.safe_load(SCHEMA_FILE.read_text())["properties"]["sanity"]["properties"]["levels"]
    assert levels["items"]["enum"] == list(SANITY_LEVELS) == levels["default"]
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "one.yaml").write_text("sanity: {levels: [all]}\n")
    counts = job_counts(snakemake(tmp_path, "-n", configs=[tmp_path / "one.yaml"]).stdout)
    assert counts["visualize_sanity"] == 3 and counts["sanity_networks"] == 3  # one per experiment
    (tmp_path / "none.yaml").write_text("sanity: {levels: [output]}\n")
    proc = snakemake(tmp_path, "-n", configs=[tmp_path / "none.yaml"], check=False)
    assert proc.returncode != 0 and "sanity.levels" in proc.stdout + proc.stderr

"""Your own network by import path: model.arch: package.module:factory."""

import pytest

from conftest import ROOT
from featevo.config.settings import load_config, schema_errors, schema, with_defaults
from featevo.models.networks import ModelSpec, architecture, build_model, head_name, shape_problem
from featevo.preflight.checks import check_config


def own(tmp_path, arch="own_nets:small_cnn", **extra):
    cfg = with_defaults(load_config(ROOT / "config.yaml"))
    cfg["model"]["arch"] = arch
    cfg["visualize"]["units"] = ["3:5"]  # the second convolution's sixth channel
    cfg["methods"]["inversion"]["layers"] = ["3"]
    return cfg


def test_a_network_named_by_import_path_is_built_with_the_classes_and_read_by_node_name(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    spec = ModelSpec(arch="own_nets:small_cnn", num_classes=4)
    a, b = build_model(spec, seed=3), build_model(spec, seed=3)
    assert a[-1].out_features == 4 and head_name(a) == "7"
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters()))  # seeded
    problem, shapes = shape_problem(spec, 64)
    assert problem is None and shapes["3"] == (16, 32, 32)
    assert set(architecture("own_nets:small_cnn").features(a)) == set(a[:7].parameters())  # all but the head


def test_the_config_takes_it_and_names_what_is_wrong(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    arch_errors = lambda arch: [e for e in schema_errors(own(tmp_path, arch), schema()) if "arch" in e]  # noqa: E731
    assert not arch_errors("own_nets:small_cnn") and not arch_errors("my_pkg.nets:Net2")
    assert not check_config(own(tmp_path))
    errors = check_config(own(tmp_path, "own_nets:no_such"))
    assert any("has no callable 'no_such'" in e for e in errors), errors
    errors = check_config(own(tmp_path, "no_such_module_here:net"))
    assert any("cannot import 'no_such_module_here'" in e and "PYTHONPATH" in e for e in errors), errors
    with pytest.raises(ValueError, match="returned a dict, not a torch.nn.Module"):
        build_model(ModelSpec(arch="own_nets:not_a_network", num_classes=4))
    bad = arch_errors("own nets:x y")
    assert bad and "package.module:factory" in bad[0]


@pytest.mark.slow  # a whole DAG at toy size: the full tier
def test_a_network_of_one_s_own_runs_the_whole_demo_dag(tmp_path):
    """docs/your-network.md: the module beside the run (its working directory), named by
    import path: its class images over the epochs, an inner unit, its layers' CKA."""
    import shutil

    import numpy as np

    from snakemake_helpers import tiny_with

    shutil.copy(ROOT / "tests" / "own_nets.py", tmp_path / "own_nets.py")
    # one seed, one experiment, no reference network (no Fig. 3) and the sanity check's control
    # alone: the DAG's every stage that reads the network, at the least cost
    tiny_with(tmp_path, (
        "run_name: own-net\n"
        "model: {arch: 'own_nets:small_cnn'}\n"
        "seeds: [0]\n"
        "reference: {source: none}\n"
        "sanity: {levels: [all]}\n"
        "experiments: {scratch: {epochs: 2}, pretrained: null, frozen: null}\n"
        "methods: {saliency: {enabled: false}, occlusion: {enabled: false}, inversion: {enabled: false}}\n"
        "visualize: {units: ['3:5']}\n"
        "atlas: {enabled: true}\ncontrols: {cue_conflict: 2}\n"))
    run = tmp_path / "results" / "own-net"
    for name in ("fig1.png", "units_scratch.png", "cka_scratch.png", "learning_curves.png", "atlas_scratch.html"):
        assert (run / "figures" / name).stat().st_size > 0, name
    d = np.load(run / "viz" / "scratch" / "seed0" / "epoch_002" / "classes.npz")
    assert d["images"].shape[0] == 4 and "cue_probs" in d
    import pandas as pd

    from featevo.models.checkpoint import load_checkpoint

    layers = set(pd.read_csv(run / "metrics" / "cka_scratch.csv")["layer"].astype(str))
    assert {"0", "3"} <= {name.split(" ")[0] for name in layers}, layers  # its two convolutions, by node name
    assert load_checkpoint(run / "train" / "scratch" / "seed0" / "epoch_002.pt")["spec"]["arch"] == "own_nets:small_cnn"

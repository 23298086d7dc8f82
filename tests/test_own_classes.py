"""Your own classes: data.source folder reads DIR/<class>/ (any image PIL opens, plain
names, no wnids); the judge trains on images no experiment takes; without a reference
network Fig. 3 is left out, and the run says why."""

import pytest

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from featevo.data.imagenet import imagenet_root, select_and_split
from snakemake_helpers import ROOT, tiny_with

SHAPES = {"circle": "ellipse", "square": "rectangle", "triangles": "polygon"}


def shapes_folder(root, per_class: int):
    """Three classes of drawn shapes, .jpg files with plain names (and one .png)."""
    rng = np.random.default_rng(0)
    for folder, kind in SHAPES.items():
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            img = Image.new("RGB", (48, 40), tuple(int(v) for v in rng.integers(0, 90, 3)))
            d = ImageDraw.Draw(img)
            x, y, r = (int(v) for v in rng.integers(14, 26, 3))
            box = [x - r // 2, y - r // 2, x + r // 2, y + r // 2]
            colour = tuple(int(v) for v in rng.integers(150, 255, 3))
            if kind == "polygon":
                d.polygon([(box[0], box[3]), (box[2], box[3]), (x, box[1])], fill=colour)
            else:
                getattr(d, kind)(box, fill=colour)
            img.save(root / folder / (f"shape {i}.png" if i == 0 else f"img_{i}.jpg"))
    return root


@pytest.mark.slow  # a whole DAG (minutes on 2 cores): the full tier
def test_a_folder_of_own_classes_runs_the_dag_and_leaves_out_fig3(tmp_path):
    shapes_folder(tmp_path / "shapes", per_class=20)
    proc = tiny_with(tmp_path, (
        "run_name: shapes\n"
        f"data: {{source: folder, path: {tmp_path / 'shapes'}, images_per_class: 12, val_per_class: 4,\n"
        "  classes: [{name: circle}, {name: square}, {name: tri angle, folder: triangles}]}\n"
        "reference: {source: none}\n"
        "judge: {images_per_class: 8}\n"
        "experiments: {scratch: {epochs: 2}, pretrained: null, frozen: null}\n"))
    assert "Fig. 3 is left out: reference.source is none" in proc.stderr
    run = tmp_path / "results" / "shapes"
    assert (run / "figures" / "fig1.png").stat().st_size > 0
    assert not (run / "figures" / "fig3.png").exists()
    assert (run / "viz" / "scratch" / "seed0" / "epoch_002" / "tri_angle.png").is_file()
    claims = (run / "tables" / "claims.md").read_text()
    assert "no Fig. 3: reference.source is none" in claims
    main = pd.read_csv(run / "data" / "main" / "manifest.csv")
    judge = pd.read_csv(run / "data" / "judge" / "manifest.csv")
    assert sorted(main["wnid"].unique()) == ["circle", "square", "triangles"] and len(main) == 36
    assert not set(zip(main["wnid"], main["member"])) & set(zip(judge["wnid"], judge["member"]))
    assert "shape 0.png" in set(main["member"]) | set(judge["member"])  # a .png, with a space


def test_the_split_of_a_folder_class_is_seeded_by_its_name_not_a_wnid():
    members = {"circle": [f"{i}.jpg" for i in range(30)], "square": [f"{i}.jpg" for i in range(30)]}
    a = select_and_split(members, 10, 3, seed=0)
    b = select_and_split({"square": members["square"]}, 10, 3, seed=0)  # other classes do not matter
    assert a[a["wnid"] == "square"]["member"].tolist() == b["member"].tolist()
    assert a[a["wnid"] == "circle"]["member"].tolist() != a[a["wnid"] == "square"]["member"].tolist()


def test_kaggle_s_download_is_an_imagenet_training_folder(tmp_path):
    train = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "train"
    (train / "n01644373").mkdir(parents=True)
    assert imagenet_root(tmp_path) == train == imagenet_root(tmp_path / "ILSVRC")
    assert imagenet_root(train) == train


@pytest.mark.slow  # a whole DAG (minutes on 2 cores): the full tier
def test_resnet18_from_scratch_and_from_its_torchvision_weights_on_own_classes(tmp_path):
    """The issue's case: a folder of classes with plain names, torchvision's ResNet-18
    trained from scratch and from a weights file named as torchvision names it; layered on
    configs/resnet-demo.yaml, whose whole DAG (frozen, its judge, its recipe) it runs too."""
    import torch
    import torchvision

    from featevo.models.checkpoint import load_checkpoint, load_model
    from featevo.models.networks import num_outputs
    from fake_imagenet import save_as_torchvision

    shapes_folder(tmp_path / "shapes", per_class=20)
    torch.manual_seed(0)
    weights, _ = save_as_torchvision(torchvision.models.resnet18().state_dict(), tmp_path, "resnet18")
    tiny_with(tmp_path, (
        "run_name: shapes-resnet\n"
        f"data: {{source: folder, path: {tmp_path / 'shapes'}, images_per_class: 12, val_per_class: 4,\n"
        "  classes: [{name: circle, imagenet_index: 1}, {name: square, imagenet_index: 2},\n"
        "            {name: triangle, folder: triangles, imagenet_index: 3}]}\n"
        "model: {width_divisor: 1, pool_size: 7}\n"
        f"reference: {{source: torchvision, weights: {weights}}}\n"
        "judge: {images_per_class: 8, epochs: 1}\n"
        "experiments: {scratch: {epochs: 2}, pretrained: {epochs: 1}, frozen: {epochs: 1}}\n"
        "methods: {every: 1, inversion: {steps: 2, layers: [layer1, layer3]}}\n"
        "visualize: {units: ['layer4.0.conv1:2', 'layer2.0.conv1:1:2:2']}\n"), ROOT / "configs" / "resnet-demo.yaml")
    run = tmp_path / "results" / "shapes-resnet"
    for name in ("fig1.png", "fig2.png", "fig_frozen.png", "fig3.png", "inversion_pretrained.png",
                 "inversion_scratch.png", "units_scratch.png", "learning_curves.png"):
        assert (run / "figures" / name).stat().st_size > 0, name
    assert (run / "tables" / "claims.md").read_text().count("|") > 10
    model, ckpt = load_model(run / "train" / "scratch" / "seed0" / "epoch_002.pt")
    assert ckpt["spec"]["arch"] == "resnet18" and num_outputs(model) == 3
    assert load_checkpoint(run / "judge" / "model.pt")["spec"]["arch"] == "vgg11"  # the demo's judge
    ref = load_checkpoint(run / "reference" / "model.pt")
    assert ref["spec"]["arch"] == "resnet18" and ref["weights"]["sha256_checked"] == "name's 8 hex digits"
    assert "set reference.sha256:" in (run / "logs" / "import_reference.log").read_text()
    # the pretrained experiment starts from the file's weights, all but the output layer
    start = load_checkpoint(run / "train" / "pretrained" / "seed0" / "epoch_000.pt")["model"]
    assert torch.equal(start["layer4.1.conv2.weight"], ref["model"]["layer4.1.conv2.weight"])
    assert start["fc.weight"].shape == (3, 512)

import io
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import extract_settings
from featevo.data.imagenet import ExtractionError, decode, extract, select_and_split

WNIDS = ["n01644373", "n02007558"]
# solid colours: what comes out can be checked pixel by pixel
COLOURS = {"n01644373": (40, 180, 60), "n02007558": (240, 120, 150)}


def jpeg(rgb, size=(20, 14), mode="RGB", fmt="JPEG"):
    img = Image.new("RGB", size, rgb)
    if mode == "CMYK":
        img = img.convert("CMYK")
    elif mode == "L":
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, fmt, quality=100)
    return buf.getvalue()


def fake_imagenet(root, per_class=6, quirks=True, truncated=False):
    """train/<wnid>/<wnid>_<n>.JPEG with ImageNet's quirks among them."""
    files = {}
    for w in WNIDS:
        for i in range(1, per_class + 1):
            files[f"{w}/{w}_{i}.JPEG"] = jpeg(COLOURS[w])
    if quirks:
        files[f"{WNIDS[0]}/{WNIDS[0]}_2.JPEG"] = jpeg(COLOURS[WNIDS[0]], mode="CMYK")
        files[f"{WNIDS[0]}/{WNIDS[0]}_3.JPEG"] = jpeg(COLOURS[WNIDS[0]], fmt="PNG")  # PNG named .JPEG
        files[f"{WNIDS[1]}/{WNIDS[1]}_4.JPEG"] = jpeg((128, 128, 128), mode="L")
    if truncated:
        data = jpeg(COLOURS[WNIDS[1]], size=(64, 64))
        files[f"{WNIDS[1]}/{WNIDS[1]}_5.JPEG"] = data[: len(data) // 2]
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def synset_tars(files, root):
    root.mkdir()
    for w in WNIDS:
        with tarfile.open(root / f"{w}.tar", "w") as tf:
            for name, data in sorted(files.items()):
                if name.startswith(w):
                    info = tarfile.TarInfo(name.split("/")[1])
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))


def train_tar(synset_root, path):
    with tarfile.open(path, "w") as tf:
        tf.add(synset_root / "README", arcname="README") if (synset_root / "README").exists() else None
        for w in WNIDS:
            tf.add(synset_root / f"{w}.tar", arcname=f"{w}.tar")


def run(path, out, **kw):
    args = dict(per_class=6, val_per_class=2, size=8, **extract_settings(), log=lambda m: None)
    args.update(kw)
    return extract(path, out, WNIDS, **args)


def test_quirky_files_come_out_as_correct_rgb(tmp_path):
    fake_imagenet(tmp_path / "train")
    table = run(tmp_path / "train", tmp_path / "out")
    imgs = np.concatenate([np.load(tmp_path / "out" / "train_images.npy"),
                           np.load(tmp_path / "out" / "val_images.npy")])
    assert imgs.shape == (12, 8, 8, 3) and imgs.dtype == np.uint8
    order = pd.concat([table[table.split == "train"], table[table.split == "val"]])
    for img, (_, row) in zip(imgs, order.iterrows()):
        expected = (128, 128, 128) if row.member.endswith("_4.JPEG") and row.wnid == WNIDS[1] \
            else COLOURS[row.wnid]
        # JPEG and CMYK round trips move colours a little, never to another class's
        assert np.abs(img.astype(int) - expected).max() <= 6, (row.member, img[0, 0])
    assert table["sha256"].str.len().eq(64).all()
    assert not table["rejected"].any()


def test_all_three_layouts_give_the_same_bytes(tmp_path):
    files = fake_imagenet(tmp_path / "train")
    synset_tars(files, tmp_path / "tars")
    train_tar(tmp_path / "tars", tmp_path / "ILSVRC2012_img_train.tar")
    outs = {}
    for name, path in [("folder", tmp_path / "train"), ("synset_tars", tmp_path / "tars"),
                       ("train_tar", tmp_path / "ILSVRC2012_img_train.tar")]:
        run(path, tmp_path / name)
        outs[name] = [(tmp_path / name / f).read_bytes() for f in
                      ("train_images.npy", "val_images.npy", "train_labels.npy", "manifest.csv")]
    assert outs["folder"] == outs["synset_tars"] == outs["train_tar"]


def test_every_undecodable_file_is_named_at_once_in_words(tmp_path):
    """Two bad files, both named in one message, each with what is wrong in words (PIL's
    own says "cannot identify image file <_io.BytesIO object at 0x...>")."""
    fake_imagenet(tmp_path / "train", quirks=False)
    (tmp_path / "train" / WNIDS[0] / f"{WNIDS[0]}_1.JPEG").write_bytes(b"GIF87 but not an image at all")
    (tmp_path / "train" / WNIDS[1] / f"{WNIDS[1]}_2.JPEG").write_bytes(b"")
    with pytest.raises(ExtractionError) as exc:
        run(tmp_path / "train", tmp_path / "out")
    msg = str(exc.value)
    assert "2 image(s) cannot be decoded" in msg and "data.skip_unreadable: true" in msg
    assert f"{WNIDS[0]}/{WNIDS[0]}_1.JPEG: not an image any reader knows (29 bytes, starting 47 49 46" in msg
    assert f"{WNIDS[1]}/{WNIDS[1]}_2.JPEG: it is empty (0 bytes)" in msg
    assert "BytesIO" not in msg and " at 0x" not in msg


def test_empty_files_and_names_that_are_not_utf8_are_named_at_parse_time(tmp_path):
    """data.source folder: a 0-byte image and a file name that is not UTF-8 stop the run
    while the workflow is parsed, named as a person reads them (\\xff, not \\udcff)."""
    import os

    from featevo.preflight.checks import _check_folder

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(30):
            (tmp_path / c / f"{i}.jpg").write_bytes(jpeg((10, 20, 30)))
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    with open(os.path.join(os.fsencode(tmp_path / "b"), b"\xff\xfe.jpg"), "wb") as fh:
        fh.write(jpeg((10, 20, 30)))
    data = {"source": "folder", "path": str(tmp_path), "classes": [{"name": "a"}, {"name": "b"}], "images_per_class": 10}
    cfg = {"judge": {"images_per_class": 4, "source": "train"}}
    errors = "\n".join(_check_folder(data, cfg))
    assert "data.classes: 'a': " in errors and "holds 1 empty file(s) (0 bytes: 'empty.jpg')" in errors
    assert "data.classes: 'b': " in errors and "not UTF-8 ('\\\\xff\\\\xfe.jpg'); rename them" in errors, errors
    assert "udc" not in errors
    # left out on purpose: the empty file no longer stops the run; a name that is not UTF-8 still does
    errors = "\n".join(_check_folder({**data, "skip_unreadable": True}, cfg))
    assert "empty file(s)" not in errors and "not UTF-8" in errors


def test_truncated_file_stops_with_its_name_or_is_listed_as_rejected(tmp_path):
    fake_imagenet(tmp_path / "train", truncated=True)
    with pytest.raises(ExtractionError, match=r"n02007558/n02007558_5.JPEG.*data.skip_unreadable"):
        run(tmp_path / "train", tmp_path / "out")
    table = run(tmp_path / "train", tmp_path / "out2", skip_unreadable=True)
    rejected = table[table.rejected]
    assert rejected["member"].tolist() == ["n02007558_5.JPEG"]
    n = len(np.load(tmp_path / "out2" / "train_images.npy")) + len(np.load(tmp_path / "out2" / "val_images.npy"))
    assert n == 11


def test_same_seed_same_bytes_other_seed_other_split(tmp_path):
    fake_imagenet(tmp_path / "train", per_class=10, quirks=False)
    a = run(tmp_path / "train", tmp_path / "a", per_class=8, val_per_class=3, seed=1)
    run(tmp_path / "train", tmp_path / "b", per_class=8, val_per_class=3, seed=1)
    c = run(tmp_path / "train", tmp_path / "c", per_class=8, val_per_class=3, seed=2)
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()
    assert (tmp_path / "a" / "train_images.npy").read_bytes() == (tmp_path / "b" / "train_images.npy").read_bytes()
    assert not a[["member", "split"]].equals(c[["member", "split"]])


def test_split_is_stratified():
    members = {w: [f"{w}_{i}.JPEG" for i in range(50)] for w in ["n00000001", "n00000002", "n00000003"]}
    t = select_and_split(members, per_class=30, val_per_class=7, seed=0)
    counts = t.groupby(["wnid", "split"]).size().unstack()
    assert counts["val"].tolist() == [7, 7, 7] and counts["train"].tolist() == [23, 23, 23]
    assert t["label"].tolist() == sorted(t["label"].tolist())  # labels follow the class order given


def test_bad_input_names_the_config_key(tmp_path):
    fake_imagenet(tmp_path / "train", quirks=False)
    with pytest.raises(ExtractionError, match="data.images_per_class.*only 6"):
        run(tmp_path / "train", tmp_path / "o", per_class=7)
    with pytest.raises(ExtractionError, match="data.classes.*n09999999"):
        extract(tmp_path / "train", tmp_path / "o", WNIDS + ["n09999999"], per_class=6, val_per_class=2, size=8,
                **extract_settings(), log=lambda m: None)
    with pytest.raises(ExtractionError, match="data.imagenet.*does not exist"):
        run(tmp_path / "nowhere", tmp_path / "o")
    with pytest.raises(ExtractionError, match="data.val_per_class"):
        run(tmp_path / "train", tmp_path / "o", val_per_class=6)


def test_center_crop_keeps_the_middle():
    img = np.zeros((10, 30, 3), np.uint8)
    img[:, 10:20] = 255  # white centre square, black sides
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    assert decode(buf.getvalue(), 10, "center_crop").min() == 255
    assert decode(buf.getvalue(), 10, "stretch").min() == 0


def _with_distractor(tmp_path):
    """The official layout with an unwanted synset after the wanted ones, as ImageNet's 1000 are."""
    files = fake_imagenet(tmp_path / "train")
    synset_tars(files, tmp_path / "tars")
    other = tmp_path / "tars" / "n09999999.tar"
    with tarfile.open(other, "w") as tf:
        data = b"\xff" * 50_000
        info = tarfile.TarInfo("n09999999_1.JPEG")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    path = tmp_path / "ILSVRC2012_img_train.tar"
    with tarfile.open(path, "w") as tf:
        for w in [*WNIDS, "n09999999"]:
            tf.add(tmp_path / "tars" / f"{w}.tar", arcname=f"{w}.tar")
    return path


def test_a_train_tar_cut_short_is_named_with_the_synsets_it_hides(tmp_path):
    path = _with_distractor(tmp_path)
    whole = path.read_bytes()
    first_inner = tarfile.open(path).getmember(f"{WNIDS[1]}.tar")
    # cut inside the unwanted synset at the end: every wanted synset is read, nothing else is needed
    path.write_bytes(whole[: len(whole) - 30_000])
    run(path, tmp_path / "ok")
    reference = run(tmp_path / "tars", tmp_path / "ref")
    assert (tmp_path / "ok" / "manifest.csv").read_text() == (tmp_path / "ref" / "manifest.csv").read_text()
    assert len(reference) == 12
    # cut inside the second wanted synset's tar: that synset and the archive are named, with what to do
    path.write_bytes(whole[: first_inner.offset_data + 3000])
    with pytest.raises(ExtractionError, match=rf"ILSVRC2012_img_train.tar: {WNIDS[1]}.tar \(synset {WNIDS[1]}\) "
                                              r"inside it is damaged or cut short .*download or copy"):
        run(path, tmp_path / "cut")
    # cut between the synsets' headers: the synsets not yet found are named
    path.write_bytes(whole[: first_inner.offset + 100])
    with pytest.raises(ExtractionError, match=rf"damaged or cut short after \d+ bytes .*\['{WNIDS[1]}'\]"):
        run(path, tmp_path / "cut2")


def test_a_per_synset_tar_cut_short_is_named(tmp_path):
    files = fake_imagenet(tmp_path / "train")
    synset_tars(files, tmp_path / "tars")
    bad = tmp_path / "tars" / f"{WNIDS[0]}.tar"
    bad.write_bytes(bad.read_bytes()[:1500])
    with pytest.raises(ExtractionError, match=rf"{WNIDS[0]}.tar: synset {WNIDS[0]} is damaged or cut short"):
        run(tmp_path / "tars", tmp_path / "out")


def test_the_fingerprint_follows_the_data_not_its_place(tmp_path):
    """Moved, copied (with or without its times), or the path restored: the same digest;
    a file changed or added: another."""
    import shutil

    from featevo.data.imagenet import fingerprint

    for layout in ("folder", "synset_tars", "train_tar"):
        root = tmp_path / layout
        root.mkdir()
        files = fake_imagenet(root / "train")
        synset_tars(files, root / "tars")
        train_tar(root / "tars", root / "ILSVRC2012_img_train.tar")
        src = {"folder": root / "train", "synset_tars": root / "tars",
               "train_tar": root / "ILSVRC2012_img_train.tar"}[layout]
        first = fingerprint(src, "auto", WNIDS)
        moved = tmp_path / f"elsewhere-{layout}"
        moved.mkdir()
        target = moved / src.name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, target)  # times not kept
        assert fingerprint(target, "auto", WNIDS) == first, layout
        shutil.move(str(target), str(moved / "renamed"))
        assert fingerprint(moved / "renamed", "auto", WNIDS) == first, layout
        # changed data: a longer image (folder), a changed tar
        if layout == "folder":
            (src / WNIDS[0] / f"{WNIDS[0]}_1.JPEG").write_bytes(jpeg((1, 2, 3), size=(30, 30)))
        else:
            synset_tars({**files, f"{WNIDS[0]}/{WNIDS[0]}_99.JPEG": jpeg((1, 2, 3))}, root / "tars2")
            if layout == "synset_tars":
                shutil.copy(root / "tars2" / f"{WNIDS[0]}.tar", src / f"{WNIDS[0]}.tar")
            else:
                train_tar(root / "tars2", src)
        assert fingerprint(src, "auto", WNIDS) != first, layout


def test_a_file_that_is_not_a_tar_is_refused_at_parse_time(tmp_path):
    from featevo.preflight.checks import _check_imagenet

    data = {"layout": "auto", "classes": [{"wnid": w} for w in WNIDS], "images_per_class": 3}
    for name, content in (("notes.txt", b"ImageNet is at /data\n"), ("x.JPEG", jpeg((1, 2, 3)))):
        (tmp_path / name).write_bytes(content)
        errors = _check_imagenet(tmp_path / name, data)
        assert len(errors) == 1 and f"{tmp_path / name} is a file but not a tar archive" in errors[0], errors


def test_missing_or_short_synsets_in_tars_are_found_at_parse_time(tmp_path):
    from featevo.preflight.checks import _check_imagenet

    files = fake_imagenet(tmp_path / "train", per_class=4, quirks=False)
    del files[f"{WNIDS[1]}/{WNIDS[1]}_4.JPEG"]  # 3 images of the second synset
    synset_tars(files, tmp_path / "tars")
    train_tar(tmp_path / "tars", tmp_path / "ILSVRC2012_img_train.tar")
    data = {"layout": "auto", "classes": [{"wnid": w} for w in [*WNIDS, "n03982430"]], "images_per_class": 4}
    for src in (tmp_path / "tars", tmp_path / "ILSVRC2012_img_train.tar"):
        errors = "\n".join(_check_imagenet(src, data))
        assert "synset n03982430 is not in" in errors and f"synset {WNIDS[1]} has only 3 images" in errors, errors
        assert WNIDS[0] not in errors
    # a job that re-parses the Snakefile does not read the tars (deep=False): presence only
    assert _check_imagenet(tmp_path / "ILSVRC2012_img_train.tar", data, deep=False) == []


def test_a_file_name_that_is_not_utf8_is_named_before_any_decoding(tmp_path):
    import os

    fake_imagenet(tmp_path, per_class=3, quirks=False)
    bad = os.fsencode(tmp_path / WNIDS[0]) + b"/" + b"\xff\xfe.JPEG"
    with open(bad, "wb") as fh:
        fh.write(jpeg((1, 2, 3)))
    with pytest.raises(ExtractionError, match=r"is not UTF-8 .* rename it"):
        extract(tmp_path, tmp_path / "out", WNIDS, per_class=3, val_per_class=1, size=8,
                **{**extract_settings(), "layout": "folder"})


@pytest.mark.slow
def test_moved_imagenet_reruns_nothing_and_a_wrong_path_deletes_nothing(tmp_path):
    """A finished extraction: the same data moved (the config pointed at the new place)
    has nothing to do; a typo that names a text file is refused before any job, the
    subset untouched; changed data reruns the extraction."""
    import shutil

    import yaml

    from snakemake_helpers import ROOT, snakemake

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "config.yaml", work / "config.yaml")
    fake_imagenet(tmp_path / "disk1" / "train", per_class=6)
    weights = tmp_path / "vgg16-397923af.pth"
    weights.write_bytes(b"never read: only the extraction runs")
    classes = [{"name": f"c{i}", "wnid": w, "imagenet_index": 31 + i} for i, w in enumerate(WNIDS)]

    def run(imagenet, *args, check=True):
        (work / "mine.yaml").write_text(yaml.safe_dump({
            "run_name": "moved", "data": {"source": "imagenet", "imagenet": str(imagenet), "classes": classes,
                                          "images_per_class": 6, "val_per_class": 2, "image_size": 32},
            "model": {"width_divisor": 1, "pool_size": 7}, "visualize": {"top_k": 2},
            "reference": {"source": "torchvision", "weights": str(weights)}, "judge": {"source": "reference"}}))
        return snakemake(work, *args, "--", "results/moved/data/main/manifest.csv", configs=[work / "mine.yaml"],
                         check=check)

    run(tmp_path / "disk1" / "train")
    manifest = work / "results/moved/data/main/manifest.csv"
    before = manifest.read_bytes()
    shutil.move(str(tmp_path / "disk1"), str(tmp_path / "disk2"))
    out = run(tmp_path / "disk2" / "train", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr, out.stdout[-2000:]
    (tmp_path / "notes.txt").write_text("the data is on disk2\n")
    bad = run(tmp_path / "notes.txt", check=False)
    assert bad.returncode != 0 and "notes.txt is a file but not a tar archive" in bad.stdout + bad.stderr
    assert manifest.read_bytes() == before  # nothing deleted
    (tmp_path / "disk2" / "train" / WNIDS[0] / f"{WNIDS[0]}_1.JPEG").write_bytes(jpeg((1, 2, 3), size=(30, 30)))
    out = run(tmp_path / "disk2" / "train", "-n")
    assert "extract_subset" in out.stdout


def ilsvrc_val(root, per_class=3, labels="csv"):
    """ILSVRC2012's validation set in small: flat ILSVRC2012_val_*.JPEG, two wanted synsets and
    a distractor interleaved, and their labels as Kaggle's CSV or the devkit's ground truth."""
    root.mkdir()
    wnids = [*WNIDS, "n03982430"]
    order = [wnids[i % 3] for i in range(3 * per_class)]
    for i, w in enumerate(order, 1):
        (root / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(jpeg(COLOURS.get(w, (0, 0, 255))))
    if labels == "csv":
        rows = [f"ILSVRC2012_val_{i:08d},{w} 1 2 3 4" for i, w in enumerate(order, 1)]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
        return root / "LOC_val_solution.csv"
    from scipy.io import savemat

    ids = {w: k for k, w in enumerate(wnids, 1)}
    synsets = np.array([(k, w) for w, k in ids.items()], dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O")])
    devkit = root / "devkit"
    devkit.mkdir()
    savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in order))
    return devkit / "ILSVRC2012_validation_ground_truth.txt"


@pytest.mark.parametrize("labels", ["csv", "devkit"])
@pytest.mark.parametrize("packed", [False, True])
def test_validation_on_ilsvrc2012_s_own_validation_images(tmp_path, labels, packed):
    """data.validation: ilsvrc_val: every chosen training image trains; the validation split
    is ILSVRC2012's own validation images of each class, which ImageNet weights never saw."""
    from featevo.data.imagenet import val_labels

    fake_imagenet(tmp_path / "train", per_class=5, quirks=False)
    label_file = ilsvrc_val(tmp_path / "val", per_class=3, labels=labels)
    assert sorted(set(val_labels(label_file).values())) == sorted([*WNIDS, "n03982430"])
    images = tmp_path / "val"
    if packed:
        with tarfile.open(tmp_path / "ILSVRC2012_img_val.tar", "w") as tf:
            for p in sorted(images.glob("*.JPEG")):
                tf.add(p, arcname=p.name)
        images = tmp_path / "ILSVRC2012_img_val.tar"
    table = extract(tmp_path / "train", tmp_path / "out", WNIDS, per_class=5, val_per_class=2, size=8,
                    **extract_settings(), val_images=images, val_labels_file=label_file)
    train, val = table[table["split"] == "train"], table[table["split"] == "val"]
    assert len(train) == 10 and train["member"].str.startswith("n0").all()  # all 5 per class train
    assert len(val) == 4 and val["member"].str.startswith("ILSVRC2012_val_").all()
    assert val.groupby("wnid").size().tolist() == [2, 2]
    pixels = np.load(tmp_path / "out" / "val_images.npy")
    labels_ = np.load(tmp_path / "out" / "val_labels.npy")
    for img, label in zip(pixels, labels_):  # each validation image has its class's colour
        np.testing.assert_allclose(img.reshape(-1, 3).mean(0), COLOURS[WNIDS[label]], atol=3)
    with pytest.raises(ExtractionError, match=r"has 3 images of n01644373 .* lower data.val_per_class"):
        extract(tmp_path / "train", tmp_path / "out2", WNIDS, per_class=5, val_per_class=4, size=8,
                **extract_settings(), val_images=images, val_labels_file=label_file)


def test_ilsvrc_val_is_checked_at_parse_time(tmp_path):
    from featevo.preflight.checks import check_config

    cfg = yaml_demo()
    label_file = ilsvrc_val(tmp_path / "val", per_class=3)
    fake_imagenet(tmp_path / "train", per_class=5, quirks=False)
    cfg["data"].update(source="standin", validation="ilsvrc_val")
    assert any("needs data.source: imagenet" in e for e in check_config(cfg))
    cfg["data"].update(source="imagenet", imagenet=str(tmp_path / "train"), images_per_class=5, val_per_class=3,
                       classes=[{"name": f"c{i}", "wnid": w} for i, w in enumerate(WNIDS)],
                       imagenet_val=str(tmp_path / "val"), imagenet_val_labels=str(tmp_path / "nowhere.csv"))
    assert any("data.imagenet_val_labels" in e and "does not exist" in e for e in check_config(cfg))
    cfg["data"]["imagenet_val_labels"] = str(label_file)
    assert not [e for e in check_config(cfg) if e.startswith("data.")]
    cfg["data"]["val_per_class"] = 4
    assert any("lists 3 validation images of n01644373, 4 asked for" in e for e in check_config(cfg))


def yaml_demo():
    from featevo.config.settings import load_config
    from snakemake_helpers import ROOT

    return load_config(ROOT / "config.yaml")


def test_the_workflow_validates_on_ilsvrc_val_when_asked(tmp_path):
    import shutil

    import yaml

    from snakemake_helpers import ROOT, snakemake

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "config.yaml", work / "config.yaml")
    fake_imagenet(tmp_path / "train", per_class=5, quirks=False)
    label_file = ilsvrc_val(tmp_path / "val", per_class=3)
    weights = tmp_path / "vgg16-397923af.pth"
    weights.write_bytes(b"never read: only the extraction runs")
    (work / "mine.yaml").write_text(yaml.safe_dump({
        "run_name": "val", "data": {
            "source": "imagenet", "imagenet": str(tmp_path / "train"), "validation": "ilsvrc_val",
            "imagenet_val": str(tmp_path / "val"), "imagenet_val_labels": str(label_file),
            "classes": [{"name": f"c{i}", "wnid": w, "imagenet_index": 31 + i} for i, w in enumerate(WNIDS)],
            "images_per_class": 5, "val_per_class": 3, "image_size": 32},
        "model": {"width_divisor": 1, "pool_size": 7}, "visualize": {"top_k": 2},
        "reference": {"source": "torchvision", "weights": str(weights)}, "judge": {"source": "reference"}}))
    target = "results/val/data/main/manifest.csv"
    snakemake(work, "--", target, configs=[work / "mine.yaml"])
    assert len(np.load(work / "results/val/data/main/train_labels.npy")) == 10
    assert np.load(work / "results/val/data/main/val_labels.npy").tolist() == [0, 0, 0, 1, 1, 1]
    manifest = pd.read_csv(work / target)
    assert manifest.loc[manifest["split"] == "val", "member"].str.startswith("ILSVRC2012_val_").all()


def test_a_new_layout_is_one_entry_of_the_registry(tmp_path, monkeypatch):
    """Listing, reading, the fingerprint a rerun compares and the parse-time census all
    come from the layout's entry: nothing else switches on a layout's name."""
    import dataclasses
    import hashlib

    from featevo.data import imagenet as ex
    from featevo.preflight.checks import _check_imagenet

    files = fake_imagenet(tmp_path / "train", quirks=False)
    folder = ex.LAYOUTS["folder"]
    seen = []

    def census(path, wnids, deep):
        seen.append(("census", deep))
        return {w: (4 if w == WNIDS[1] else 6) for w in wnids}

    def fingerprint(h, path, wnids):
        seen.append("fingerprint")
        h.update(b"mine")

    mine = dataclasses.replace(folder, detect=lambda p: False, fingerprint=fingerprint, census=census)
    monkeypatch.setitem(ex.LAYOUTS, "mine", mine)
    assert ex.fingerprint(tmp_path / "train", "mine", WNIDS) == hashlib.sha256(b"minemine").hexdigest()[:16]
    data = {"layout": "mine", "classes": [{"wnid": w} for w in WNIDS], "images_per_class": 5}
    errors = _check_imagenet(tmp_path / "train", data, deep=False)
    assert errors == [f"data.images_per_class: synset {WNIDS[1]} has only 4 images in {tmp_path / 'train'}, 5 "
                      "asked for; lower data.images_per_class"]
    assert seen == ["fingerprint", ("census", False)]
    table = run(tmp_path / "train", tmp_path / "out", layout="mine")
    assert len(table) == 2 * 6 and set(table["member"]) == {n.split("/")[1] for n in files}


def _portrait_jpeg() -> bytes:
    """A phone's portrait photo: stored sideways (wide), EXIF orientation 6 (turn 90 degrees
    clockwise to view); red on the stored image's left half, so upright the top is red."""
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_exif_orientation_is_ignored_by_default_applied_by_the_setting_and_counted(tmp_path):
    from featevo.data.imagenet import decode_oriented

    data = _portrait_jpeg()
    stored, turn = decode_oriented(data, 20, "stretch")
    assert turn == 6
    assert stored[:, :8, 0].mean() > 200 and stored[:, -8:, 0].mean() < 60  # red left: as stored
    upright = decode(data, 20, "stretch", "apply")
    assert upright[:8, :, 0].mean() > 200 and upright[-8:, :, 0].mean() < 60  # red top: turned
    with pytest.raises(ExtractionError, match="data.exif_orientation: unknown 'auto'"):
        decode(data, 20, "stretch", "auto")
    fake_imagenet(tmp_path / "train", quirks=False)
    (tmp_path / "train" / WNIDS[0] / f"{WNIDS[0]}_0.JPEG").write_bytes(data)
    lines = []
    run(tmp_path / "train", tmp_path / "o", log=lines.append)
    assert any("1 images carry an EXIF orientation other than upright: read as stored" in m for m in lines), lines

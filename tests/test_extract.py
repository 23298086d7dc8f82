import io
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import extract_settings
from featevo.extract import ExtractionError, decode, extract, select_and_split

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
    b = run(tmp_path / "train", tmp_path / "b", per_class=8, val_per_class=3, seed=1)
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

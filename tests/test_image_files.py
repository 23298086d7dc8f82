"""Your own classes' files, through snakemake: every mode PIL opens is read as its 8-bit
RGB twin (16-bit and float by their mode's range, transparency on white), or refused with
the file named; hidden and AppleDouble files are skipped; a folder or a broken link among
the images, and a class folder outside data.path, are named while the workflow is parsed."""

import io
import os

import numpy as np
import pandas as pd
from PIL import Image

from featevo.data.imagenet import ALPHA_BACKGROUND
from snakemake_helpers import tiny_with

SIZE = 32  # tests/configs/tiny.yaml's data.image_size: files of this size are not resized
GRADIENT = np.tile((np.arange(SIZE) * 8).astype(np.uint8), (SIZE, 1))  # 0 .. 248, left to right
RED = (200, 30, 40)


def save(img: Image.Image, path, fmt=None, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt or path.suffix.lstrip(".").upper().replace("JPG", "JPEG").replace("TIF", "TIFF"), **kw)
    path.write_bytes(buf.getvalue())


def half_transparent(mode="RGBA"):
    """RED on the right half, fully transparent (another colour under it) on the left."""
    a = np.zeros((SIZE, SIZE, 4), np.uint8)
    a[..., :3] = (10, 250, 10)  # hidden under alpha 0: must not show
    a[:, SIZE // 2:, :3] = RED
    a[:, SIZE // 2:, 3] = 255
    return Image.fromarray(a, "RGBA")


def modes_folder(root):
    """Three classes of 8 files each, every one with a known 8-bit RGB twin."""
    gray, alpha, other = (root / n for n in ("gray", "alpha", "other"))
    for d in (gray, alpha, other):
        d.mkdir(parents=True)
    g16 = GRADIENT.astype(np.uint16) * 257  # 8-bit v is 16-bit v * 257
    save(Image.fromarray(GRADIENT), gray / "g8.png")
    save(Image.fromarray(g16), gray / "g16.png")  # I;16
    save(Image.fromarray(g16), gray / "g16.tif")  # I;16
    save(Image.frombytes("I;16B", (SIZE, SIZE), g16.astype(">u2").tobytes()), gray / "g16b.tif")  # big-endian
    save(Image.fromarray((GRADIENT / 255).astype(np.float32)), gray / "gf.tif")  # F, 0.0-1.0
    save(Image.fromarray(g16.astype(np.int32)), gray / "gi.tif")  # I, 32-bit integers in 0-65535
    save(Image.fromarray(GRADIENT).convert("P"), gray / "gp.png")
    save(Image.fromarray(GRADIENT), gray / "g8.bmp")

    save(half_transparent(), alpha / "rgba.png")
    save(half_transparent(), alpha / "rgba.tif")
    save(half_transparent(), alpha / "rgba.webp", lossless=True)
    la = np.zeros((SIZE, SIZE, 2), np.uint8)
    la[:, SIZE // 2:] = (90, 255)
    save(Image.fromarray(la, "LA"), alpha / "la.png")
    p = Image.new("P", (SIZE, SIZE), 0)
    p.putpalette([10, 250, 10, *RED] + [0] * 762)
    p.paste(1, (SIZE // 2, 0, SIZE, SIZE))
    save(p, alpha / "p.gif", transparency=0)  # a palette with a transparent index
    save(p, alpha / "p.png", transparency=0)
    rgb = half_transparent().convert("RGB")
    save(rgb, alpha / "key.png", transparency=(10, 250, 10))  # a colour key (tRNS)
    half = np.zeros((SIZE, SIZE, 4), np.uint8)
    half[...] = (*RED, 128)
    save(Image.fromarray(half, "RGBA"), alpha / "half.png")

    bits = np.zeros((SIZE, SIZE), bool)
    bits[:, SIZE // 2:] = True
    save(Image.fromarray(bits), other / "one.png")  # mode 1
    save(Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0)), other / "cmyk.tif")
    save(Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0)), other / "cmyk.jpg", quality=100)
    save(Image.new("LAB", (SIZE, SIZE), (255, 128, 128)), other / "lab.tif")
    save(Image.new("RGB", (SIZE, SIZE), RED), other / "rgb.png")
    save(Image.new("L", (SIZE, SIZE), 77), other / "l.png")
    save(Image.new("RGB", (SIZE, SIZE), RED), other / "rgb.jpg", quality=100)
    save(Image.new("RGB", (SIZE, SIZE), RED).convert("RGBX"), other / "rgbx.tif")
    # what a Mac leaves beside its files: none of it is an image, none may be read as one
    for d in (gray, alpha, other):
        (d / "._g8.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble metadata, not an image")
        (d / ".DS_Store").write_bytes(b"Bud1\x00\x00")
        save(Image.new("RGB", (SIZE, SIZE), (1, 2, 3)), d / ".hidden.png")
    return root


OWN = """run_name: px
data: {{source: folder, path: {path}, images_per_class: 4, val_per_class: 2{extra},
  classes: [{{name: gray}}, {{name: alpha}}, {{name: other}}]}}
reference: {{source: none}}
judge: {{images_per_class: 4}}
experiments: {{scratch: {{epochs: 1}}, pretrained: null, frozen: null}}
"""
TARGETS = ("--", "results/px/data/main/manifest.csv", "results/px/data/judge/manifest.csv")


def decoded(run) -> dict[tuple[str, str], np.ndarray]:
    """(class folder, file name) -> the extracted pixels, from both subsets' arrays."""
    out = {}
    for subset in ("main", "judge"):
        table = pd.read_csv(run / "data" / subset / "manifest.csv")
        table = table[~table["rejected"]]
        for split in ("train", "val"):
            images = np.load(run / "data" / subset / f"{split}_images.npy")
            rows = table[table["split"] == split]
            assert len(rows) == len(images)
            out.update({(w, m): img for (w, m), img in zip(zip(rows["wnid"], rows["member"]), images)})
    return out


def test_every_mode_is_read_as_its_8_bit_rgb_twin_and_hidden_files_are_skipped(tmp_path):
    modes_folder(tmp_path / "modes")
    tiny_with(tmp_path, OWN.format(path=tmp_path / "modes", extra=""), args=TARGETS)
    px = decoded(tmp_path / "results" / "px")
    assert len(px) == 24 and not any(m.startswith(".") for _, m in px)  # every file, no hidden one
    twin = np.repeat(GRADIENT[..., None], 3, axis=2)
    for name in ("g8.png", "g16.png", "g16.tif", "g16b.tif", "gf.tif", "gi.tif", "gp.png", "g8.bmp"):
        assert np.array_equal(px[("gray", name)], twin), name  # 16-bit and float: not white, not black
    white = np.array(ALPHA_BACKGROUND, np.uint8)
    assert tuple(white) == (255, 255, 255)
    for name in ("rgba.png", "rgba.tif", "rgba.webp", "p.gif", "p.png", "key.png"):
        img = px[("alpha", name)]
        assert (img[:, : SIZE // 2] == white).all(), name  # alpha 0: the background, not the colour under it
        assert (img[:, SIZE // 2:] == RED).all(), name
    la = px[("alpha", "la.png")]
    assert (la[:, : SIZE // 2] == 255).all() and (la[:, SIZE // 2:] == 90).all()
    # alpha 128 of 255: halfway between the colour and white
    half = np.rint(np.array(RED) * 128 / 255 + 255 * 127 / 255)
    assert np.abs(px[("alpha", "half.png")].astype(int) - half).max() <= 1
    one = px[("other", "one.png")]
    assert (one[:, : SIZE // 2] == 0).all() and (one[:, SIZE // 2:] == 255).all()
    assert (px[("other", "cmyk.tif")] == (255, 0, 0)).all()
    assert np.abs(px[("other", "cmyk.jpg")].astype(int) - (255, 0, 0)).max() <= 3
    assert (px[("other", "lab.tif")] >= 253).all()  # L 100, a = b = 0: white
    assert (px[("other", "l.png")] == 77).all()
    for name in ("rgb.png", "rgbx.tif"):
        assert (px[("other", name)] == RED).all(), name


def test_a_file_whose_pixels_have_no_range_is_refused_by_name_or_left_out(tmp_path):
    modes_folder(tmp_path / "modes")
    bad = tmp_path / "modes" / "gray" / "raw counts.tif"
    save(Image.fromarray(np.full((SIZE, SIZE), 1234.5, np.float32)), bad)
    (tmp_path / "modes" / "gray" / "g8.bmp").unlink()  # still 8 images
    proc = tiny_with(tmp_path, OWN.format(path=tmp_path / "modes", extra=""), args=TARGETS, check=False)
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (tmp_path / "results" / "px" / "logs").glob("extract_*.log"))
    assert "1 image(s) cannot be decoded (gray/raw counts.tif: 32-bit float pixels from 1234.5 to 1234.5" in logs
    assert "rescale it to 0-1" in logs and "data.skip_unreadable: true" in logs
    assert "Traceback" not in logs
    # with skip_unreadable, it is left out and named in the job's log
    tiny_with(tmp_path, OWN.format(path=tmp_path / "modes", extra=", skip_unreadable: true"), args=TARGETS)
    tables = [pd.read_csv(tmp_path / "results" / "px" / "data" / s / "manifest.csv") for s in ("main", "judge")]
    rejected = pd.concat(tables).query("rejected")
    assert rejected["member"].tolist() == ["raw counts.tif"]
    logs = "".join(p.read_text() for p in (tmp_path / "results" / "px" / "logs").glob("extract_*.log"))
    assert "rejected gray/raw counts.tif: 32-bit float pixels from 1234.5" in logs


def test_folders_and_broken_links_among_images_and_classes_outside_the_path_are_named_at_parse_time(tmp_path):
    root = tmp_path / "D"
    for c in ("circle", "sub", "dangling", "loop"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            save(Image.new("RGB", (8, 8), (i, 0, 0)), root / c / f"{i}.png")
    (root / "sub" / "sub.jpg").mkdir()
    (root / "sub" / "sub.jpg" / "x.jpg").write_bytes(b"")
    os.symlink(tmp_path / "nowhere.jpg", root / "dangling" / "gone.jpg")
    os.symlink("b.jpg", root / "loop" / "a.jpg")
    os.symlink("a.jpg", root / "loop" / "b.jpg")
    outside = tmp_path / "elsewhere" / "circle"  # a class folder outside data.path, with images
    outside.mkdir(parents=True)
    for i in range(10):
        save(Image.new("RGB", (8, 8), (0, i, 0)), outside / f"{i}.png")
    # a class's name is its folder when it has no folder: of its own (the schema keeps "/" out of folder:)
    classes = ("[{name: circle}, {name: sub}, {name: dangling}, {name: loop}, {name: ../elsewhere/circle},"
               f" {{name: '{outside}'}}, {{name: parent, folder: ..}}, {{name: sub/inner}}]")
    for skip in ("false", "true"):
        proc = tiny_with(tmp_path, (
            "run_name: bad\n"
            f"data: {{source: folder, path: {root}, images_per_class: 4, val_per_class: 1, skip_unreadable: {skip},\n"
            f"  classes: {classes}}}\n"
            "reference: {source: none}\njudge: {images_per_class: 4}\n"
            "experiments: {scratch: {epochs: 1}, pretrained: null, frozen: null}\n"), args=("-n",), check=False)
        err = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"{root / 'sub'}: 'sub.jpg' is a folder, not an image" in err
        assert f"{root / 'dangling'}: 'gone.jpg' is a link that leads nowhere" in err
        assert f"{root / 'loop'}: 'a.jpg' is a link that leads nowhere (broken, or a loop of links)" in err
        assert "data.classes[4].name: '../elsewhere/circle' is not a folder inside data.path" in err
        assert f"data.classes[5].name: '{outside}' is not a folder inside data.path" in err
        assert "data.classes[6].folder: '..' is not a folder inside data.path" in err
        assert "data.classes[7].name: 'sub/inner' is also the class's folder under data.path" in err
        assert "'circle'" not in err  # the good class: no error
        for raw in ("IsADirectoryError", "Traceback", "OSError", "Errno"):
            assert raw not in err, raw
        assert not (tmp_path / "results" / "bad").exists()  # nothing ran

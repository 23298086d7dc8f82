"""Extract the class subset: pick images, split, decode and resize once.

Reads an ImageNet training set as users have it (``--layout``):

* ``folder``: the extracted ``train/<wnid>/*.JPEG`` folders (the stand-in too);
* ``synset_tars``: a folder of per-synset tars, ``<wnid>.tar``;
* ``train_tar``: the official ``ILSVRC2012_img_train.tar``, a tar of per-synset
  tars, read in place: only the wanted synsets' bytes, never unpacked.

Writes ``{train,val}_images.npy`` (uint8, N x H x W x 3), ``{train,val}_labels.npy``
and ``manifest.csv`` (one row per image: split, label, source member, SHA-256 of
its bytes).  The same inputs and seed give the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import io
import os
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

log = logging.getLogger("featevo.data.imagenet")

# what PIL opens among ImageNet's (JPEG, one PNG) and your own folders' files
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
RESIZES = ("stretch", "center_crop")  # data.resize


class ExtractionError(RuntimeError):
    """Bad input, with the file or config key named and what to do."""


# ---- reading the three layouts -------------------------------------------


def imagenet_root(path: Path) -> Path:
    """The training images under ``path``: Kaggle's download (``ILSVRC/Data/CLS-LOC/train``,
    from its root or from ``ILSVRC``) is ImageNet's training folder; anything else is itself."""
    path = Path(path)
    for inner in ("ILSVRC/Data/CLS-LOC/train", "Data/CLS-LOC/train"):
        if path.is_dir() and (path / inner).is_dir():
            return path / inner
    return path


def detect_layout(path: Path) -> str:
    """The layout of ``path`` (``data.layout: auto``): the registry's entry that recognizes it."""
    if not path.exists():
        raise ExtractionError(f"data.imagenet: {path} does not exist; point it at the ImageNet training "
                              "folder, a folder of <wnid>.tar files, or ILSVRC2012_img_train.tar")
    return next(name for name, layout in LAYOUTS.items() if layout.detect(path))


def fingerprint(path: Path, layout: str, wnids: list[str]) -> str:
    """What the extraction reads, not where it lies: a digest that a moved or copied
    (``cp -a`` or not) ImageNet keeps and a changed one does not, cheap enough to
    compute whenever the workflow is parsed (each layout's ``fingerprint``).

    ``flat`` (ILSVRC2012's validation images and their labels): a folder's image
    names and sizes, or a file's size and ends."""
    path = Path(path)
    if layout == "flat":
        name, digest = ("flat_folder", _fingerprint_flat) if path.is_dir() else \
            ("train_tar", LAYOUTS["train_tar"].fingerprint)
    else:
        path = imagenet_root(path)
        name = detect_layout(path) if layout == "auto" else layout
        digest = _layout(name).fingerprint
    h = hashlib.sha256(name.encode())
    digest(h, path, wnids)
    return h.hexdigest()[:16]


def _head_tail(h, f: Path, tail: bool) -> None:
    """A file's size and first 64 KiB (and with ``tail`` its last 64 KiB) into the digest ``h``."""
    size = f.stat().st_size
    h.update(str(size).encode())
    with open(f, "rb") as fh:
        h.update(fh.read(1 << 16))
        if tail:
            fh.seek(max(0, size - (1 << 16)))
            h.update(fh.read())


def _names_and_sizes(h, folder: Path, names) -> None:
    for name in names:
        if _is_image(name):
            h.update(f"{name}\0{(folder / name).stat().st_size}\0".encode("utf-8", "surrogateescape"))


def _fingerprint_folder(h, path: Path, wnids: list[str]) -> None:
    """Every wanted synset's image names and sizes."""
    for w in wnids:
        h.update(w.encode())
        d = path / w
        _names_and_sizes(h, d, folder_images(d) if d.is_dir() else [])


def _fingerprint_synset_tars(h, path: Path, wnids: list[str]) -> None:
    """Each wanted tar's size and first 64 KiB."""
    for w in wnids:
        h.update(w.encode())
        if (path / f"{w}.tar").is_file():
            _head_tail(h, path / f"{w}.tar", tail=False)


def _fingerprint_train_tar(h, path: Path, wnids: list[str]) -> None:
    """The file's size and its first and last 64 KiB (the outer tar's first headers and its end)."""
    for w in wnids:
        h.update(w.encode())
    _head_tail(h, path, tail=True)


def _fingerprint_flat(h, path: Path, wnids: list[str]) -> None:
    _names_and_sizes(h, path, sorted(os.listdir(path)))


def check_tar(path: Path) -> None:
    """``path`` begins with a tar header (read: 512 bytes), else :class:`ExtractionError`."""
    try:
        with tarfile.open(path, mode="r:") as tf:
            first = tf.next()
    except TAR_ERRORS as exc:
        first, why = None, str(exc)
    else:
        why = "no member in it"
    if first is None:
        raise ExtractionError(f"data.imagenet: {path} is a file but not a tar archive ({why}); point it at "
                              "ILSVRC2012_img_train.tar, your ImageNet training folder, or a folder of <wnid>.tar")


def _is_image(name: str) -> bool:
    """An image by its name: a suffix PIL reads, and not hidden (a name that starts with a
    dot: ``.DS_Store``, and macOS's AppleDouble files ``._x.jpg``, which hold a file's
    metadata, not its image)."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_SUFFIXES)


TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error)


@contextmanager
def _naming(archive: Path, synset: str, inside: str = ""):
    """Errors from reading a tar become one that names the archive, the synset and what to do."""
    try:
        yield
    except TAR_ERRORS as exc:
        where = f"{inside} (synset {synset}) inside it" if inside else f"synset {synset}"
        raise ExtractionError(f"{archive}: {where} is damaged or cut short ({exc}); download or copy "
                              f"{Path(archive).name} again and rerun") from exc


def _synset_tars_in(path: Path, wnids: list[str]) -> Iterator[tuple[str, tarfile.TarFile]]:
    """The wanted per-synset tars inside the official train tar, opened in place.

    Random access, not a stream: the outer tar's headers are read with seeks
    over the data between them, and only the wanted synsets' bytes (about
    0.5 GB of the 140 GB) are read.  Reading stops once every wanted synset is
    found, so damage after them, or inside synsets that are not wanted, does
    not matter; damage before them is named with the synsets it hides.
    """
    wanted = {f"{w}.tar": w for w in wnids}
    left = set(wnids)
    try:
        outer = tarfile.open(path, mode="r:")
    except TAR_ERRORS as exc:
        raise ExtractionError(f"{path} is not a readable tar ({exc}); download or copy it again, or point "
                              "data.imagenet at your ImageNet training folder") from exc
    with outer:
        while left:
            try:
                member = outer.next()
            except TAR_ERRORS as exc:
                raise ExtractionError(
                    f"{path} is damaged or cut short after {outer.offset} bytes ({exc}), before the synsets "
                    f"{sorted(left)} were found; download or copy it again and rerun") from exc
            if member is None:
                if left and not _ends_properly(path, outer.offset):  # tarfile takes a cut header for the end
                    raise ExtractionError(
                        f"{path} is damaged or cut short after {outer.offset} bytes (no end-of-archive marker), "
                        f"before the synsets {sorted(left)} were found; download or copy it again and rerun")
                break  # the end: synsets never found are reported as missing by the caller
            w = wanted.get(Path(member.name).name)
            if w in left and member.isfile():
                left.discard(w)
                with _naming(path, w, member.name):
                    inner = tarfile.open(fileobj=outer.extractfile(member), mode="r:")
                with inner:
                    yield w, inner


def _ends_properly(path: Path, offset: int) -> bool:
    """A tar ends with two zeroed 512-byte blocks where its last member ends."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        end = fh.read(1024)
    return len(end) == 1024 and not any(end)


def folder_images(d: Path) -> list[str]:
    """The image files of the folder ``d``, by name, sorted (:func:`_is_image`: hidden files
    skipped).  An entry with an image's name that is not a file (a folder such as
    ``sub.jpg/``, a broken or looping link) is refused, named: it is listed while the
    workflow is parsed, so that no job meets it."""
    names = []
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)  # the first bad entry named is always the same
    except OSError as exc:
        raise ExtractionError(f"{d} cannot be listed ({exc.strerror or exc}); check its permissions") from exc
    for e in entries:
        if not _is_image(e.name):
            continue
        try:
            regular = e.is_file()  # follows a link: False for a folder or a link to nothing
        except OSError:  # a looping link
            regular = False
        if not regular:
            if e.is_symlink():
                what = "a link that leads nowhere (broken, or a loop of links)"
            else:
                what = "a folder" if e.is_dir(follow_symlinks=False) else "not a regular file"
            raise ExtractionError(f"{d}: {e.name!r} is {what}, not an image; move it out of the class's folder, "
                                  "rename it, or fix the link")
        names.append(e.name)
    return sorted(names)


def _list_folder(path: Path, wnids: list[str]) -> dict[str, list[str]]:
    found = {}
    for w in wnids:
        d = path / w
        found[w] = folder_images(d) if d.is_dir() else []
        bad = [n for n in found[w] if not _utf8(n)]
        if bad:
            raise ExtractionError(f"{d}: the file name {shown_name(bad[0])!r} is not UTF-8 ({len(bad)} such); "
                                  "rename it (the manifest lists every file by name)")
    return found


def _read_folder(path: Path, wanted: dict[str, set[str]]) -> Iterator[tuple[str, str, bytes]]:
    for w, names in wanted.items():
        for name in sorted(names):
            try:
                data = (path / w / name).read_bytes()
            except OSError as exc:  # gone, or changed into a folder, since the workflow listed it
                raise ExtractionError(f"{path / w / name} cannot be read ({exc.strerror or exc}); restore it, or "
                                      "move it out of the class's folder, and rerun") from exc
            yield w, name, data


def _list_synset_tars(path: Path, wnids: list[str]) -> dict[str, list[str]]:
    found = {}
    for w in wnids:
        t = path / f"{w}.tar"
        if t.is_file():
            with _naming(t, w), tarfile.open(t) as tf:
                found[w] = sorted(m.name for m in tf if m.isfile() and _is_image(m.name))
        else:
            found[w] = []
    return found


def _read_synset_tars(path: Path, wanted: dict[str, set[str]]) -> Iterator[tuple[str, str, bytes]]:
    for w, names in wanted.items():
        with _naming(path / f"{w}.tar", w), tarfile.open(path / f"{w}.tar", mode="r|") as tf:
            for m in tf:
                if m.name in names:
                    data = tf.extractfile(m).read()
                    yield w, m.name, data


def _list_train_tar(path: Path, wnids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {w: [] for w in wnids}
    for w, inner in _synset_tars_in(path, wnids):
        with _naming(path, w, f"{w}.tar"):
            found[w] = sorted(m.name for m in inner if m.isfile() and _is_image(m.name))
    return found


def _read_train_tar(path: Path, wanted: dict[str, set[str]]) -> Iterator[tuple[str, str, bytes]]:
    for w, inner in _synset_tars_in(path, list(wanted)):
        with _naming(path, w, f"{w}.tar"):
            for m in inner:
                if m.name in wanted[w]:
                    data = inner.extractfile(m).read()
                    yield w, m.name, data


def _counts(listing: dict[str, list[str]]) -> dict[str, int]:
    return {w: len(names) for w, names in listing.items()}


def _census_folder(path: Path, wnids: list[str], deep: bool) -> dict[str, int]:
    return _counts(_list_folder(path, wnids))  # a stat per file: cheap enough for every parse


def _census_synset_tars(path: Path, wnids: list[str], deep: bool) -> dict[str, int | None]:
    if deep:
        return _counts(_list_synset_tars(path, wnids))
    return {w: None if (path / f"{w}.tar").is_file() else 0 for w in wnids}


def _census_train_tar(path: Path, wnids: list[str], deep: bool) -> dict[str, int | None]:
    if not path.is_file():
        raise ExtractionError(f"data.imagenet: {path} is not a file, but data.layout is train_tar")
    check_tar(path)
    return _counts(_list_train_tar(path, wnids)) if deep else {}


@dataclass(frozen=True)
class Layout:
    """One way an ImageNet training set lies on disk, behind one signature:
    ``detect(path)`` recognizes it (``data.layout: auto``), ``list(path, wnids)`` gives
    each synset's image member names, sorted, without reading an image, and
    ``read(path, wanted)`` yields (wnid, name, bytes) for the wanted members only;
    ``fingerprint(digest, path, wnids)`` feeds a digest what the extraction reads (not
    where it lies: :func:`fingerprint`), and ``census(path, wnids, deep)`` counts each
    wanted synset's images when the workflow is parsed (None: present, not counted;
    ``deep`` False in each job that re-parses the Snakefile: only what is cheap).
    A new layout is one entry here and its name in the schema's ``data.layout``."""

    detect: Callable[[Path], bool]
    list: Callable[[Path, list[str]], dict[str, list[str]]]
    read: Callable[[Path, dict[str, set[str]]], Iterator[tuple[str, str, bytes]]]
    fingerprint: Callable[[object, Path, list[str]], None]
    census: Callable[[Path, list[str], bool], dict[str, int | None]]


# data.layout (besides auto), in the schema's order
LAYOUTS: dict[str, Layout] = {
    # train/<wnid>/*.JPEG (ILSVRC2012_img_train extracted; Kaggle's ILSVRC/Data/CLS-LOC/train)
    "folder": Layout(detect=lambda p: p.is_dir() and not any(p.glob("n*.tar")), list=_list_folder,
                     read=_read_folder, fingerprint=_fingerprint_folder, census=_census_folder),
    # <wnid>.tar per synset (the official train tar unpacked once)
    "synset_tars": Layout(detect=lambda p: p.is_dir() and any(p.glob("n*.tar")), list=_list_synset_tars,
                          read=_read_synset_tars, fingerprint=_fingerprint_synset_tars, census=_census_synset_tars),
    # ILSVRC2012_img_train.tar itself, read in place
    "train_tar": Layout(detect=lambda p: p.is_file(), list=_list_train_tar, read=_read_train_tar,
                        fingerprint=_fingerprint_train_tar, census=_census_train_tar),
}


def _layout(layout: str) -> Layout:
    if layout not in LAYOUTS:
        raise ExtractionError(f"data.layout: unknown {layout!r}; use auto or one of {', '.join(LAYOUTS)}")
    return LAYOUTS[layout]


def list_members(path: Path, layout: str, wnids: list[str]) -> dict[str, list[str]]:
    """Image member names per wnid, sorted, without reading any image."""
    return _layout(layout).list(path, wnids)


def census(path: Path, layout: str, wnids: list[str], deep: bool = True) -> dict[str, int | None]:
    """Each wanted synset's image count at parse time (``Layout.census``); ``layout`` may be auto."""
    path = imagenet_root(Path(path))
    return _layout(detect_layout(path) if layout == "auto" else layout).census(path, wnids, deep)


def shown_name(name: str) -> str:
    """A file name as a person reads it: bytes that are not UTF-8 as \\xNN escapes (Python keeps
    them as surrogates, which print as \\udcNN)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def undecodable(data: bytes, exc: Exception) -> str:
    """Why an image file cannot be decoded, in words (PIL's message names an in-memory
    buffer's address: "cannot identify image file <_io.BytesIO object at 0x...>")."""
    from PIL import UnidentifiedImageError

    if not data:
        return "it is empty (0 bytes)"
    if isinstance(exc, UnidentifiedImageError):
        return f"not an image any reader knows ({len(data)} bytes, starting {data[:8].hex(' ')})"
    return str(exc) or type(exc).__name__


def empty_or_not_utf8(d: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """Of ``names`` (files in ``d``): the empty ones (0 bytes, a stat each) and those whose
    name is not UTF-8; both found while the workflow is parsed, before any job."""
    return [n for n in names if (d / n).stat().st_size == 0], [n for n in names if not _utf8(n)]


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogates
        return False
    return True


def read_members(path: Path, layout: str, wanted: dict[str, set[str]]) -> Iterator[tuple[str, str, bytes]]:
    """Yield (wnid, member name, bytes) for the wanted members only."""
    return _layout(layout).read(path, wanted)


# ---- ILSVRC2012's own validation images ----------------------------------------


def val_labels(path: Path) -> dict[str, str]:
    """ILSVRC2012 validation image (file stem, ``ILSVRC2012_val_00000001``) -> its wnid.

    From Kaggle's ``LOC_val_solution.csv`` (ImageId, PredictionString whose first
    word is the wnid), or the devkit's ``ILSVRC2012_validation_ground_truth.txt``
    (one ILSVRC2012_ID per image, in order) with the devkit's ``meta.mat`` beside it
    (which maps those IDs to wnids)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path)
            return {str(i): str(p).split()[0] for i, p in zip(table["ImageId"], table["PredictionString"])}
        from scipy.io import loadmat

        meta = path.parent / "meta.mat"
        synsets = loadmat(meta, squeeze_me=True)["synsets"]
        wnid_of = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
        ids = [int(v) for v in path.read_text().split()]
        return {f"ILSVRC2012_val_{i + 1:08d}": wnid_of[k] for i, k in enumerate(ids)}
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise ExtractionError(f"data.imagenet_val_labels: {path} cannot be read as LOC_val_solution.csv or the "
                              f"devkit's ILSVRC2012_validation_ground_truth.txt with meta.mat beside it ({exc!r})"
                              ) from exc


def val_members(images: Path, labels: dict[str, str], wnids: list[str], per_class: int) -> dict[str, list[str]]:
    """The first ``per_class`` validation images of each wnid (by name), as member names of
    ``images``: a folder of ``ILSVRC2012_val_*.JPEG`` or ``ILSVRC2012_img_val.tar``."""
    images = Path(images)
    if images.is_dir():
        names = {Path(n).stem: n for n in os.listdir(images) if _is_image(n)}
    else:
        try:
            with tarfile.open(images, mode="r:") as tf:
                names = {Path(m.name).stem: m.name for m in tf if m.isfile() and _is_image(m.name)}
        except TAR_ERRORS as exc:
            raise ExtractionError(f"data.imagenet_val: {images} is neither a folder nor a readable tar ({exc})"
                                  ) from exc
    out = {}
    for w in wnids:
        mine = sorted(names[stem] for stem, wnid in labels.items() if wnid == w and stem in names)
        if len(mine) < per_class:
            raise ExtractionError(f"data.val_per_class: ILSVRC2012's validation set has {len(mine)} images of {w} "
                                  f"in {images} ({per_class} asked for; it has 50 of each class); lower "
                                  "data.val_per_class, or check data.imagenet_val and data.imagenet_val_labels")
        out[w] = mine[:per_class]
    return out


def read_val(images: Path, wanted: dict[str, list[str]]) -> Iterator[tuple[str, str, bytes]]:
    """Yield (wnid, member name, bytes) of the wanted validation images."""
    images = Path(images)
    wnid_of = {name: w for w, names in wanted.items() for name in names}
    if images.is_dir():
        for name, w in sorted(wnid_of.items()):
            yield w, name, (images / name).read_bytes()
        return
    with _naming(images, "validation"), tarfile.open(images, mode="r|") as tf:
        for m in tf:
            if m.name in wnid_of:
                yield wnid_of[m.name], m.name, tf.extractfile(m).read()


def batched(items, n: int):
    """Lists of up to n items (itertools.batched arrives in Python 3.12)."""
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


# ---- decoding ---------------------------------------------------------------


# transparent pixels are laid on white: what an image viewer or a web page shows
ALPHA_BACKGROUND = (255, 255, 255)


class UnsupportedImage(ValueError):
    """A file PIL opens whose pixels have no stated range to read them by."""


def _gray8(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or 32-bit float grayscale image as 8-bit ``L``, scaled by
    its mode's full range, never by the image's own minimum and maximum (a dark image
    stays dark, and an image equals its 8-bit twin): 16-bit 0-65535 (``I;16``, and
    ``I`` whose values lie in 0-65535, as older PIL reads 16-bit PNG files); float 0.0
    (black) to 1.0 (white).  Other values are refused (:class:`UnsupportedImage`)."""
    a = np.asarray(img)
    if img.mode == "F":
        if not np.isfinite(a).all():
            raise UnsupportedImage("its 32-bit float pixels include NaN or infinity")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise UnsupportedImage(f"32-bit float pixels from {lo:g} to {hi:g}: a float image is read as 0.0 "
                                   "(black) to 1.0 (white); rescale it to 0-1, or save it as an 8- or 16-bit image")
        scaled = a.astype(np.float64) * 255
    else:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise UnsupportedImage(f"32-bit integer pixels from {lo} to {hi}: an integer image is read as 16-bit "
                                   "(0-65535); save it as an 8- or 16-bit image")
        scaled = a.astype(np.float64) * 255 / 65535
    return Image.fromarray(np.rint(scaled).astype(np.uint8), "L")


def _premultiplied_gray(img: Image.Image) -> Image.Image:
    """``La`` (gray premultiplied by alpha, which PIL cannot convert) on the background."""
    a = np.asarray(img).astype(np.float64)
    bg = np.mean(ALPHA_BACKGROUND)
    gray = a[..., 0] + (1 - a[..., 1] / 255) * bg
    return Image.fromarray(np.rint(np.clip(gray, 0, 255)).astype(np.uint8), "L").convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode PIL opens as 8-bit RGB.

    * ``1``, ``L``, ``P``, ``RGB``, ``RGBX``, ``CMYK``, ``YCbCr``, ``HSV``, ``LAB``:
      PIL's own conversion;
    * 16-bit (``I;16``, ``I;16B``, ...), 32-bit integer (``I``) and float (``F``) gray:
      scaled by the mode's full range (:func:`_gray8`), or refused;
    * with transparency (``RGBA``, ``RGBa``, ``LA``, ``La``, ``PA``, and a palette, gray
      or RGB image with a transparent colour, as in GIF and PNG files): composited on
      :data:`ALPHA_BACKGROUND` (white), so a fully transparent pixel is white."""
    mode = img.mode
    if mode == "F" or mode == "I" or mode.startswith("I;16"):
        return _gray8(img).convert("RGB")
    if mode == "La":
        return _premultiplied_gray(img)
    if mode in ("RGBA", "RGBa", "LA", "PA") or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        bg = Image.new("RGBA", img.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(bg, img.convert("RGBA")).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise UnsupportedImage(f"PIL cannot convert its mode {mode} to RGB ({exc}); save it as an 8-bit RGB "
                               "image") from exc


EXIF_ORIENTATIONS = ("ignore", "apply")  # data.exif_orientation
ORIENTATION = 0x0112  # the EXIF tag: 1 is upright, 2-8 a mirror or a turn


def orientation(img: Image.Image) -> int:
    """The image's EXIF orientation (1, upright, where it has none)."""
    try:
        return int(img.getexif().get(ORIENTATION, 1) or 1)
    except Exception:  # a damaged EXIF block is no orientation
        return 1


def decode(data: bytes, size: int, resize: str, exif: str = "ignore") -> np.ndarray:
    """:func:`decode_oriented`'s image alone."""
    return decode_oriented(data, size, resize, exif)[0]


def decode_oriented(data: bytes, size: int, resize: str, exif: str = "ignore") -> tuple[np.ndarray, int]:
    """Any image PIL opens as uint8 RGB size x size (:func:`to_rgb`: every mode, 16-bit
    and float scaled by their mode's range, transparency laid on white), or
    :class:`UnsupportedImage` that says why.

    The format is sniffed from the bytes, not the name: ImageNet has a PNG
    named ``.JPEG``.  ``stretch`` resizes to size x size as the paper did;
    ``center_crop`` keeps the aspect ratio and crops the longer side.  ``exif``:
    ``apply`` turns the image upright by its EXIF orientation first.  Also returns
    that orientation (1: upright or none).
    """
    if exif not in EXIF_ORIENTATIONS:
        raise ExtractionError(f"data.exif_orientation: unknown {exif!r}; use one of {', '.join(EXIF_ORIENTATIONS)}")
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it can
        turn = orientation(img)
        if exif == "apply" and turn != 1:
            img = ImageOps.exif_transpose(img)
        img = to_rgb(img)
        if resize == "center_crop":
            w, h = img.size
            s = min(w, h)
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        elif resize != "stretch":
            raise ExtractionError(f"data.resize: unknown {resize!r}; use one of {', '.join(RESIZES)}")
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(img, dtype=np.uint8), turn


# ---- selection and split ------------------------------------------------------


def class_stream(class_id: str) -> int:
    """The class's own random stream: a wnid's number (n01644373: 1644373), or for a
    class of your own folder a checksum of its folder's name (CRC-32)."""
    if len(class_id) == 9 and class_id[0] == "n" and class_id[1:].isdigit():
        return int(class_id[1:])
    return zlib.crc32(class_id.encode("utf-8", "surrogateescape"))


def select_and_split(members: dict[str, list[str]], per_class: int, val_per_class: int,
                     seed: int, exclude: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """Seeded choice of ``per_class`` images per class and a stratified split.

    Each class draws from its own stream seeded by (seed, class), so the choice
    for one class does not depend on which other classes are asked for.  Members in
    ``exclude`` (another subset's, e.g. the judge's images beside the experiments')
    are never chosen.
    """
    if not 0 <= val_per_class < per_class:
        raise ExtractionError(f"data.val_per_class ({val_per_class}) must be at least 0 and below "
                              f"data.images_per_class ({per_class})")
    rows = []
    for label, (wnid, names) in enumerate(members.items()):
        if exclude:
            names = [n for n in names if n not in exclude.get(wnid, ())]
        if not names:
            raise ExtractionError(f"data.classes: synset {wnid} has no images in the input; check the wnid "
                                  "and data.imagenet")
        if len(names) < per_class:
            raise ExtractionError(f"data.images_per_class: synset {wnid} has only {len(names)} images, "
                                  f"{per_class} asked for; lower data.images_per_class")
        rng = np.random.default_rng([seed, class_stream(wnid)])
        chosen = np.sort(rng.choice(len(names), per_class, replace=False))
        val = set(rng.choice(chosen, val_per_class, replace=False).tolist())
        for i in chosen:
            rows.append({"split": "val" if i in val else "train", "label": label, "wnid": wnid,
                         "member": names[i]})
    return pd.DataFrame(rows)


def extract(path: Path, out: Path, wnids: list[str], *, per_class: int, val_per_class: int, size: int,
            seed: int, layout: str, resize: str, skip_unreadable: bool, threads: int = 1, exif: str = "ignore",
            val_images: Path | None = None, val_labels_file: Path | None = None,
            exclude: Path | None = None, log=print) -> pd.DataFrame:
    """With ``val_images`` (and ``val_labels_file``: data.validation ilsvrc_val), every one
    of the ``per_class`` training images trains, and the validation split is the first
    ``val_per_class`` of each class in ILSVRC2012's own validation set, which the
    ImageNet weights never saw; without, ``val_per_class`` of them are held out (the paper).
    ``exclude``: another subset's manifest, none of whose images are taken."""
    path = imagenet_root(Path(path))
    if not path.exists():
        raise ExtractionError(f"data.imagenet: {path} does not exist")
    if layout == "auto":
        layout = detect_layout(path)
    start = time.monotonic()
    log(f"[extract] {path} ({layout}): listing {len(wnids)} synsets")
    own_val = val_images is not None
    taken = None
    if exclude is not None:
        other = pd.read_csv(exclude)
        taken = {w: set(g["member"]) for w, g in other.groupby("wnid")}
    table = select_and_split(list_members(path, layout, wnids), per_class, 0 if own_val else val_per_class, seed,
                             taken)
    if own_val:
        chosen = val_members(val_images, val_labels(val_labels_file), wnids, val_per_class)
        log(f"[extract] validation: {val_per_class} of each class from {val_images}")
        table = pd.concat([table, pd.DataFrame([{"split": "val", "label": wnids.index(w), "wnid": w, "member": m}
                                                for w in wnids for m in chosen[w]])], ignore_index=True)
    from_train = table[table["split"] == "train"] if own_val else table
    wanted = {w: set(g["member"]) for w, g in from_train.groupby("wnid", sort=False)}
    index = {(w, m): i for i, (w, m) in enumerate(zip(table["wnid"], table["member"]))}
    images = np.zeros((len(table), size, size, 3), np.uint8)
    digests = [""] * len(table)
    oriented = np.zeros(len(table), bool)
    rejects: list[tuple[str, str, str]] = []

    def work(item):
        w, name, data = item
        i = index[(w, name)]
        digests[i] = hashlib.sha256(data).hexdigest()
        try:
            images[i], turn = decode_oriented(data, size, resize, exif)
            oriented[i] = turn != 1
        except ExtractionError:
            raise
        except Exception as exc:  # truncated, not an image, unsupported mode: every one named at the end
            rejects.append((w, name, undecodable(data, exc)))

    done = 0
    with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL decodes without the GIL
        # in bounded chunks: Executor.map takes its whole input at once, and the
        # paper's subset is over half a gigabyte of JPEG bytes
        members = read_members(path, layout, wanted)
        if own_val:
            members = chain(members, read_val(val_images, chosen))
        for chunk in batched(members, 64 * max(1, threads)):
            list(pool.map(work, chunk))
            if (done + len(chunk)) // 1000 > done // 1000:
                log(f"[extract] {done + len(chunk)}/{len(table)} images, {time.monotonic() - start:.1f} s")
            done += len(chunk)
    table["sha256"] = digests
    missing = table["sha256"] == ""
    if missing.any():
        raise ExtractionError(f"{path}: {int(missing.sum())} listed members could not be read back, e.g. "
                              f"{table.loc[missing, 'member'].iloc[0]}")
    if rejects and not skip_unreadable:
        rejects.sort()
        listed = "; ".join(f"{w}/{shown_name(m)}: {why}" for w, m, why in rejects[:5])
        raise ExtractionError(f"{path}: {len(rejects)} image(s) cannot be decoded ({listed}"
                              f"{'; ...' if len(rejects) > 5 else ''}); replace or remove them, or set "
                              "data.skip_unreadable: true to leave such files out")
    bad = {(w, m) for w, m, _ in rejects}
    table["rejected"] = [(w, m) in bad for w, m in zip(table["wnid"], table["member"])]
    keep = ~table["rejected"].to_numpy()
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        sel = keep & (table["split"] == split).to_numpy()
        np.save(out / f"{split}_images.npy", images[sel])
        np.save(out / f"{split}_labels.npy", table.loc[sel, "label"].to_numpy(np.int64))
    table.to_csv(out / "manifest.csv", index=False)
    for w, m, why in rejects:
        log(f"[extract] rejected {w}/{shown_name(m)}: {why}")
    if oriented.any():
        log(f"[extract] {int(oriented.sum())} images carry an EXIF orientation other than upright: "
            + ("turned upright (data.exif_orientation: apply)" if exif == "apply" else
               "read as stored, as torchvision's ImageFolder reads them (data.exif_orientation: apply turns them)"))
    log(f"[extract] {int(keep.sum())} images ({int((table['split'][keep] == 'val').sum())} val), "
        f"{len(rejects)} rejected, {size}x{size} px, {time.monotonic() - start:.1f} s")
    return table

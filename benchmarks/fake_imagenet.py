"""A small fake ImageNet and a weights file in torchvision's format, for trying
``configs/paper.yaml`` (and testing it) without ImageNet or a download.

``ILSVRC2012_img_train.tar`` in the official layout (a tar of ``<wnid>.tar``,
wnid order, distractor synsets among the wanted ones) with ImageNet's quirks
(CMYK, grayscale, a PNG named ``.JPEG``), and ``vgg16-<digest>.pth``: seeded
random weights saved and named as torchvision ships its file.  Random pixels:
nothing here is meant to be learned.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

# the paper's four synsets and their ImageNet-1k units, and two that are not wanted
PAPER_WNIDS = {"n01644373": 31, "n02007558": 130, "n07697313": 933, "n03982430": 736}
DISTRACTORS = ("n01641577", "n02009912")


def jpeg_bytes(rng: np.random.Generator, i: int) -> bytes:
    """A small photo-like image; every fourth one with one of ImageNet's quirks."""
    from PIL import Image

    arr = (rng.random((48 + i % 5, 64, 3)) * 255).astype(np.uint8)
    img, fmt = Image.fromarray(arr), "JPEG"
    if i % 4 == 1:
        img = img.convert("CMYK")
    elif i % 4 == 2:
        fmt = "PNG"  # a PNG named .JPEG
    elif i % 4 == 3:
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def train_tar(folder: Path, per_class: int, wnids=tuple(PAPER_WNIDS), distractors=DISTRACTORS) -> Path:
    """``folder/ILSVRC2012_img_train.tar`` with ``per_class`` images of each synset."""
    rng = np.random.default_rng(0)
    inner = {}
    for w in [*wnids, *distractors]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for i in range(per_class):
                data = jpeg_bytes(rng, i)
                info = tarfile.TarInfo(f"{w}_{i}.JPEG")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        inner[w] = buf.getvalue()
    path = Path(folder) / "ILSVRC2012_img_train.tar"
    with tarfile.open(path, "w") as tf:
        for w in sorted(inner):  # the official tar is in wnid order, distractors among the four
            info = tarfile.TarInfo(f"{w}.tar")
            info.size = len(inner[w])
            tf.addfile(info, io.BytesIO(inner[w]))
    return path


def save_as_torchvision(state: dict, folder: Path, arch: str = "vgg16") -> tuple[Path, str]:
    """``state`` saved as torchvision ships its weights: ``<arch>-<first 8 hex of the
    SHA-256>.pth``; returns the path and the whole digest."""
    import torch

    from featevo.models.weights import sha256

    tmp = Path(folder) / f"{arch}.pth"
    torch.save(state, tmp)
    digest = sha256(tmp)
    path = Path(folder) / f"{arch}-{digest[:8]}.pth"
    tmp.rename(path)
    return path, digest


def vgg16_weights(folder: Path) -> tuple[Path, str]:
    """torchvision's VGG-16 with seeded random weights, saved and named as its file is."""
    import torch
    import torchvision

    torch.manual_seed(0)
    return save_as_torchvision(torchvision.models.vgg16().state_dict(), folder)

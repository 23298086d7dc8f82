"""The network's inputs, for every stage: the extracted splits, normalization,
conversion and placement on the device (imports torch and numpy only).

ImageNet statistics: torchvision's weights expect them, and the stand-in uses
them too so that both paths see identically normalized inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Subset:
    """The extracted arrays of one split, held in memory as uint8 NHWC."""

    def __init__(self, folder: Path, split: str):
        path = Path(folder) / f"{split}_images.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; rerun the extract_subset rule")
        self.images = np.load(path)
        self.labels = np.load(Path(folder) / f"{split}_labels.npy")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{folder}: {split} images and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)


def subset_classes(folder: Path) -> list[str]:
    """The class ids of an extracted subset, in label order: its ``manifest.csv`` (the
    classes of a network are those of the data it trains on)."""
    import csv

    path = Path(folder) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rerun the extract_subset rule")
    with open(path, newline="") as fh:
        ids = {int(row["label"]): row["wnid"] for row in csv.DictReader(fh)}
    if sorted(ids) != list(range(len(ids))):
        raise ValueError(f"{path}: its labels are not 0 to {len(ids) - 1}")
    return [ids[i] for i in range(len(ids))]


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] (N, 3, H, W) -> the network's input (ImageNet statistics)."""
    return (x - x.new_tensor(MEAN).view(1, 3, 1, 1)) / x.new_tensor(STD).view(1, 3, 1, 1)


def to_pixels(batch: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC -> float NCHW pixels in [0, 1] on the device."""
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    return batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)


def to_input(batch: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC -> normalized float NCHW in channels_last memory (no copy of layout)."""
    return imagenet_normalize(to_pixels(batch, device)).contiguous(memory_format=torch.channels_last)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8."""
    return (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def on_device(data: Subset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's uint8 images and labels where the network runs: on a GPU they
    are copied once (the paper's 4800 training images are 0.7 GiB as uint8), so
    that no batch crosses from the host; on the CPU they are the arrays as they are."""
    return torch.from_numpy(data.images).to(device), torch.from_numpy(data.labels).to(device)


def fixed_images(labels: np.ndarray, per_class: int, classes: int, refuse: str | None = None) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class, class by class: the same
    images for every checkpoint of a run, so that what is read of them compares over
    training.  Where a class holds fewer: with ``refuse`` (the setting's name) an error
    naming it; else every class gives as many as the smallest holds, so the classes
    weigh alike."""
    idx = [np.flatnonzero(labels == k) for k in range(classes)]
    short = [(k, len(i)) for k, i in enumerate(idx) if len(i) < per_class]
    if refuse and short:
        k, n = short[0]
        raise ValueError(f"{refuse} ({per_class}) is more than the {n} validation images of class {k}; lower it "
                         "or raise data.val_per_class")
    per_class = min([per_class, *map(len, idx)])
    idx = [i[:per_class] for i in idx]
    return np.concatenate(idx) if idx else np.zeros(0, int)

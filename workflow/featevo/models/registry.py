"""The published weights the project knows: torchvision's file names and the whole
SHA-256 of those it has checked, and where torch.hub keeps them.  Standard library
only (the workflow's parse checks ``reference.weights`` with it, without torch)."""

from __future__ import annotations

import re
from pathlib import Path


def hub_checkpoints() -> Path:
    """torch.hub's folder of downloaded weights, as ``torch.hub.get_dir()`` finds it
    ($TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch), without importing torch."""
    import os

    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def weights_file_name(arch: str, deep: bool = True) -> str | None:
    """The name torchvision gives ``arch``'s ImageNet weights file (VGG-16's known without
    torch; others, with ``deep``, from torchvision's weights table), or None."""
    if arch == "vgg16":
        return "vgg16-397923af.pth"
    if not deep:
        return None
    try:
        from torchvision.models import get_model_weights

        return Path(get_model_weights(arch).DEFAULT.url).name
    except (ValueError, KeyError, AttributeError):
        return None


def weights_problem(path: str | None, sha256: str | None = None, arch: str = "vgg16",
                    deep: bool = True) -> str | None:
    """reference.weights, checked where it is cheap (at parse time, no hashing): a file,
    not empty, and with no digest pinned (reference.sha256) named as torchvision names
    its files; with null, torchvision's file of ``arch`` in the torch hub cache (else a
    note: the job downloads it, which needs the internet)."""
    if not path:
        name = weights_file_name(arch, deep)
        if deep and name and not (hub_checkpoints() / name).is_file():
            import sys

            print(f"note: reference.weights is null and {hub_checkpoints() / name} is not in the torch hub cache: "
                  "the job downloads it, which needs the internet (offline: copy the file there, or set "
                  "reference.weights to its path)", file=sys.stderr)
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        known = weights_file_name(arch, deep)
        return (f"reference.weights: {path} is not a file; point it at your copy of {arch}'s weights file"
                + (f" ({known})" if known else " (torchvision's, as it names it)")
                + ", or set it to null to use the torch hub cache")
    if p.stat().st_size == 0:
        return f"reference.weights: {path} is empty; copy the weights file again"
    if not sha256 and weights_file_name(arch, False) not in PUBLISHED_SHA256:
        return name_problem(p.name)
    return None


# the whole SHA-256 of torchvision's files that the project has checked (a file's name
# holds only the first 8 hex digits); others are pinned with reference.sha256
PUBLISHED_SHA256 = {"vgg16-397923af.pth": "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"}


NAME_DIGITS = re.compile(r"-([0-9a-f]{8,64})\.[^.]+$")  # torchvision's names: <arch>-<first hex digits>.pth


def name_problem(name: str) -> str | None:
    """Why a weights file with no digest pinned cannot be checked (no hex digits in its
    name, as torchvision names its files), or None."""
    if NAME_DIGITS.search(name):
        return None
    return (f"reference.weights: {name} has no hash in its name (torchvision names it like vgg16-397923af.pth); "
            "keep the published file name, or pin the file's whole SHA-256 in reference.sha256")

"""Import torchvision's ImageNet weights of ``model.arch`` as a featevo checkpoint.

The file comes from the config (cluster nodes are often offline) or from the
torch hub cache, downloaded there when the machine is online.  What is checked,
before anything is loaded:

* its whole SHA-256 equals ``reference.sha256`` where the config gives it (then
  the file may have any name: a state dict of your own in torchvision's format),
  else the published digest where the project knows it (:data:`PUBLISHED_SHA256`),
  so a truncated, tampered or other file is refused even when its name was made
  to match;
* where no whole digest is known, its name carries hex digits as torchvision
  names its files (``<arch>-<first 8 hex digits of the SHA-256>.pth``, e.g.
  ``resnet18-f37072fd.pth``), they begin the file's SHA-256 (torch.hub's own
  check: 32 bits), and a warning says how to pin the whole digest;
* its tensors have the network's names and shapes.

The weights' own preprocessing (torchvision's ``transforms()``: mean, std, crop
size) is recorded beside them, and a warning names any that differs from the
workflow's (ImageNet's mean and std, ``data.image_size``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from featevo.models.checkpoint import save_checkpoint
from featevo.models.registry import NAME_DIGITS, PUBLISHED_SHA256, name_problem
from featevo.models.networks import ModelSpec, build_model

log = logging.getLogger("featevo.models.weights")

VGG16_FILE = "vgg16-397923af.pth"
IMAGENET_SPEC = ModelSpec(arch="vgg16", num_classes=1000, width_divisor=1, pool_size=7)


class WeightsError(RuntimeError):
    pass


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_hash(path: Path, expected: str | None = None) -> str:
    """The file's SHA-256, after checking it equals ``expected`` in full when given (any
    file name then), else that it starts with the digits in the file's name."""
    if not expected:
        problem = name_problem(path.name)
        if problem:
            raise WeightsError(problem)
    digest = sha256(path)
    m = NAME_DIGITS.search(path.name)
    if not expected and not digest.startswith(m.group(1)):
        raise WeightsError(f"reference.weights: {path} is corrupt or not the published file (SHA-256 "
                           f"{digest[:16]}..., its name says {m.group(1)}...); download it again")
    if expected and digest != expected.lower():
        raise WeightsError(f"reference.weights: {path} has SHA-256 {digest}, not {expected} "
                           "(reference.sha256, else the published file's); it is corrupt or not the published "
                           "file: download it again, or set reference.sha256 to the digest of the file you mean "
                           "to use")
    return digest


def published(arch: str):
    """torchvision's default ImageNet weights of ``arch`` (a ``WeightsEnum`` member)."""
    from torchvision.models import get_model_weights

    return get_model_weights(arch).DEFAULT


def file_name(arch: str) -> str:
    """The name torchvision gives ``arch``'s weights file (``resnet18-f37072fd.pth``)."""
    if arch == "vgg16":  # without importing torchvision
        return VGG16_FILE
    return Path(published(arch).url).name


def locate(weights: str | None, arch: str = "vgg16") -> Path:
    """The weights file: ``reference.weights`` (``~`` expanded, as the config check expands
    it), or torchvision's file of ``arch`` in the torch hub cache, downloaded there when
    it is missing and the machine is online."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"reference.weights: {path} does not exist")
        return path
    name = file_name(arch)
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not path.is_file():
        try:  # downloads into the hub cache and checks the hash itself
            published(arch).get_state_dict(progress=False, check_hash=True)
        except Exception as exc:
            raise WeightsError(f"reference.weights is null and {path} is not in the torch hub cache, and the "
                               f"download failed ({exc}); fetch {name} on a machine that is online and set "
                               "reference.weights to its path") from exc
    return path


def preprocessing(arch: str) -> dict:
    """The weights' own preprocessing (mean, std, sizes), as torchvision's transforms() says."""
    if arch.startswith("vgg"):
        from featevo.data.inputs import MEAN, STD

        return {"mean": list(MEAN), "std": list(STD), "crop_size": 224, "resize_size": 256}
    t = published(arch).transforms()
    return {"mean": list(t.mean), "std": list(t.std), "crop_size": int(t.crop_size[0]),
            "resize_size": int(t.resize_size[0])}


def import_weights(weights: str | None, out: Path, sha256: str | None = None, arch: str = "vgg16",
                   image_size: int | None = None) -> dict:
    """Check the file (see the module's docstring) and write it as a 1000-class checkpoint."""
    path = locate(weights, arch)
    expected = sha256 or PUBLISHED_SHA256.get(file_name(arch))
    digest = check_hash(path, expected)
    if not expected:
        log.warning(f"{path} was checked against the 8 hex digits of its name only (32 bits); to check all of it, "
                    f"set reference.sha256: {digest} (after making sure the file is the published one)")
    try:  # a file cut short under its own name and digest (reference.sha256 set to it) still fails here
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        from featevo.jobs.files import torch_refusal

        raise WeightsError(f"reference.weights: {torch_refusal(path, exc)}") from None
    from featevo.models.checkpoint import fitted_state, load_weights, plain_state
    from featevo.data.inputs import MEAN, STD

    spec = ModelSpec(arch=arch, num_classes=1000, width_divisor=1, pool_size=7)
    model = build_model(spec)
    # the prefixes and wrappers a run of one's own may carry (a Lightning checkpoint's state_dict,
    # DataParallel's module., torch.compile's _orig_mod.), read as for that run
    try:
        state = fitted_state(model, plain_state(state, path), path, fits=f"torchvision's {arch}",
                             fix=f"point reference.weights at {file_name(arch)}, or set model.arch to the network "
                                 "the file holds")
    except SystemExit as exc:
        raise WeightsError(f"reference.weights: {str(exc).removeprefix('error: ')}") from None
    load_weights(model, state)
    prep = preprocessing(arch)
    if any(abs(a - b) > 1e-3 for a, b in zip(prep["mean"] + prep["std"], list(MEAN) + list(STD))):
        log.warning(f"{arch}'s weights were trained with mean {prep['mean']} and std {prep['std']}; the workflow "
                    f"normalizes with ImageNet's {list(MEAN)} and {list(STD)}")
    if image_size and image_size != prep["crop_size"]:
        log.warning(f"{arch}'s weights were trained at {prep['crop_size']} px; data.image_size is {image_size}")
    info = {"source": str(path), "sha256": digest, "sha256_checked": "whole" if expected else "name's 8 hex digits",
            "classes": 1000, "arch": arch, "preprocessing": prep}
    save_checkpoint(out, model, spec, epoch=0, classes=[], metrics={}, extra={"weights": info})
    return info

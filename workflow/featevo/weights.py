"""Import torchvision's ImageNet VGG-16 weights as a featevo checkpoint.

The file comes from the config (cluster nodes are often offline) or from the
torch hub cache, downloaded there when the machine is online.  What is checked,
before anything is loaded:

* its name carries hex digits, as torchvision names its files
  (``<arch>-<first 8 hex digits of the SHA-256>.pth``), and they begin the
  file's SHA-256 (torch.hub's own check: 32 bits);
* its whole SHA-256 equals ``reference.sha256`` (by default the published
  digest of ``vgg16-397923af.pth``), so a truncated, tampered or other file is
  refused even when its name was made to match;
* its tensors have VGG-16's names and shapes.
"""

from __future__ import annotations

import argparse
import logging
import hashlib
import json
import re
import sys
from pathlib import Path

import torch

from featevo.checkpoint import save_checkpoint
from featevo.models import ModelSpec, build_model

log = logging.getLogger("featevo.weights")

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
    """The file's SHA-256, after checking it starts with the digits in its name and,
    when ``expected`` is given, equals it in full."""
    m = re.search(r"-([0-9a-f]{8,64})\.[^.]+$", path.name)
    if not m:
        raise WeightsError(f"reference.weights: {path.name} has no hash in its name (torchvision names it "
                           f"like {VGG16_FILE}); keep the published file name")
    digest = sha256(path)
    if not digest.startswith(m.group(1)):
        raise WeightsError(f"reference.weights: {path} is corrupt or not the published file (SHA-256 "
                           f"{digest[:16]}..., its name says {m.group(1)}...); download it again")
    if expected and digest != expected.lower():
        raise WeightsError(f"reference.weights: {path} has SHA-256 {digest}, not {expected} "
                           "(reference.sha256); it is corrupt or not the published file: download it again, or "
                           "set reference.sha256 to the digest of the file you mean to use")
    return digest


def locate(weights: str | None) -> Path:
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"reference.weights: {path} does not exist")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    if not path.is_file():
        from torchvision.models import VGG16_Weights

        try:  # downloads into the hub cache and checks the hash itself
            VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:
            raise WeightsError(f"reference.weights is null and {path} is not in the torch hub cache, and the "
                               f"download failed ({exc}); fetch {VGG16_FILE} on a machine that is online and set "
                               "reference.weights to its path") from exc
    return path


def import_weights(weights: str | None, out: Path, sha256: str | None = None) -> dict:
    """Check the file (see the module's docstring) and write it as a 1000-class checkpoint."""
    path = locate(weights)
    digest = check_hash(path, sha256)
    try:  # a file cut short under its own name and digest (reference.sha256 set to it) still fails here
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"reference.weights: {path} cannot be read as a PyTorch state dict ({exc}); it is "
                           "damaged or cut short: download or copy it again") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"reference.weights: {path} holds no state dict of tensors; point it at {VGG16_FILE}")
    model = build_model(IMAGENET_SPEC)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    got = {k: v.shape for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:4]
        raise WeightsError(f"reference.weights: {path} is not torchvision's VGG-16 (differs at {diff})")
    model.load_state_dict(state)
    info = {"source": str(path), "sha256": digest, "classes": 1000}
    save_checkpoint(out, model, IMAGENET_SPEC, epoch=0, classes=[], metrics={}, extra={"weights": info})
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="", help="weights file; empty = the torch hub cache")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--sha256", required=True, help="the file's whole expected SHA-256 (reference.sha256)")
    a = p.parse_args(argv)
    try:
        info = import_weights(a.weights or None, a.out, a.sha256)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    a.metrics.write_text(json.dumps(info, indent=1) + "\n")
    log.info(f"{info['source']} (sha256 {info['sha256'][:12]}...) -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

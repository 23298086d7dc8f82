"""What the ascent leaves: the composite of a checkpoint's images, each unit's top
real images, and the PNG and ``.npz`` files a visualize job writes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from featevo.config.plan import slug
from featevo.data.layout import composite
from featevo.config.settings import Settings
from featevo.data.inputs import to_input, to_uint8
from featevo.jobs.device import autocast
from featevo.models.networks import evaluated
from featevo.optvis.objectives import InnerUnit, objective_values


@torch.no_grad()
def top_images(model: torch.nn.Module, images: np.ndarray, units: list[int], k: int, device: torch.device | str,
               precision: str, objective: str, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N, k) of the k images (uint8 NHWC) that raise each unit's ``objective``
    most, and those values: the real-image side of the synthetic one, ranked by the very
    quantity the synthetic images maximized (with the margin as objective, the raw
    logit ranked another class's images first: seen on the demo, all nine of a unit's
    top images of another class).  Ties broken by index, so the set is stable."""
    device = torch.device(device)
    with evaluated(model, device, torch.channels_last):
        out = []
        for i in range(0, len(images), batch):
            with autocast(device, precision):
                out.append(model(to_input(images[i:i + batch], device)).float().cpu())
    if not out:
        return np.zeros((len(units), 0), int), np.zeros((len(units), 0), np.float32)
    logits = torch.cat(out)
    scores = torch.stack([objective_values(logits, torch.full((len(logits),), u), objective)
                          for u in units]).numpy()  # (N, images)
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def recipe_entry(recipe: Mapping | None) -> dict:
    """The recipe the images were drawn with (``visualize.*``), stored beside them as one
    JSON string (``recipe``), which the figures read back (``featevo.figures.charts.recipe_line``)."""
    if recipe is None:
        return {}
    plain = recipe.to_dict() if isinstance(recipe, Settings) else dict(recipe)
    return {"recipe": np.asarray(json.dumps(plain, sort_keys=True))}


def write_outputs(result: dict, units: list[int], names: list[str], out_png: Path, out_npz: Path,
                  top: tuple[np.ndarray, np.ndarray] | None = None, labels: np.ndarray | None = None,
                  recipe: Mapping | None = None, extra: Mapping | None = None) -> None:
    """The first restart's class PNGs and composite, and every restart in the ``.npz``:
    ``images`` (N, H, W, 3) and ``probs`` (N, classes) are the first restart's,
    ``restart_images`` (restarts, N, H, W, 3), ``restart_probs`` and ``saturated``
    (restarts, N) all of them; with ``top``, ``top_index`` / ``top_score`` (N, k): each
    unit's top validation images and their objective, and with their ``labels``,
    ``top_purity`` (N): the share of them that are of the unit's class; with MACO
    ``attribution`` (restarts, N, H, W); ``recipe`` with the recipe (:func:`recipe_entry`); ``extra``: more arrays, as they are."""
    n = len(units)
    images = to_uint8(result["images"])
    restarts = len(images) // n
    out_png.parent.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images[:n], names):
        Image.fromarray(img).save(out_png.parent / f"{slug(name)}.png")
    Image.fromarray(composite(images[:n])).save(out_png)
    probs = result["probs"].numpy().reshape(restarts, n, -1)
    extra = {**(extra or {}), **({} if top is None else {"top_index": top[0], "top_score": top[1]})}
    if top is not None and labels is not None:
        extra["top_purity"] = (labels[top[0]] == np.arange(n)[:, None]).mean(axis=1)
    if "attribution" in result:  # MACO's: where each image's unit looks
        extra["attribution"] = result["attribution"].numpy().reshape(restarts, n, *images.shape[1:3])
    np.savez_compressed(out_npz, images=images[:n], units=np.asarray(units), names=np.asarray(names),
                        probs=probs[0], own_prob=probs[0][np.arange(n), units],
                        restart_images=images.reshape(restarts, n, *images.shape[1:]), restart_probs=probs,
                        saturated=result["saturated"].reshape(restarts, n),
                        logits=result["logits"].numpy().reshape(restarts, n, -1)[0], trace=result["trace"], **extra,
                        **recipe_entry(recipe))


def write_unit_outputs(result: dict, units: list[InnerUnit], out_png: Path, out_npz: Path,
                       recipe: Mapping | None = None) -> None:
    """The inner units' images of the first restart side by side (``out_png``), and in the
    ``.npz``: ``images`` (N, H, W, 3) of the first restart, ``restart_images``, ``units``
    (their names), ``activation`` and ``saturated`` (restarts, N), the ``trace``, with MACO
    ``attribution`` (restarts, N, H, W), and ``recipe`` with the recipe (:func:`recipe_entry`)."""
    n = len(units)
    images = to_uint8(result["images"])
    restarts = len(images) // n
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(list(images[:n]), axis=1)).save(out_png)
    extra = {}
    if "attribution" in result:  # MACO's: where each image's unit looks
        extra["attribution"] = result["attribution"].numpy().reshape(restarts, n, *images.shape[1:3])
    np.savez_compressed(out_npz, images=images[:n], units=np.asarray([str(u) for u in units]),
                        restart_images=images.reshape(restarts, n, *images.shape[1:]),
                        activation=result["activation"].numpy().reshape(restarts, n),
                        saturated=result["saturated"].reshape(restarts, n), trace=result["trace"], **extra,
                        **recipe_entry(recipe))



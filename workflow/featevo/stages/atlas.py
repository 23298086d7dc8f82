"""The atlas: every chosen channel of the network at checkpoints over training, with its
top real images, in one page a person browses.

The command line of ``featevo atlas``: ``render`` draws one checkpoint's channels, many
in one batch; ``page`` writes the HTML from every rendered checkpoint (the library is
:mod:`featevo.measures.atlas` and :mod:`featevo.figures.atlas`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from featevo.stages import (
    read_settings,
    settings_argument,
    stage_parser,
    threads_argument,
)

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """featevo atlas's command line: paths as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="one checkpoint's channels, batched, and their top real images")
    r.add_argument("--checkpoint", type=Path, required=True)
    r.add_argument("--val", type=Path, required=True, help="a folder of featevo extract (its val split)")
    r.add_argument("--key", required=True, help="what it renders (its starting noise is seeded by it)")
    r.add_argument("--judge", type=Path, required=True,
                   help="the judge network's checkpoint: the observer of the explanation score")
    r.add_argument("--out", type=Path, required=True, help=".npz")
    settings_argument(r, "atlas render")
    threads_argument(r)
    g = sub.add_parser("page", help="the HTML page from every rendered checkpoint")
    g.add_argument("--npz", type=Path, nargs="+", required=True, help="each checkpoint's, in epoch order")
    g.add_argument("--val", type=Path, required=True)
    g.add_argument("--experiment", required=True)
    g.add_argument("--out", type=Path, required=True, help=".html")
    settings_argument(g, "atlas page")
    return p


def render(a) -> None:
    from featevo.data.inputs import Subset, to_uint8
    from featevo.jobs.device import configure, pick_device
    from featevo.measures.atlas import (
        atlas_channels,
        atlas_layers,
        channel_activations,
        explanation_controls,
        explanation_scores,
        top_images,
    )
    from featevo.measures.scores import penultimate
    from featevo.models.checkpoint import load_model
    from featevo.models.networks import ModelSpec
    from featevo.optvis.objectives import InnerUnit
    from featevo.optvis.render import activation_maximization

    s = read_settings(a.settings, "atlas render")
    at, v = s.atlas, s.visualize
    device = pick_device(v.device)
    configure(device, a.threads, precision=v.precision)
    model, ckpt = load_model(a.checkpoint)
    spec = ModelSpec(**ckpt["spec"])
    units = atlas_channels(spec, s.data.image_size, atlas_layers(model, spec, s.data.image_size, at.layers),
                           at.channels, at.seed)
    recipe = {**v.to_dict(), "parameterization": at.parameterization, "restarts": 1,
              "median_every": v.median_every if at.parameterization == "pixel" else 0}
    result = activation_maximization(model, [InnerUnit(layer, c) for layer, c in units], recipe,
                                     image_size=s.data.image_size, device=device, log=log.info, key=a.key)
    val = Subset(a.val, "val")
    acts = channel_activations(model, val.images, units, device)
    idx, score = top_images(acts, at.top_k)
    # the explanation score (measures.atlas.explanation_scores): the judge sees the channels'
    # images and the validation images; its known answers beside it
    images = to_uint8(result["images"])
    judge, _ = load_model(a.judge)
    seen, _ = penultimate(judge, images, device=device)
    real, _ = penultimate(judge, val.images, device=device)
    controls = explanation_controls(real, acts, at.top_k, at.seed)
    parts = probe_parts(s, model, units, device)
    np.savez_compressed(a.out, **parts, epoch=ckpt["epoch"], units=np.asarray([f"{layer}:{c}" for layer, c in units]),
                        images=images, activation=result["activation"].numpy(), top_index=idx, top_score=score,
                        explains=explanation_scores(seen, real, acts, at.top_k), explains_liked=controls["liked"],
                        explains_random=controls["random"])
    log.info(f"epoch {ckpt['epoch']}: {len(units)} channels of {len(dict.fromkeys(u[0] for u in units))} layers "
             f"in one batch, {result['seconds']:.1f} s -> {a.out}")


def probe_parts(s, model, units, device) -> dict:
    """On the stand-in: where each channel's top images (``atlas.probe`` fresh images per
    class, drawn with where each part is, through a JPEG and the extraction's decoding as
    the run's own images) have their peak: {part_names, part_counts (units, parts + 1, the
    last the background)}; elsewhere, or with atlas.probe 0, nothing."""
    if s.data.source != "standin" or not s.atlas.probe:
        return {}
    from PIL import Image

    from featevo.config.plan import class_ids
    from featevo.data.standin import as_extracted, probe
    from featevo.measures.atlas import channel_activations, part_counts, peak_parts

    st, size = s.standin, s.data.image_size
    drawn, _, masks, names = probe(class_ids(s.data), s.atlas.probe, st.image_size, s.atlas.seed, st.clutter,
                                   st.palette, st.tilt)
    images = as_extracted(drawn, size, s.data.resize)
    # the masks as the images were resized (square images: no crop, whichever data.resize)
    masks = np.stack([[np.asarray(Image.fromarray(m.astype(np.float32), "F").resize((size, size),
                                                                                    Image.Resampling.BILINEAR))
                       for m in per] for per in masks])
    acts, peaks = channel_activations(model, images, units, device, peaks=True)
    # the chance level: where a peak placed at random falls, each part's share of the pixels
    everywhere = np.stack(np.meshgrid((np.arange(size) + 0.5) / size, (np.arange(size) + 0.5) / size,
                                      indexing="ij"), -1).reshape(1, -1, 2).repeat(len(masks), 0)
    area = np.bincount(peak_parts(everywhere, masks).ravel(), minlength=len(names) + 1)
    return {"part_names": np.asarray(names), "part_area": area / area.sum(),
            "part_counts": part_counts(acts, peak_parts(peaks, masks), len(names), s.atlas.top_k)}


def page(a) -> None:
    from featevo.config.plan import names
    from featevo.data.inputs import Subset
    from featevo.figures.atlas import atlas_page
    from featevo.measures.atlas import settle_epochs

    s = read_settings(a.settings, "atlas page")
    ds = [np.load(f) for f in a.npz]
    units = [str(u) for u in ds[0]["units"]]
    if any([str(u) for u in d["units"]] != units for d in ds):
        raise SystemExit("error: the checkpoints were rendered with other channels; rerun their atlas jobs")
    epochs = [int(d["epoch"]) for d in ds]
    tops = [d["top_index"] for d in ds]
    val = Subset(a.val, "val")
    pairs = [(u.rsplit(":", 1)[0], int(u.rsplit(":", 1)[1])) for u in units]
    text = atlas_page(f"Atlas of {a.experiment}: {len(units)} channels over {len(epochs)} epochs", epochs, pairs,
                      np.stack([d["images"] for d in ds]), np.stack([d["activation"] for d in ds]),
                      np.stack(tops), np.stack([d["top_score"] for d in ds]), settle_epochs(tops, epochs),
                      val.images, val.labels, names(s.data),
                      explains={key: np.stack([d[key] for d in ds]) for key in
                                ("explains", "explains_liked", "explains_random")},
                      parts=(([str(n) for n in ds[0]["part_names"]], np.stack([d["part_counts"] for d in ds]),
                              ds[0]["part_area"]) if "part_counts" in ds[0] else None),
                      note=f"each channel's image maximizes its mean activation ({s.atlas.parameterization} "
                           "image, the run's visualize recipe otherwise); its top real images are the run's "
                           "validation images that raise it most")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    log.info(f"{len(units)} channels x {len(epochs)} epochs -> {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)")


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    render(a) if a.cmd == "render" else page(a)
    return 0

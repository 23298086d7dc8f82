"""The paper's figures: evolution of the class visualizations (Fig. 1, 2), the
reference network's visualization (Fig. 3), and learning curves.
"""

from __future__ import annotations

import logging
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from featevo.data.layout import grid_positions
from featevo.figures.plots import order_note, pyplot, save
from featevo.figures.tables import across_seeds, table_epochs

plt = pyplot()  # matplotlib on Agg, as every figure of the package is drawn (featevo.figures.plots)

log = logging.getLogger("featevo.figures.charts")


def evolution(history: pd.DataFrame, composites: list[Path], experiment: str, names: list[str],
              outputs: list[Path], max_cols: int = 5, mean: pd.DataFrame | None = None,
              metrics: pd.DataFrame | None = None, recipe: str = "") -> list[int]:
    """Composites at the table's epochs, each labelled with epoch and accuracy.

    ``mean``: the history averaged over seeds (``tables.across_seeds``): the epochs are
    then chosen on it, as the table chooses them, and its accuracy is shown too.
    ``metrics``: the seed's measures; each panel then says for how many classes the
    change from the epoch before exceeded the spread between restarts.  ``recipe``: how the
    images were drawn (:func:`recipe_line`), named in the title."""
    if len(composites) != len(history):
        raise ValueError(f"{len(composites)} composites for the {len(history)} epochs of the history")
    by_epoch = dict(zip(history["epoch"].astype(int), composites))
    epochs = table_epochs(history if mean is None else mean)
    acc = history.set_index("epoch")["val_acc"]
    changed = None
    if metrics is not None and "changed" in metrics:
        changed = metrics.groupby("epoch")["changed"].sum().astype(int)
    cols = min(max_cols, len(epochs))
    rows = math.ceil(len(epochs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.75 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, e in zip(axes.flat, epochs):
        img = np.asarray(Image.open(by_epoch[e]))
        ax.imshow(img, interpolation="nearest")
        title = f"epoch {e}\nval. acc. {acc[e] * 100:.1f}%"
        if mean is not None:
            title += f" (mean {mean.set_index('epoch')['val_acc'][e] * 100:.1f}%)"
        if changed is not None and e in changed.index and e > 0:
            title += f"\nchanged beyond restarts: {changed[e]}/{len(names)}"
        ax.set_title(title, fontsize=8)
    how = "the mean over seeds" if mean is not None else "this seed"
    note = ("; 'changed beyond restarts': classes whose images moved from the epoch before further than the "
            "restarts of one checkpoint differ, in the judge's features (exact permutation test, BH q < 0.05)"
            if changed is not None else "")
    drawn = f"\nimages: {recipe}" if recipe else ""
    fig.suptitle(f"{experiment}: visualizations at each epoch where validation accuracy ({how}) rose{note}{drawn}\n"
                 f"{order_note(names)}", fontsize=8, wrap=True)
    save(fig, outputs)
    return epochs


def reference(npz: Path, names: list[str], source: str, outputs: list[Path], examples: Path | None = None,
              per_class: int = 3, accuracy: float | None = None, judged: pd.DataFrame | None = None,
              judge_is_reference: bool = False, recipe: str = "") -> None:
    """Fig. 3: the fixed network's image of each class in the paper's layout, drawn
    with every checkpoint's recipe (``recipe`` says which), and (with ``examples``, a
    split's ``*_images.npy`` whose labels follow ``names``) the first ``per_class``
    images of the class beneath it.  The probability printed is the judge's (``judged``:
    its measures of these images, mean over restarts), never the quantity the
    ascent maximized; when the judge is this network itself, none is printed."""
    from matplotlib.gridspec import GridSpecFromSubplotSpec

    data = np.load(npz)
    images = data["images"]
    shown = None
    if examples is not None:
        pixels = np.load(examples)
        labels = np.load(Path(str(examples).replace("_images.npy", "_labels.npy")))
        shown = [pixels[np.flatnonzero(labels == k)[:per_class]] for k in range(len(names))]
    pos = grid_positions(len(images))
    rows, cols = max(r for r, _ in pos) + 1, max(c for _, c in pos) + 1
    strip = 1 if shown is None else 1 + 1 / per_class  # a row of small examples under each image
    fig = plt.figure(figsize=(2.6 * cols, 2.2 * rows * strip + 0.9))
    outer = fig.add_gridspec(rows, cols, hspace=0.25, wspace=0.1)
    for k, ((r, c), name, unit) in enumerate(zip(pos, names, data["units"])):
        cell = GridSpecFromSubplotSpec(2 if shown else 1, per_class if shown else 1, subplot_spec=outer[r, c],
                                       height_ratios=[per_class, 1] if shown else None, hspace=0.08, wspace=0.05)
        ax = fig.add_subplot(cell[0, :])
        ax.imshow(images[k], interpolation="nearest")
        title = f"{name} (unit {unit})"
        if judged is not None and not judge_is_reference:
            title += f"\njudge p={judged['judge_prob'].iloc[k]:.2f}"
        ax.set_title(title, fontsize=8)
        ax.axis("off")
        for j, img in enumerate(shown[k] if shown else []):
            small = fig.add_subplot(cell[1, j])
            small.imshow(img, interpolation="nearest")
            small.axis("off")
    what = "VGG-16 trained on ImageNet" if source == "torchvision" else "reference network trained on every class"
    acc = "" if accuracy is None else f" (validation accuracy {accuracy * 100:.1f}%)"
    below = "; under each, training images of the class" if shown else ""
    judge = ("no judge probability: the judge is this network itself" if judge_is_reference
             else "p: the judge's probability of the class (mean over restarts), not the maximized unit's")
    fig.suptitle(f"Visualization of the {what}{acc}, no fine-tuning\n{order_note(names)}{below}\n"
                 f"Drawn as every checkpoint is{': ' + recipe if recipe else ''}; {judge}", fontsize=8, y=1.04)
    save(fig, outputs)


def top_images(npzs: list[Path], history: pd.DataFrame, val_images: Path, experiment: str, names: list[str],
               outputs: list[Path], metrics: pd.DataFrame, mean: pd.DataFrame | None = None) -> list[int]:
    """Real images beside the synthetic ones: at the table's epochs, each class unit's
    top validation images (a mosaic per class and epoch), and over every epoch the
    Jaccard similarity of each unit's top set with the epoch before (``top_jaccard``
    of the seed's ``metrics``)."""
    data = [np.load(p) for p in npzs]
    if len(data) != len(history):
        raise ValueError(f"{len(npzs)} classes.npz for the {len(history)} epochs of the history")
    if "top_index" not in data[0]:
        raise ValueError(f"{npzs[0]} has no top_index: rerun its visualize job with --val")
    pixels = np.load(val_images)
    labels = np.load(Path(str(val_images).replace("_images.npy", "_labels.npy")))
    epochs = history["epoch"].astype(int).tolist()
    chosen = table_epochs(history if mean is None else mean)
    chosen = [0] + [e for e in chosen if e != 0]
    by_epoch = dict(zip(epochs, data))
    n = len(names)
    k = data[0]["top_index"].shape[1]
    side = math.ceil(math.sqrt(k))
    # wider than tall: the report shows a figure at its own size, and a tall one runs off the screen
    fig = plt.figure(figsize=(max(8.5, 1.3 * len(chosen) + 3.0), 0.9 * n + 1.9))
    grid = fig.add_gridspec(n + 1, len(chosen), height_ratios=[1.6] + [1] * n, hspace=0.45, wspace=0.08)
    ax = fig.add_subplot(grid[0, :])
    for name, g in metrics.groupby("class", sort=False):
        ax.plot(g["epoch"], g["top_jaccard"], "-o", ms=2, lw=1, label=name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(ylabel="Jaccard", ylim=(-0.05, 1.05),  # no x label: the mosaics' titles sit below it
           title=f"each unit's top {k} validation images: overlap with the epoch before (x: epoch)")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6, ncol=min(4, n))
    ax.grid(alpha=0.3)
    h, w = pixels.shape[1:3]
    for c, e in enumerate(chosen):
        for i in range(n):
            idx = by_epoch[e]["top_index"][i]
            mosaic = np.full((side * h, side * w, 3), 255, np.uint8)
            for j, m in enumerate(idx):
                r, q = divmod(j, side)
                mosaic[r * h:(r + 1) * h, q * w:(q + 1) * w] = pixels[m]
            own = float(np.mean(labels[idx] == i))
            a = fig.add_subplot(grid[i + 1, c])
            a.imshow(mosaic, interpolation="nearest")
            a.set_xticks([]), a.set_yticks([])
            a.set_xlabel(f"{own * 100:.0f}% {names[i][:12]}", fontsize=6, labelpad=1)
            if i == 0:
                a.set_title(f"epoch {e}", fontsize=7)
            if c == 0:
                a.set_ylabel(names[i][:14], fontsize=7)
    recipe = recipe_line(data[0])
    ranked = f" (ranked by the {json.loads(str(data[0]['recipe']))['objective']}, what the images maximize)" \
        if recipe else ""
    fig.suptitle(f"{experiment}: the validation images that raise each class unit most{ranked} (rows),\nat epoch 0 "
                 f"and each epoch where accuracy rose; under each: the share of them that are of the class", fontsize=8)
    save(fig, outputs)
    return chosen


def curves(histories: list[pd.DataFrame], experiments: list[str], outputs: list[Path]) -> None:
    """Loss and accuracy per epoch; with several seeds per experiment (its name
    repeated), the mean and the band from the lowest to the highest seed."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    groups: dict[str, list[pd.DataFrame]] = {}
    for h, name in zip(histories, experiments):
        groups.setdefault(name, []).append(h.set_index("epoch"))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, hs), colour in zip(groups.items(), colours):
        n = f" ({len(hs)} seeds)" if len(hs) > 1 else ""
        for ax, col, scale in ((ax_loss, "loss", 1), (ax_acc, "acc", 100)):
            for split, style in (("train", "--"), ("val", "-o")):
                both = pd.concat([h[f"{split}_{col}"] for h in hs], axis=1) * scale
                if split == "train":
                    both = both[both.index >= 1]
                mean = both.mean(axis=1)
                label = f"{name} {'train' if split == 'train' else 'validation'}{n}"
                ax.plot(mean.index, mean, style, ms=3, color=colour, label=label)
                if len(hs) > 1:
                    ax.fill_between(mean.index, both.min(axis=1), both.max(axis=1), color=colour, alpha=0.15,
                                    lw=0)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if any(len(hs) > 1 for hs in groups.values()):
        fig.suptitle("Lines: mean over seeds; bands: lowest to highest seed", fontsize=9)
    save(fig, outputs)


def gif(history: pd.DataFrame, composites: list[Path], experiment: str, names: list[str], out: Path,
        scale: int = 3, ms_per_frame: int = 400) -> int:
    """The composite at every epoch, one frame each, labelled with epoch and
    validation accuracy; the last frame is held longer.  Returns the frame count."""
    from PIL import ImageDraw

    acc = history.set_index("epoch")["val_acc"]
    frames = []
    for path in composites:
        epoch = int(Path(path).parent.name.removeprefix("epoch_"))
        img = Image.open(path).convert("RGB")
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        frame = Image.new("RGB", (img.width, img.height + 28), "white")
        frame.paste(img, (0, 28))
        ImageDraw.Draw(frame).text((4, 2), f"{experiment}  epoch {epoch}  val. acc. {acc[epoch] * 100:.1f}%\n"
                                   f"{order_note(names)}", fill="black")
        frames.append(frame)
    durations = [ms_per_frame] * (len(frames) - 1) + [ms_per_frame * 5]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return len(frames)


def gif_page(gif_path: Path, title: str, out: Path) -> None:
    """A self-contained HTML page showing the GIF: Snakemake's report shows HTML
    inline but offers a GIF only as a download."""
    import base64
    import html

    data = base64.b64encode(Path(gif_path).read_bytes()).decode()
    out.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                   f"<body style='margin:0;background:white'><img alt='{html.escape(title)}' "
                   f"style='image-rendering:pixelated;max-width:100%' src='data:image/gif;base64,{data}'>"
                   "</body></html>\n")


def method(npzs: list[Path], name: str, experiment: str, names: list[str], outputs: list[Path]) -> None:
    """One row per explained epoch, one column per fixed image (per layer, for
    inversion: the method's ``columns``); the top row shows the images themselves.
    Each method paints its own cells (``featevo.measures.explain.METHODS``)."""
    data = sorted((np.load(p) for p in npzs), key=lambda d: int(d["epoch"]))
    if name not in data[0]:
        raise ValueError(f"{npzs[0]} has no {name} maps; enable methods.{name} and rerun its explain jobs")
    images, labels = data[0]["images"], data[0]["labels"]
    from featevo.measures.explain import METHODS  # torch: only this figure's jobs pay its import

    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; featevo.measures.explain.METHODS has {', '.join(METHODS)}")
    entry = METHODS[name]
    layers = entry.columns(data[0])
    cols = len(images) * len(layers)
    fig, axes = plt.subplots(len(data) + 1, cols, figsize=(1.3 * cols, 1.35 * (len(data) + 1) + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    for j in range(cols):
        i, k = divmod(j, len(layers))
        axes[0, j].imshow(images[i], interpolation="nearest")
        title = names[labels[i]] if labels[i] < len(names) else str(labels[i])
        axes[0, j].set_title(title + (f"\n{layers[k]}" if layers[k] else ""), fontsize=6)
    axes[0, 0].set_ylabel("image", fontsize=7)
    for r, d in enumerate(data, 1):
        probs = d["probs"]
        for j in range(cols):
            i, k = divmod(j, len(layers))
            ax = axes[r, j]
            entry.draw(ax, images[i], d, i, k)
            if k == 0:
                ax.set_xlabel(f"p={probs[i, labels[i]]:.2f}", fontsize=6, labelpad=1)
        axes[r, 0].set_ylabel(f"epoch {int(d['epoch'])}", fontsize=7)
    fig.suptitle(f"{experiment}: {entry.caption}, per epoch (p: the checkpoint's probability of the true class)", fontsize=8)
    fig.tight_layout()
    save(fig, outputs)


def units(npzs: list[Path], history: pd.DataFrame, experiment: str, recipe: str, outputs: list[Path],
          max_cols: int = 8) -> list[int]:
    """One row per inner unit (``visualize.units``), one column per epoch shown (the
    first, the last, and evenly between; every epoch when they fit), the epoch's
    validation accuracy on top.  The unit's activation on its own image is what chose
    the image, so it is kept in ``units.npz`` (``activation``, ``trace``) and not
    printed as evidence."""
    data = [np.load(p) for p in npzs]  # one per epoch of the history, in its order
    epochs = [int(e) for e in history["epoch"]]
    if len(epochs) != len(data):
        raise ValueError(f"{len(data)} units.npz files for the {len(epochs)} epochs of the history")
    cols = np.unique(np.linspace(0, len(data) - 1, min(max_cols, len(data))).round().astype(int)).tolist()
    names = [str(u) for u in data[0]["units"]]
    fig, axes = plt.subplots(len(names), len(cols), figsize=(1.35 * len(cols) + 1.2, 1.45 * len(names) + 0.6),
                             squeeze=False)
    acc = dict(zip(history["epoch"], history["val_acc"]))
    for c, k in enumerate(cols):
        d, e = data[k], epochs[k]
        for r, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(d["images"][r], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=6)
        axes[0, c].set_title(f"epoch {e}\nacc {acc.get(e, float('nan')):.2f}", fontsize=7)
    fig.suptitle(f"{experiment}: inner units over training ({recipe})", fontsize=8)
    fig.tight_layout()
    save(fig, outputs)
    return [epochs[k] for k in cols]


def _mean(histories: list[Path] | None) -> pd.DataFrame | None:
    """Every seed's history averaged (the table's way), or None without them."""
    if not histories:
        return None
    return across_seeds([pd.read_csv(h) for h in histories], list(range(len(histories))))


def recipe_line(npz) -> str:
    """One line of how a visualize job drew its images: the recipe it stored with them
    (``featevo.optvis.outputs.recipe_entry``): the objective first (what the images maximize),
    then the image's parameterization, the optimizer and its steps, the regularizers;
    nothing where it stored none."""
    if "recipe" not in npz:
        return ""
    v = json.loads(str(npz["recipe"]))
    param = v.get("parameterization", "pixel")
    parts = [f"objective: {v['objective']}", f"{param} image",
             f"{v.get('optimizer', 'ascent')}, {v['steps']} steps of {v['step_size']}"]
    if param == "pixel" and v.get("median_every"):
        parts.append(f"{v['median_size']}x{v['median_size']} median every {v['median_every']}")
    chain = v.get("transforms")
    if chain:  # a preset's name, or the list of transforms
        parts.append(f"transforms {chain}" if isinstance(chain, str) else
                     "transforms " + " ".join(k for t in chain for k in t))
    parts.append(f"{v['restarts']} restarts")
    return ", ".join(parts)

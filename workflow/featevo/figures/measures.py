"""The measures' figures: the feature metrics over the epochs with the judge's
confusion matrices, the layers' CKA heat maps, and the sanity check's images side by
side (the numbers are computed in :mod:`featevo.measures`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from featevo.figures.plots import pyplot, save


def plot_confusion(matrices: dict[int, np.ndarray], names: list[str], experiment: str, outputs: list[Path],
                   judged: bool = True, max_cols: int = 8) -> None:
    """Per epoch: the judge's class probabilities (columns) on each class's
    visualization (rows), mean over the restarts; a perfect visualization set is
    the identity.  Without a judge (``judged`` false): the checkpoint's own."""
    epochs = sorted(matrices)
    cols = min(max_cols, len(epochs))
    rows = -(-len(epochs) // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(1.6 * cols, 1.75 * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, e in zip(axes.flat, epochs):
        m = matrices[e]
        ax.imshow(m[:, :len(names)] if m.shape[1] >= len(names) else m, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"epoch {e}", fontsize=7)
    short = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
    who = ("the judge's probabilities (columns; mean over restarts)" if judged
           else "the checkpoint's own probabilities (columns; circular: it made the images)")
    fig.suptitle(f"{experiment}: {who} on each class's visualization (rows)"
                 f"\n{short}; bright diagonal = each image is its own class, off the diagonal: leakage", fontsize=8)
    fig.tight_layout()
    save(fig, outputs)


METRIC_PANELS = {  # column: title of its panel
    "png_ratio": "PNG ratio (pixel complexity)", "total_variation": "total variation",
    "hf_energy": "high-frequency energy", "saturated": "share of steps with no gradient",
    "judge_prob": "judge: p(own class)", "judge_leak": "judge: largest p(other class)",
    "top_jaccard": "top validation images: Jaccard with epoch before",
    "top_purity": "top validation images: share of the unit's class",
    "real_percentile": "judge: percentile among real images of the class",
    "hf_ratio": "high-frequency power / real images'",
    "parts_share": "cue conflict: share of decisions that follow the parts",
}


def metrics_figure(df: pd.DataFrame, experiment: str, outputs: list[Path], floor: pd.DataFrame | None = None) -> None:
    """One panel per measure (each class, and the mean over classes) beside validation
    accuracy; the last panel sets each epoch's change against the restarts' spread and
    counts the classes whose change passed its test.  ``floor``: the judge's reading of
    the starting noise (featevo.measures.judge), drawn under its probabilities."""
    panels = [c for c in METRIC_PANELS if c in df] + (["change"] if "change" in df else [])
    ncols = -(-len(panels) // 2)
    fig, axes = pyplot().subplots(2, ncols, figsize=(3.2 * ncols, 6.2), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    axes = axes.flat
    per_epoch = df.drop_duplicates("epoch")
    for ax, col in zip(axes, panels):
        if col == "change":
            mean = df.groupby("epoch", sort=True)[["change", "restart_spread"]].mean()
            ax.plot(mean.index, mean["change"], "-o", ms=3, color="k", label="change from epoch before")
            ax.plot(mean.index, mean["restart_spread"], "--", color="tab:red", label="spread between restarts")
            marked = df[df["changed"].astype(bool)].groupby("epoch").size()
            for e, count in marked.items():
                ax.annotate(str(count), (e, mean.loc[e, "change"]), fontsize=6, color="tab:green",
                            xytext=(0, 4), textcoords="offset points", ha="center")
            ax.set(title="judge features: change vs restarts\n(green: classes changed beyond the restarts, "
                         "permutation test, BH q < 0.05)", xlabel="epoch")
            ax.title.set_fontsize(8)
            ax.legend(fontsize=6)
        else:
            for name, g in df.groupby("class", sort=False):
                ax.plot(g["epoch"], g[col], "-o", ms=2, lw=1, label=name)
            # the mean over the classes: a confident judge reads each single image as 0 or 1
            mean = df.groupby("epoch", sort=True)[col].mean()
            ax.plot(mean.index, mean.values, color="k", lw=2, label="mean")
            if col == "judge_prob" and floor is not None:
                noise = float(floor.loc[floor["class"] != "all", "noise_prob"].mean())
                ax.axhline(noise, color="tab:red", ls=":", lw=1, label="on the starting noise")
                ax.axhline(float(floor["chance"].iloc[0]), color="0.3", ls=":", lw=0.8, label="chance")
            ax.set(title=METRIC_PANELS[col], xlabel="epoch")
            ax.title.set_fontsize(8)
        acc = ax.twinx()  # validation accuracy beside every measure
        acc.plot(per_epoch["epoch"], per_epoch["val_acc"] * 100, color="0.6", ls="--", lw=1)
        acc.set_ylim(0, 100)
        acc.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{experiment}: the class visualizations per epoch, mean over restarts "
                 "(grey dashes: validation accuracy, %)", fontsize=9)
    fig.tight_layout()
    save(fig, outputs)


CKA_PANELS = (  # column, title, colour scale
    ("cka_prev", "CKA with the epoch before", (0, 1)),
    ("cka_last", "CKA with the last epoch (dots: at or above the seeds' CKA)", (0, 1)),
    ("cka_start", "CKA with the start (epoch 0)", (0, 1)),
    ("cka_seeds", "CKA between seeds (the floor)", (0, 1)),
    ("dcka_start", "debiased CKA with the start", (0, 1)),
    ("dcka_seeds", "debiased CKA between seeds", (0, 1)),
    ("weight_change", "relative weight change from the epoch before", None),
)


def cka_figure(df, experiment: str, outputs: list[Path]) -> None:
    """A layer x epoch map of each measure (mean over seeds), the input at the bottom."""
    from matplotlib.colors import LogNorm

    plt = pyplot()


    mean = df.groupby(["depth", "layer", "epoch"], sort=True).mean(numeric_only=True).reset_index()
    order = mean.drop_duplicates("depth").sort_values("depth")["layer"].tolist()
    epochs = sorted(mean["epoch"].unique())
    panels = [p for p in CKA_PANELS if p[0] in mean and mean[p[0]].notna().any()]
    # one row: wider than tall, as the report shows a figure at its own width (a tall one runs off the screen)
    cols, rows = len(panels), 1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * (2.4 + 0.12 * len(epochs)), rows * (0.3 * len(order) + 1.6)
                                                  + 0.6), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (col, title, scale) in zip(axes.flat, panels):
        grid = mean.pivot(index="layer", columns="epoch", values=col).reindex(index=order[::-1], columns=epochs)
        values = grid.to_numpy(float)
        if scale is None:
            positive = values[np.isfinite(values) & (values > 0)]
            norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if len(positive) else None
            im = ax.imshow(values, aspect="auto", cmap="magma", norm=norm)
        else:
            im = ax.imshow(values, aspect="auto", cmap="viridis", vmin=scale[0], vmax=scale[1])
        if col == "cka_last" and "settled" in mean:
            settled = mean.pivot(index="layer", columns="epoch", values="settled").reindex(
                index=order[::-1], columns=epochs).to_numpy(float)
            ys, xs = np.nonzero(settled >= 0.5)  # settled in at least half of the seeds
            ax.scatter(xs, ys, s=4, c="white", marker="o", linewidths=0)
        ax.set_yticks(range(len(order)), order[::-1], fontsize=6)
        step = max(1, len(epochs) // 8)
        ax.set_xticks(range(0, len(epochs), step), [str(e) for e in epochs[::step]], fontsize=6)
        ax.set_xlabel("epoch", fontsize=7)
        ax.set_title(title, fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)
    seeds = df["seed"].nunique()
    fig.suptitle(f"{experiment}: the network's layers over the epochs, on fixed validation images "
                 f"(linear CKA; mean over {seeds} seed{'s' if seeds > 1 else ''})", fontsize=8)
    fig.tight_layout()
    save(fig, outputs)


def sanity_figure(shown: dict, levels: list[str], outputs: list[Path]) -> None:
    """Each experiment's last epoch (first restart's composite) beside its re-initialized
    versions, with the judge's mean probability of the classes under each."""
    plt = pyplot()

    from featevo.data.layout import composite

    cols = ("trained", *levels)
    fig, axes = plt.subplots(len(shown), len(cols), figsize=(2.3 * len(cols), 2.5 * len(shown) + 0.8),
                             squeeze=False)
    for row, (exp, (data, judged)) in enumerate(shown.items()):
        for c, level in enumerate(cols):
            ax = axes[row, c]
            ax.imshow(composite(data[c]["images"]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{exp}: {level}\njudge p(own) {judged[c]:.2f}", fontsize=7)
    fig.suptitle("Sanity check: the last epoch, and the same network re-initialized from the top (the output "
                 "layer, the upper half, every layer),\nvisualized and judged as every checkpoint is; a measure "
                 "that reads 'all' like 'trained' reads nothing the network learned", fontsize=8)
    fig.tight_layout()
    save(fig, outputs)

"""The paper's figures: evolution of the class visualizations (Fig. 1, 2), the

The command line of ``featevo figures``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.figures.charts`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from featevo.figures.charts import (
    _mean,
    curves,
    evolution,
    gif,
    gif_page,
    log,
    method,
    recipe_line,
    reference,
    top_images,
    units,
)
from featevo.stages import read_settings, settings_argument, stage_parser


def parser() -> argparse.ArgumentParser:
    """featevo figures's command line: paths and the experiment as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        c = sub.add_parser(name, **kw)
        settings_argument(c, f"figures {name}")
        c.add_argument("--out", type=Path, nargs="+", required=True)
        return c

    e = command("evolution")
    e.add_argument("--history", type=Path, required=True)
    e.add_argument("--composites", type=Path, nargs="+", required=True, help="one per epoch of --history, in order")
    e.add_argument("--experiment", required=True)
    e.add_argument("--mean-of", type=Path, nargs="+", help="every seed's history: choose the epochs on their mean")
    e.add_argument("--metrics", type=Path, help="the seed's feature metrics: mark the epochs that changed")
    e.add_argument("--npz", type=Path, required=True,
                   help="a classes.npz of the run: the recipe the images were drawn with, named in the title")
    t = command("top", help="each class unit's top validation images over the epochs")
    t.add_argument("--history", type=Path, required=True)
    t.add_argument("--npz", type=Path, nargs="+", required=True, help="classes.npz of each epoch, in order")
    t.add_argument("--val", type=Path, required=True, help="the validation split's val_images.npy")
    t.add_argument("--experiment", required=True)
    t.add_argument("--mean-of", type=Path, nargs="+", help="every seed's history: choose the epochs on their mean")
    t.add_argument("--metrics", type=Path, required=True, help="the seed's feature metrics (top_jaccard)")
    r = command("reference")
    r.add_argument("--npz", type=Path, required=True, help="the reference's classes.npz (its recipe says how)")
    r.add_argument("--examples", type=Path, help="a split's *_images.npy: training images shown under each class")
    r.add_argument("--per-class", type=int, default=3, help="examples of each class (a figure's layout, not a setting)")
    r.add_argument("--metrics", type=Path, help="the network's model.json (its validation accuracy, in the title)")
    r.add_argument("--judged", type=Path, help="the judge's measures of these images (metrics/reference.csv)")
    c = command("curves")
    c.add_argument("--history", type=Path, nargs="+", required=True,
                   help="each experiment's history of each of its seeds, in experiments' order")
    g = command("gif", help="animation of the composite over epochs")
    g.add_argument("--history", type=Path, required=True)
    g.add_argument("--composites", type=Path, nargs="+", required=True)
    g.add_argument("--experiment", required=True)
    g.add_argument("--html", type=Path, help="also an HTML page holding the GIF (for the report)")
    u = command("units", help="inner units (visualize.units) over the epochs")
    u.add_argument("--npz", type=Path, nargs="+", required=True, help="units.npz of each epoch, in order")
    u.add_argument("--history", type=Path, required=True)
    u.add_argument("--experiment", required=True)
    m = command("method", help="epoch-by-epoch figure of one optional method")
    m.add_argument("--method", required=True, help="one of featevo.measures.explain.METHODS")
    m.add_argument("--npz", type=Path, nargs="+", required=True)
    m.add_argument("--experiment", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from featevo.config.plan import names as class_names
    from featevo.config.plan import seeds_of

    p = parser()
    a = p.parse_args(argv)
    s = read_settings(a.settings, f"figures {a.cmd}")
    if a.cmd in ("evolution", "top", "reference", "gif", "method"):
        a.names = class_names(s.data)
    if a.cmd in ("evolution", "top", "gif", "units", "method"):  # the figures show the first seed
        a.experiment = f"{a.experiment} (seed {s.seeds[0]})"
    if a.cmd == "gif":
        n = gif(pd.read_csv(a.history), a.composites, a.experiment, a.names, a.out[0])
        if a.html:
            gif_page(a.out[0], f"{a.experiment}: class visualizations per epoch", a.html)
        log.info(f"{a.experiment}: {n} frames -> {a.out}")
    elif a.cmd == "top":
        shown = top_images(a.npz, pd.read_csv(a.history), a.val, a.experiment, a.names, a.out,
                           pd.read_csv(a.metrics), _mean(a.mean_of))
        log.info(f"{a.experiment}: top validation images at epochs {shown} -> {a.out}")
    elif a.cmd == "units":
        shown = units(a.npz, pd.read_csv(a.history), a.experiment, recipe_line(np.load(a.npz[0])), a.out)
        log.info(f"{a.experiment}: inner units at epochs {shown} -> {a.out}")
    elif a.cmd == "method":
        method(a.npz, a.method, a.experiment, a.names, a.out)
        log.info(f"{a.experiment}: {a.method} over {len(a.npz)} epochs -> {a.out}")
    elif a.cmd == "evolution":
        shown = evolution(pd.read_csv(a.history), a.composites, a.experiment, a.names, a.out,
                          mean=_mean(a.mean_of), metrics=pd.read_csv(a.metrics) if a.metrics else None,
                          recipe=recipe_line(np.load(a.npz)))
        log.info(f"{a.experiment}: epochs {shown} -> {a.out}")
    elif a.cmd == "reference":
        acc = json.loads(a.metrics.read_text()).get("val_acc") if a.metrics else None
        reference(a.npz, a.names, s.reference.source, a.out, a.examples, a.per_class, acc,
                  pd.read_csv(a.judged) if a.judged else None, s.judge.source != "train",
                  recipe_line(np.load(a.npz)))
        log.info(f"reference -> {a.out}")
    else:
        labels = [exp for exp in s.experiments for _ in seeds_of(s, exp)]
        if len(labels) != len(a.history):
            p.error(f"{len(a.history)} histories for the {len(labels)} (experiment, seed) pairs of experiments")
        curves([pd.read_csv(h) for h in a.history], labels, a.out)
        log.info(f"learning curves -> {a.out}")
    return 0

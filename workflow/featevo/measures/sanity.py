"""The sanity check: what every measure reads for a network that learned nothing.

Adebayo et al. (2018) re-initialize a trained network's weights from the top
layer down (cascading randomization): an explanation that stays the same has
not read what the network learned.  Here each experiment's last checkpoint
(first seed) is re-initialized at three depths of the layers featevo.measures.represent
reads, from the top: ``output`` (the output layer), ``top_half`` (the upper
half of the layers) and ``all`` (every layer: a network that learned nothing),
each with its architecture's own fresh initialization.  Each is visualized
exactly as a trained checkpoint is (``randomize`` writes them; the visualize
rule draws them) and ``measure`` puts the judge's reading, the pixel
complexity and each layer's CKA with the trained network side by side
(``metrics/sanity.csv``, ``metrics/sanity_layers.csv``, ``figures/sanity``).
A measure that reads the same for the trained and the ``all`` network says
nothing about what was learned.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("featevo.measures.sanity")
from featevo.config.plan import SANITY_LEVELS as LEVELS  # noqa: E402  (the rules read them without numpy)
FRESH_SEED = 7919  # the fresh weights' seed (any: they only have to be untrained)


def reinitialized(model, spec, level: str, seed: int = FRESH_SEED, init: str = "torchvision"):
    """``model`` with the layers of ``level`` (:data:`LEVELS`) re-initialized from the top
    by ``init`` (``model.init``: the initializer the experiments start from, Glorot's in
    configs/paper.yaml), and the names of the state entries replaced."""
    from featevo.models.networks import build_model
    from featevo.measures.represent import layers

    if level not in LEVELS:
        raise ValueError(f"unknown sanity level {level!r}; one of {', '.join(LEVELS)}")
    where = layers(model)
    top = {"output": 1, "top_half": max(1, len(where) // 2), "all": len(where)}[level]
    prefixes = tuple(p + "." for layer in where[len(where) - top:] for p in layer.params)
    fresh = build_model(spec, seed=seed, init=init).state_dict()
    state = model.state_dict()
    replaced = [k for k in state if level == "all" or k.startswith(prefixes)]
    for k in replaced:
        state[k] = fresh[k].clone()
    model.load_state_dict(state)
    return model, replaced


def chosen(s) -> list[str]:
    """sanity.levels in the registry's order (:data:`LEVELS`), as the rules order their files."""
    return [level for level in LEVELS if level in s.sanity.levels]


def cmd_randomize(a) -> None:
    from featevo.models import checkpoint as ck
    from featevo.models.networks import ModelSpec

    levels = chosen(a.settings)

    if len(a.out) != len(levels):
        raise SystemExit(f"error: --out takes one path per level of sanity.levels ({', '.join(levels)})")
    for level, out in zip(levels, a.out):
        model, ckpt = ck.load_model(a.checkpoint)
        spec = ModelSpec(**ckpt["spec"])
        model, replaced = reinitialized(model, spec, level, init=a.settings.model.init)
        ck.save_checkpoint(out, model, spec, epoch=ckpt["epoch"], classes=ckpt["classes"],
                           metrics={}, extra={"sanity": {"level": level, "from": str(a.checkpoint),
                                                         "init": a.settings.model.init,
                                                         "reinitialized": replaced}})
        log.info(f"{level}: {len(replaced)} of {len(model.state_dict())} tensors re-initialized -> {out}")


def cmd_measure(a) -> None:
    import pandas as pd

    from featevo.models.checkpoint import load_model
    from featevo.measures.metrics import MEASURES, fixed_network_measures, restart_complexity
    from featevo.config.plan import judge_units
    from featevo.measures.represent import linear_cka

    s = a.settings
    experiments, units, levels = list(s.experiments), judge_units(s), chosen(s)
    judge, _ = load_model(a.judge)
    groups = len(levels) + 1  # the trained network, then each level
    if len(a.npz) != len(experiments) * groups or len(a.represent) != len(a.npz):
        raise SystemExit(f"error: {groups} classes.npz and represent.npz per experiment (trained, "
                         f"{', '.join(levels)})")
    rows, layer_rows, shown = [], [], {}
    for i, exp in enumerate(experiments):
        data = [dict(np.load(f)) for f in a.npz[i * groups:(i + 1) * groups]]
        reps = [dict(np.load(f)) for f in a.represent[i * groups:(i + 1) * groups]]
        stacks = np.stack([d["restart_images"] for d in data])  # (groups, restarts, classes, H, W, 3)
        fixed = fixed_network_measures(stacks, judge, units)
        names = [str(n) for n in data[0]["names"]]
        for g, level in enumerate(("trained", *levels)):
            complexity = restart_complexity(data[g])
            for r in range(stacks.shape[1]):
                for c, name in enumerate(names):
                    rows.append({"experiment": exp, "level": level, "restart": r, "class": name,
                                 "judge_prob": float(fixed["restart_prob"][g, r, c]),
                                 "judge_leak": float(fixed["restart_leak"][g, r, c]),
                                 **{m: float(complexity[r, c, j]) for j, m in enumerate(MEASURES)}})
            for li, layer in enumerate(reps[0]["layers"]):
                layer_rows.append({"experiment": exp, "level": level, "layer": str(layer),
                                   "depth": int(reps[0]["depth"][li]),
                                   "cka_with_trained": linear_cka(reps[g]["gram"][li], reps[0]["gram"][li])})
        shown[exp] = (data, fixed["judge_prob"].mean(axis=1))
    df = pd.DataFrame(rows)
    df.to_csv(a.csv, index=False)
    pd.DataFrame(layer_rows).to_csv(a.layers_csv, index=False)
    mean = df.groupby(["experiment", "level"], sort=False)["judge_prob"].mean().round(3)
    log.info(f"judge p(own class), mean over classes and restarts: {mean.to_dict()} -> {a.csv}")
    return shown, levels



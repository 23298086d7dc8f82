"""The paper's claims, each measured with its test written down (tables/claims.*).

The paper argues by eye.  Here each claim is a measure over the metrics of
every seed (``featevo.metrics``: the judge's reading of every restart's images),
a test with its threshold, and a verdict: ``yes``, ``no``, or ``not testable``
with the reason.  The frozen experiment (convolutional layers fixed) is the
control: its features cannot change, only its classifier.  No number here
chose the image it describes: the judge did not make the images it reads.

C1 Feature complexity grows with validation accuracy (Sec. IV, Figs. 1-2):
   Spearman's rho over the epochs between validation accuracy and (a) the judge's
   probability of each image's class, mean over classes (recognizable features),
   (b) the PNG ratio (pixel complexity).  Holds: rho > 0 in every seed.
C2 Features keep changing after accuracy saturates: saturation is the first
   trained epoch whose accuracy (mean over seeds) is within 1 point of the best; the
   measure is the share of (epoch, class) after it whose change in the judge's
   features exceeds the spread between restarts at both epochs.  Holds: at
   least half, in every seed.  Not testable with fewer than 2 epochs after it.
C3 Past the best epoch, other classes' features appear in each class's image
   ("feature confusion", as overfitting sets in): the judge's largest
   probability of another class (mean over classes) after the best trained
   epoch (mean accuracy over seeds) minus at it.  Holds: accuracy (mean over seeds) ends more than 1 point below its
   best, and leakage rises in every seed.  Not testable when accuracy never fell.
C4 A 4-class network's features are simpler than the 1000-class network's it
   started from (Fig. 3 against Fig. 2): the reference's images (Fig. 3) against
   the pretrained experiment's last epoch, by (a) the judge's probability and
   (b) the PNG ratio.  Holds: Fig. 3's value is higher than every seed's.  (a)
   is not testable when the judge is the reference itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from featevo.plan import experiment_kind, fig3_missing, seeds_of
from featevo.settings import parse

POINT = 0.01  # one percentage point of accuracy


def _per_epoch(df: pd.DataFrame, col: str) -> pd.Series:
    return df.groupby("epoch", sort=True)[col].mean()


def _spearman(a: pd.Series, b: pd.Series) -> float:
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(a.rank().corr(b.rank()))


def _row(claim, experiment, role, measure, test, values, holds, note=""):
    vals = np.asarray(values, float)
    shown = "" if not len(vals) or np.isnan(vals).all() else (
        f"{np.nanmean(vals):.3f}" + (f" ({np.nanmin(vals):.3f} to {np.nanmax(vals):.3f})" if len(vals) > 1 else ""))
    return {"claim": claim, "experiment": experiment, "role": role, "measure": measure, "test": test,
            "value": shown, "per_seed": " ".join(f"{v:.3f}" for v in vals), "holds": holds, "note": note}


def _verdict(ok: list[bool], testable: bool = True) -> str:
    if not testable or not ok:
        return "not testable"
    return "yes" if all(ok) else "no"


def claims(runs: dict[str, dict], reference: pd.DataFrame | None, judge_is_reference: bool) -> pd.DataFrame:
    """``runs``: experiment -> {"kind": random | reference | frozen | imported, "metrics": [per seed DataFrame]}."""
    rows = []
    role = {"random": "test", "reference": "test", "frozen": "control", "imported": "test"}
    for exp, run in runs.items():
        ms, r = run["metrics"], role[run["kind"]]
        for sub, col, what in (("C1a", "judge_prob", "judge p(own class)"), ("C1b", "png_ratio", "PNG ratio")):
            if col not in ms[0]:
                continue
            rho = [_spearman(_per_epoch(m, "val_acc"), _per_epoch(m, col)) for m in ms]
            rows.append(_row(sub, exp, r, f"Spearman rho(validation accuracy, {what}) over epochs",
                             "rho > 0 in every seed", rho,
                             _verdict([v > 0 for v in rho], not np.isnan(rho).any())))
        acc = pd.concat([_per_epoch(m, "val_acc") for m in ms], axis=1).mean(axis=1)
        acc = acc[acc.index >= 1]  # trained epochs: epoch 0 is the initialization
        if "changed" in ms[0]:
            sat = int(acc.index[(acc >= acc.max() - POINT).to_numpy().argmax()])
            after = [m[m["epoch"] > sat] for m in ms]
            share = [float(a["changed"].astype(bool).mean()) if len(a) else float("nan") for a in after]
            n_after = int(acc.index.max()) - sat
            rows.append(_row("C2", exp, r, f"share of (epoch, class) after saturation (epoch {sat}) whose change "
                             "exceeds the restarts' spread", ">= 0.5 in every seed", share,
                             _verdict([v >= 0.5 for v in share], n_after >= 2),
                             "" if n_after >= 2 else f"saturation at epoch {sat}: {n_after} epoch(s) after it"))
        if "judge_leak" in ms[0]:
            best = int(acc.idxmax())
            fell = acc.iloc[-1] < acc.max() - POINT
            leaks = [_per_epoch(m, "judge_leak") for m in ms]
            rise = [float(leak[leak.index > best].mean() - leak[best]) if best < acc.index.max() else float("nan")
                    for leak in leaks]
            note = "" if fell else (f"validation accuracy (mean over seeds) never fell more than 1 point after its "
                                    f"best epoch ({best}): nothing to see")
            rows.append(_row("C3", exp, r, f"judge's leakage after the best epoch ({best}) minus at it",
                             "accuracy falls > 1 point and leakage rises in every seed", rise,
                             _verdict([v > 0 for v in rise], fell), note))
        if run["kind"] == "reference" and reference is not None:
            for sub, col, what in (("C4a", "judge_prob", "judge p(own class)"), ("C4b", "png_ratio", "PNG ratio")):
                if col not in reference or col not in ms[0]:
                    continue
                last = [float(m[m["epoch"] == m["epoch"].max()][col].mean()) for m in ms]
                ref = float(reference[col].mean())
                testable = not (col == "judge_prob" and judge_is_reference)
                rows.append(_row(sub, exp, "test", f"{what}: Fig. 3 ({ref:.3f}) minus the last epoch",
                                 "Fig. 3 higher than every seed", [ref - v for v in last],
                                 _verdict([ref > v for v in last], testable),
                                 "" if testable else "the judge is the reference itself: circular"))
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    cols = ["claim", "experiment", "role", "measure", "test", "value", "holds", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return ("The paper's claims, measured (featevo.claims says each test). value: mean over seeds "
            "(lowest to highest).\n\n" + "\n".join(lines) + "\n")


def parser() -> argparse.ArgumentParser:
    """featevo claims's command line: paths as flags, the settings whole (``--settings``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metrics", type=Path, nargs="+", required=True,
                   help="each experiment's metrics CSV of each of its seeds, experiment by experiment, in "
                        "experiments' order (featevo.plan.seeds_of)")
    p.add_argument("--reference", type=Path, help="the judge's measures of Fig. 3's images")
    p.add_argument("--settings", default="{}", help="experiments, seeds, judge.source, reference.source and "
                   "data.classes as JSON (the rule passes them), or @FILE (a config file)")
    p.add_argument("--out", type=Path, nargs=2, required=True, help="CSV and Markdown")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    s = parse(a.settings, "claims")
    exps = [(name, experiment_kind(spec), seeds_of(s, name)) for name, spec in s.experiments.items()]
    n = sum(len(seeds) for _, _, seeds in exps)
    if len(a.metrics) != n:
        p.error(f"{len(a.metrics)} metrics files for {n} (experiment, seed) pairs")
    it = iter(a.metrics)
    runs = {name: {"kind": kind, "metrics": [pd.read_csv(next(it)) for _ in seeds]} for name, kind, seeds in exps}
    missing = fig3_missing(s)
    if not missing and a.reference is None:
        p.error("--reference: the judge's measures of Fig. 3's images are needed (the config draws Fig. 3)")
    judge_is_reference = s.judge.source != "train"
    df = claims(runs, pd.read_csv(a.reference) if a.reference and not missing else None, judge_is_reference)
    if missing:
        df = pd.concat([df, pd.DataFrame([_row("C4", "-", "test", "Fig. 3 against the last epoch", "-", [],
                                               "not testable", f"no Fig. 3: {missing}")])],
                       ignore_index=True)
    df.to_csv(a.out[0], index=False)
    a.out[1].write_text(markdown(df))
    print(markdown(df))
    return 0

"""The paper's claims, each decided by a stated test (tables/claims.*).

The command line of ``featevo claims``: its arguments and its main, on
:mod:`featevo.stages` (the library is :mod:`featevo.measures.claims`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from featevo.config.plan import experiment_kind, fig3_missing, seeds_of
from featevo.measures.claims import claim_row, claims, markdown
from featevo.stages import read_settings, settings_argument, stage_parser


def parser() -> argparse.ArgumentParser:
    """featevo claims's command line: paths as flags, the settings whole (``--settings``)."""
    p = stage_parser(__doc__)
    p.add_argument("--metrics", type=Path, nargs="+", required=True,
                   help="each experiment's metrics CSV of each of its seeds, experiment by experiment, in "
                        "experiments' order (featevo.config.plan.seeds_of)")
    p.add_argument("--restarts", type=Path, nargs="+", required=True, help="the same, their per-restart CSVs")
    p.add_argument("--layers", type=Path, nargs="+", help="each experiment's settled layers (featevo.measures.represent)")
    p.add_argument("--reference", type=Path, help="the judge's per-restart measures of Fig. 3's images")
    p.add_argument("--floor", type=Path, help="the judge's floor (featevo.measures.judge)")
    p.add_argument("--sanity", type=Path, help="the sanity check's per-restart measures (featevo.measures.sanity)")
    p.add_argument("--controls", type=Path, help="the complexity measures' positive controls (featevo.measures.controls)")
    settings_argument(p, "claims")
    p.add_argument("--out", type=Path, nargs=2, required=True, help="CSV and Markdown")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    s = read_settings(a.settings, "claims")
    exps = [(name, experiment_kind(spec), seeds_of(s, name)) for name, spec in s.experiments.items()]
    n = sum(len(seeds) for _, _, seeds in exps)
    if len(a.metrics) != n or len(a.restarts) != n:
        p.error(f"{len(a.metrics)} metrics and {len(a.restarts)} restart files for {n} (experiment, seed) pairs")
    if a.layers and len(a.layers) != len(exps):
        p.error(f"{len(a.layers)} layer files for {len(exps)} experiments")
    it, rit = iter(a.metrics), iter(a.restarts)
    runs = {name: {"kind": kind, "metrics": [pd.read_csv(next(it)) for _ in seeds],
                   "restarts": [pd.read_csv(next(rit)) for _ in seeds],
                   "layers": pd.read_csv(a.layers[i]) if a.layers else None}
            for i, (name, kind, seeds) in enumerate(exps)}
    missing = fig3_missing(s)
    if not missing and a.reference is None:
        p.error("--reference: the judge's measures of Fig. 3's images are needed (the config draws Fig. 3)")
    judge_is_reference = s.judge.source != "train"
    read = {key: pd.read_csv(getattr(a, key)) if getattr(a, key) else None
            for key in ("floor", "sanity", "controls")}
    df = claims(runs, pd.read_csv(a.reference) if a.reference and not missing else None, judge_is_reference,
                read["floor"], read["sanity"], read["controls"], n_val=s.data.val_per_class * len(s.data.classes))
    if missing:
        df = pd.concat([df, pd.DataFrame([{**claim_row("C4", "-", "test", "Fig. 3 against the last epoch", "-", [], [],
                                                  "not testable", f"no Fig. 3: {missing}"), "judge": ""}])],
                       ignore_index=True)
    df.to_csv(a.out[0], index=False)
    a.out[1].write_text(markdown(df))
    print(markdown(df))
    return 0

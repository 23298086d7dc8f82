"""The paper's claims, each decided by a stated test (tables/claims.*).

The paper argues by eye.  Here each claim is a measure over every seed's
metrics, a test with its null hypothesis, its p-value (one-sided in the
claim's direction, combined over seeds by Stouffer's z) or interval, the
claims' p-values adjusted together by Benjamini-Hochberg (q: 20-odd tests in
one table), and a verdict on q (featevo.measures.stats): ``yes`` (the test rejects at
0.05), ``no`` (the test in the opposite direction does), ``not identifiable`` (C1, where
accuracy varies beyond its trend over the epochs by no more than its sampling
noise: :func:`beyond_time`), ``underpowered``
(neither, and the design's smallest attainable p is not below 0.05: no outcome
could have been significant), ``not significant``, or ``not testable`` with the
reason.  A measure constant up to rounding is never tested.  No number
here chose the image it describes: the judge did not make the images it
reads, and every verdict that rests on the judge is ``not testable`` when the
judge's accuracy on the run's validation images is below
``judge.min_accuracy`` (featevo.measures.judge).

C1 Feature complexity grows with validation accuracy (Sec. IV, Figs. 1-2):
   over the trained epochs (1 on), the partial Spearman rho of validation
   accuracy and (a) the judge's probability of each image's class, (b) the PNG
   ratio, given the epoch: accuracy and time spent training rise together,
   and only what the measure follows of accuracy beyond the epoch counts.
   Permutation test of the pairing per seed (the plain rho is in the note).
C2 Visual complexity keeps increasing after accuracy saturates, as the paper
   states it (saturation: the first trained epoch whose accuracy, mean over
   seeds, is within 1 point of the best): Spearman rho of the epoch and the PNG
   ratio (each epoch's mean over restarts and classes) over the epochs from
   saturation on, per seed, permutation of the pairing, one-sided (> 0);
   Stouffer over seeds.  Not testable with fewer than 4 such epochs.
C2c Features change after accuracy saturates (the weaker reading, "anything
   changed"): each class-epoch after saturation is tested for a change beyond the
   restarts' spread (featevo.measures.metrics: exact permutation test in the judge's
   features); the value is the share significant after Benjamini-Hochberg
   over those class-epochs, the test Simes' of their p-values (null: no class
   changed after saturation; consecutive epochs' tests share an epoch's
   restarts, which Fisher's combination would take for independent evidence).  Not testable with fewer than 2
   epochs after saturation.
C3 Past the best epoch, other classes' features appear in each class's image
   ("feature confusion"): the judge's largest probability of another class,
   each restart's mean over classes, after the best trained epoch against at
   it (permutation test of the means, bootstrap interval).  Testable only
   when accuracy (mean over seeds) ends more than 1 point below its best.
C4 A 4-class network's features are simpler than the 1000-class network's it
   started from (Fig. 3 against Fig. 2): the reference's images against the
   pretrained experiment's last epoch, each restart's mean over classes, by
   (a) the judge's probability, (b) the PNG ratio (permutation test, Fig. 3
   higher).  (a) is not testable when the judge is the reference itself.
C5 Beyond the paper: layers settle bottom up (Raghu et al. 2017): Spearman's
   rho of a layer's depth and the epoch from which it has settled
   (featevo.measures.represent.settle_epoch: from then on 90% of the way from its start
   to its last epoch, in debiased CKA; each with its interval over the images),
   permutation over the layers (exact up to 7).  A layer that never moved (its start
   within 0.02 of its end) has no settle epoch and is left out, named in the note.
C6 Beyond the paper: colour first, parts later (the stand-in's cue-conflict images,
   featevo.data.standin.cue_conflict), by the share of the network's decisions on
   them that follow the parts (parts_share, mean over classes): (a) Spearman rho of
   the epoch and the share over the trained epochs, per seed, permutation test,
   one-sided (> 0), Stouffer over seeds; (b) the last epoch's share above one half
   (Student's t over the seeds); (c) above the labels-shuffled control's (N6;
   permutation of the seeds).  (a) alone is not specific: the shuffled control's share
   rises too, towards one half.  Only with the stand-in.
S  The sanity check (Adebayo et al. 2018): the judge's probability and the
   PNG ratio of the last epoch's images against those of the same network
   with every layer re-initialized (featevo.measures.sanity); a measure that does not
   tell them apart reads nothing the network learned.
N1 The negative control of C1 (an experiment with ``labels: shuffled``, whose
   accuracy stays at chance): Spearman rho of the epoch and (a) the judge's
   probability, (b) the PNG ratio: what grows with training time alone.
N6 The negative control of C6a: Spearman rho of the epoch and the shuffled-label
   network's parts share.
P  The positive controls of the complexity measures (featevo.measures.controls):
   images of known complexity (the stand-in's background with 1, 2, 4, 8 of its
   parts); Spearman rho of the number of parts and the measure, permutation test,
   one-sided.  A measure that does not pass decides no claim: the rows that rest on
   it (C1b, C2, C4b, N1b, S-b: the PNG ratio) are ``not testable``, with the reason.
J  The judge's floor: its accuracy on the run's validation images (exact
   binomial test against chance, Clopper-Pearson interval) against
   ``judge.min_accuracy``, its reading of the starting noise and of epoch 0's
   images.  A class the judge reads into the starting noise with p >= 0.5
   (on the demo: flamingo, 0.99) is left out of the measures made of the
   judge's probability of the image's class (C1a, C4a, S-a): its reading
   cannot tell a drawn class from noise.

Roles: ``frozen`` is the control for the convolutional features only (they
keep the reference's weights); its classifier (fc6, fc7, output) trains, and
class units read it, so its class images can change.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from featevo.measures import stats

POINT = 0.01  # one percentage point of accuracy
NOISE_LIMIT = 0.5  # a class the judge reads into the starting noise this surely tells nothing by its p
ROLE = {"random": "test", "reference": "test", "frozen": "control (convolutions frozen, classifier trains)",
        "imported": "test", "shuffled": "negative control (labels shuffled)"}
JUDGED = ("C1a", "C3", "C4a", "S-a", "N1a")  # the claims whose measure is the judge's reading
# the claims whose measure is a complexity measure, which its positive control must pass
MEASURED = {"C1b": "png_ratio", "C2": "png_ratio", "C4b": "png_ratio", "N1b": "png_ratio", "S-b": "png_ratio"}


def _fmt(v: float, digits: int = 3) -> str:
    if not np.isfinite(v):
        return ""
    return f"{v:.2e}" if 0 < abs(v) < 10 ** -digits else f"{v:.{digits}f}"


def claim_row(claim, experiment, role, measure, test, effects, pvalues, holds, note="", interval=(np.nan, np.nan),
         p=None, p_opposite=np.nan, min_p=np.nan):
    effects = np.asarray(effects, float)
    pvalues = np.asarray(pvalues, float)
    p = stats.combine(pvalues) if p is None else p
    shown = "" if not np.isfinite(effects).any() else _fmt(float(np.nanmean(effects)))
    return {"claim": claim, "experiment": experiment, "role": role, "measure": measure, "test": test,
            "value": shown, "interval": "" if not np.isfinite(interval).all() else
            f"[{_fmt(interval[0])}, {_fmt(interval[1])}]",
            "p": _fmt(p, 4), "per_seed": " ".join(_fmt(v) for v in effects),
            "per_seed_p": " ".join(_fmt(v, 4) for v in pvalues), "holds": holds, "note": note,
            "min_p": _fmt(min_p, 4), "_p": p, "_p_opposite": p_opposite, "_min_p": min_p}


def _decide(pvalues, opposite, min_ps=()) -> tuple[float, float, str, float]:
    """The combined p of the claim's direction, of the opposite direction, the verdict
    before the table's correction (``no`` when the opposite direction's p rejects), and the
    smallest combined p the design can attain (every seed's test at its own smallest)."""
    p, q, low = stats.combine(pvalues), stats.combine(opposite), stats.combine(min_ps)
    return p, q, stats.verdict(p, q, low), low


def _per_epoch(df: pd.DataFrame, col: str) -> pd.Series:
    return df.groupby("epoch", sort=True)[col].mean()


def _kept(df: pd.DataFrame, col: str, noisy: set[str]) -> pd.DataFrame:
    """The rows a judge-probability measure is made of: not the classes read into noise."""
    return df[~df["class"].isin(noisy)] if col == "judge_prob" and noisy else df


def _noise_note(col: str, noisy: dict[str, float]) -> str:
    if col != "judge_prob" or not noisy:
        return ""
    return ("left out: " + ", ".join(f"{c} (the judge reads the starting noise as {c}, p {p:.2f})"
                                     for c, p in noisy.items()) + "; ")


def beyond_time(acc: pd.Series, n_val: int | None) -> tuple[float, float]:
    """How much validation accuracy varies beyond its monotone trend over the epochs (the
    SD of its residuals from an isotonic fit), and the binomial sampling SD of an
    accuracy on ``n_val`` images at its mean: where the first is no larger, what is left
    of accuracy once the epoch is given is sampling noise, and C1 cannot be told from
    training time (not identifiable)."""
    from scipy.optimize import isotonic_regression

    y = acc.to_numpy(float)
    if len(y) < 4 or not n_val:
        return np.nan, np.nan
    fit = isotonic_regression(y).x
    p = float(np.clip(y.mean(), 0, 1))
    return float(np.std(y - fit, ddof=1)), math.sqrt(p * (1 - p) / n_val)


def c1(exp, role, ms, noisy: dict[str, float], n_val: int | None = None) -> list[dict]:
    rows = []
    spread = [beyond_time(_per_epoch(m, "val_acc").loc[lambda s: s.index >= 1], n_val) for m in ms]
    hidden = bool(spread) and all(np.isfinite(r) and np.isfinite(b) and r <= b for r, b in spread)
    trained = min(int((m.drop_duplicates("epoch")["epoch"] >= 1).sum()) for m in ms)
    for sub, col, what in (("C1a", "judge_prob", "judge p(own class)"), ("C1b", "png_ratio", "PNG ratio")):
        if col not in ms[0]:
            continue
        partial, plain, opposite = [], [], []
        for m in ms:
            acc, val = _per_epoch(m, "val_acc"), _per_epoch(_kept(m, col, set(noisy)), col)
            keep = acc.index >= 1  # trained epochs: epoch 0 is the initialization (pretrained: a random head)
            acc, val = acc[keep], val[keep]
            epoch = acc.index.to_numpy(float)
            partial.append(stats.rank_correlation(acc, val, given=epoch))
            opposite.append(stats.rank_correlation(acc, val, given=epoch, alternative="less").p)
            plain.append(stats.rank_correlation(acc, val))
        p, p_opp, verdict, low = _decide([r.p for r in partial], opposite, [r.min_p for r in partial])
        note = ("plain rho (not given the epoch) " + ", ".join(f"{r.statistic:.2f} (p {_fmt(r.p, 3)})"
                                                                 for r in plain))
        if trained < 4:
            note = f"{trained} trained epoch(s): a rank correlation needs 4 or more"
        elif hidden:
            verdict = "not identifiable"
            note = ("accuracy varies beyond its trend over the epochs by SD " + ", ".join(f"{r:.3f}" for r, _ in spread)
                    + f" per seed, within the sampling noise of {n_val} validation images (SD "
                    + ", ".join(f"{b:.3f}" for _, b in spread) + "): what the measure follows of accuracy cannot be "
                    "told from what it follows of training time; " + note)
        elif verdict == "not testable":
            note = (f"{what} or accuracy does not vary beyond the epoch's own order (nothing left once the epoch "
                    f"is given); " + note)
        rows.append(claim_row(sub, exp, role, f"partial Spearman rho(validation accuracy, {what} | epoch), epochs 1 on",
                         "permutation of the pairing per seed, one-sided (> 0); Stouffer over seeds",
                         [r.statistic for r in partial], [r.p for r in partial], verdict,
                         _noise_note(col, noisy) + note, p=p, p_opposite=p_opp, min_p=low))
    return rows


def n1(exp, role, ms, noisy: dict[str, float]) -> list[dict]:
    """The negative control of C1 (an experiment with ``labels: shuffled``: accuracy stays at
    chance): does the measure grow with training time alone?  Spearman rho(epoch, measure)
    over the trained epochs, per seed, one-sided (> 0), Stouffer over seeds.  Where it
    does, a measure's rise over a real run's epochs is no evidence of learning by itself:
    only what follows accuracy beyond the epoch (C1's partial rho) can be."""
    rows = []
    for sub, col, what in (("N1a", "judge_prob", "judge p(own class)"), ("N1b", "png_ratio", "PNG ratio")):
        if col not in ms[0]:
            continue
        results, opposite = _trend([_kept(m, col, set(noisy)) for m in ms], col)
        accs = [float(_per_epoch(m, "val_acc").iloc[-1]) for m in ms]
        p, p_opp, verdict, low = _decide([r.p for r in results], opposite, [r.min_p for r in results])
        note = (f"validation accuracy at the last epoch: {', '.join(f'{a:.2f}' for a in accs)} (labels shuffled: "
                "chance expected); yes: the measure grows with training time alone, so its rise over a real "
                "run's epochs is no evidence of learning by itself, and only C1's partial rho (given the epoch) "
                "can be; no or not significant: time alone does not raise it here")
        rows.append(claim_row(sub, exp, role, f"Spearman rho(epoch, {what}), epochs 1 on, labels shuffled",
                         "permutation of the pairing per seed, one-sided (> 0); Stouffer over seeds",
                         [r.statistic for r in results], [r.p for r in results], verdict,
                         _noise_note(col, noisy) + note, p=p, p_opposite=p_opp, min_p=low))
    return rows


def _accuracy(ms) -> pd.Series:
    acc = pd.concat([_per_epoch(m, "val_acc") for m in ms], axis=1).mean(axis=1)
    return acc[acc.index >= 1]  # trained epochs


def c2(exp, role, ms, rs, acc) -> list[dict]:
    if "change_p" not in ms[0]:
        return []
    # each class-epoch's exact split test of r restarts against r: at best 2 / C(2r, r); Simes at
    # best the same (every test at its best), Stouffer over seeds
    r = int(rs[0]["restart"].nunique()) if "restart" in rs[0] else 0
    low = stats.combine([2 / math.comb(2 * r, r) if r >= 2 else np.nan] * len(ms))
    sat = int(acc.index[(acc >= acc.max() - POINT).to_numpy().argmax()])
    n_after = int(acc.index.max()) - sat
    shares, ps = [], []
    for m in ms:
        after = m[m["epoch"] > sat]["change_p"].to_numpy(float)
        after = after[np.isfinite(after)]
        shares.append(float(np.mean(stats.bh(after) < stats.ALPHA)) if len(after) else np.nan)
        # null: no class changed after saturation; consecutive epochs' tests share an epoch's
        # restarts (positively dependent), which Fisher's combination does not allow
        ps.append(stats.simes(after))
    testable = n_after >= 2 and np.isfinite(ps).any()
    p = stats.combine(ps) if testable else np.nan
    note = "" if n_after >= 2 else f"saturation at epoch {sat}: {n_after} epoch(s) after it"
    return [claim_row("C2c", exp, role, f"share of (epoch, class) after saturation (epoch {sat}) changed beyond the "
                 "restarts' spread (BH q < 0.05)", "per class-epoch: exact permutation of the two epochs' restarts; "
                 "Simes over class-epochs per seed, Stouffer over seeds", shares, ps,
                 stats.verdict(p, min_p=low) if testable else "not testable", note, p=p, min_p=low)]


def c2_trend(exp, role, rs, acc) -> list[dict]:
    """C2 as the paper states it: complexity keeps rising after accuracy saturates."""
    col = "png_ratio"
    if col not in rs[0] or acc.empty:
        return []
    sat = int(acc.index[(acc >= acc.max() - POINT).to_numpy().argmax()])
    results, opposite, n_after = [], [], 0
    for r in rs:
        means = r[r["epoch"] >= sat].groupby("epoch", sort=True)[col].mean()  # over restarts and classes
        n_after = len(means)
        results.append(stats.rank_correlation(means.index.to_numpy(float), means.to_numpy(float)))
        opposite.append(stats.rank_correlation(means.index.to_numpy(float), means.to_numpy(float),
                                               alternative="less").p)
    p, p_opp, verdict, low = _decide([x.p for x in results], opposite, [x.min_p for x in results])
    note = (f"{n_after} epoch(s) from saturation (epoch {sat}) on: a rank correlation needs 4 or more"
            if n_after < 4 else "each epoch's PNG ratio, mean over restarts and classes (the restarts' spread is "
            "in C2c)")
    return [claim_row("C2", exp, role, f"Spearman rho(epoch, PNG ratio) from saturation (epoch {sat}) on",
                 "permutation of the pairing per seed, one-sided (> 0); Stouffer over seeds",
                 [x.statistic for x in results], [x.p for x in results],
                 verdict if n_after >= 4 else "not testable", note, p=p if n_after >= 4 else np.nan,
                 p_opposite=p_opp if n_after >= 4 else np.nan, min_p=low)]


def _restart_means(r: pd.DataFrame, col: str, epochs) -> np.ndarray:
    """Each restart's mean over classes of ``col``, at the given epochs (one value per
    (epoch, restart))."""
    sel = r[r["epoch"].isin(list(epochs))]
    return sel.groupby(["epoch", "restart"])[col].mean().to_numpy(float)


def c3(exp, role, ms, rs, acc) -> list[dict]:
    if "judge_leak" not in rs[0]:
        return []
    best = int(acc.idxmax())
    fell = bool(acc.iloc[-1] < acc.max() - POINT)
    results, opposite = [], []
    for r in rs:
        after = [e for e in r["epoch"].unique() if e > best]
        a, b = _restart_means(r, "judge_leak", after), _restart_means(r, "judge_leak", [best])
        results.append(stats.mean_difference(a, b) if after else stats.NAN)
        opposite.append(stats.mean_difference(a, b, alternative="less").p if after else np.nan)
    p, p_opp, verdict, low = _decide([x.p for x in results], opposite, [x.min_p for x in results])
    note = "" if fell else (f"validation accuracy (mean over seeds) never fell more than 1 point after its best "
                            f"epoch ({best}): nothing to see")
    interval = (results[0].low, results[0].high) if len(results) == 1 else (np.nan, np.nan)
    return [claim_row("C3", exp, role, f"judge's leakage after the best epoch ({best}) minus at it, each restart's mean "
                 "over classes", "permutation of restarts, one-sided (> 0); Stouffer over seeds",
                 [x.statistic for x in results], [x.p for x in results], verdict if fell else "not testable", note,
                 interval=interval, p=p if fell else np.nan, p_opposite=p_opp if fell else np.nan, min_p=low)]


def c4(exp, ms, rs, reference: pd.DataFrame | None, judge_is_reference: bool, noisy: dict[str, float]) -> list[dict]:
    rows = []
    if reference is None:
        return rows
    for sub, col, what in (("C4a", "judge_prob", "judge p(own class)"), ("C4b", "png_ratio", "PNG ratio")):
        if col not in reference or col not in rs[0]:
            continue
        ref = _kept(reference, col, set(noisy)).groupby("restart")[col].mean().to_numpy(float)
        # every seed is compared with the same Fig. 3 restarts: one test of them against the
        # seeds' last epochs pooled (Stouffer over seeds would count Fig. 3's restarts twice)
        lasts = [_restart_means(_kept(r, col, set(noisy)), col, [r["epoch"].max()]) for r in rs]
        pooled = np.concatenate(lasts)
        result = stats.mean_difference(ref, pooled)
        p_opp = stats.mean_difference(ref, pooled, alternative="less").p
        testable = not (col == "judge_prob" and judge_is_reference)
        p, verdict, low = result.p, stats.verdict(result.p, p_opp, result.min_p), result.min_p
        per_seed = [float(np.mean(ref) - np.mean(last)) if len(last) else np.nan for last in lasts]
        interval = (result.low, result.high)
        rows.append(claim_row(sub, exp, "test", f"{what}: Fig. 3 ({np.mean(ref):.3f}) minus the last epoch, each "
                         "restart's mean over classes", "permutation of Fig. 3's restarts against every seed's "
                         "last-epoch restarts pooled, one-sided (Fig. 3 higher): one test, as the seeds share "
                         "Fig. 3's restarts", per_seed, [p] * len(lasts),
                         verdict if testable else "not testable",
                         _noise_note(col, noisy) + ("" if testable else "the judge is the reference itself: circular"),
                         interval=interval, p=p if testable else np.nan,
                         p_opposite=p_opp if testable else np.nan, min_p=low))
    return rows


def c5(exp, role, layers: pd.DataFrame | None) -> list[dict]:
    if layers is None or layers.empty:
        return []
    results, opposite = [], []
    for _, g in layers.groupby("seed", sort=True):
        results.append(stats.rank_correlation(g["depth"], g["settle_epoch"]))
        opposite.append(stats.rank_correlation(g["depth"], g["settle_epoch"], alternative="less").p)
    p, p_opp, verdict, low = _decide([x.p for x in results], opposite, [x.min_p for x in results])
    epochs = layers.groupby("layer", sort=False)["settle_epoch"].mean()
    note = "settled from epoch (mean over seeds): " + ", ".join(
        f"{k} {v:.1f}" for k, v in epochs.items() if np.isfinite(v))
    if {"settle_low", "settle_high"} <= set(layers):
        first = layers[layers["seed"] == layers["seed"].min()]
        note += "; 95% interval over the images (first seed): " + ", ".join(
            f"{r.layer} [{r.settle_low:.0f}, {r.settle_high:.0f}]" for r in first.itertuples()
            if np.isfinite(r.settle_low))
    still = [str(k) for k, v in epochs.items() if not np.isfinite(v)]
    if still:
        note += f"; never moved (left out): {', '.join(still)}"
    if layers["settle_epoch"].isna().all():
        note = "no layer moved beyond 0.02 of its end (debiased CKA): nothing settles"
    elif verdict == "not testable":
        note = "every layer settled at the same epoch; " + note
    return [claim_row("C5", exp, role, "Spearman rho(layer depth, epoch from which the layer has settled), beyond "
                 "the paper (Raghu et al. 2017)", "permutation over the layers (exact up to 7 layers, else 9,999 random "
                 "orderings), one-sided (> 0); "
                 "Stouffer over seeds", [x.statistic for x in results], [x.p for x in results], verdict, note,
                 p=p, p_opposite=p_opp, min_p=low)]


def _last_shares(ms) -> tuple[int, list[float]]:
    """The experiment's last epoch (the latest any seed reached) and each seed's parts share
    (mean over classes) there: NaN for a seed without one at that epoch, so that every value
    compared is the same epoch's."""
    last = int(max(m["epoch"].max() for m in ms))
    shares = []
    for m in ms:
        at = _per_epoch(m, "parts_share") if "parts_share" in m else pd.Series(dtype=float)
        shares.append(float(at.get(last, np.nan)))
    return last, shares


def _listed(shares) -> str:
    return ", ".join("none" if not np.isfinite(v) else f"{v:.2f}" for v in shares)


def _trend(frames, col: str) -> tuple[list, list]:
    """Per seed, Spearman rho of the epoch and ``col`` (each epoch's mean) over the trained
    epochs (1 on): the one-sided (> 0) result and the opposite direction's p."""
    results, opposite = [], []
    for m in frames:
        val = _per_epoch(m, col)
        val = val[val.index >= 1]
        epoch = val.index.to_numpy(float)
        results.append(stats.rank_correlation(epoch, val))
        opposite.append(stats.rank_correlation(epoch, val, alternative="less").p)
    return results, opposite


def c6(exp, role, ms, control: tuple[str, list] | None = None) -> list[dict]:
    """Colour first, parts later, in three rows.  C6a: the parts share rises over the
    epochs (per seed rank test, Stouffer).  Rising alone is not evidence of parts: a
    network trained on shuffled labels, which decides by neither cue, drifts towards one
    half too (measured: docs/results.md, N6).  C6b: the last epoch's share is above one
    half (parts win over colour; Student's t over the seeds).  C6c: it is above the
    labels-shuffled experiment's at its last epoch (``control``: its name and per-seed
    metrics; permutation of the seeds): the share a network reaches without learning the
    classes."""
    if "parts_share" not in ms[0]:
        return []
    results, opposite = _trend(ms, "parts_share")
    p, p_opp, verdict, low = _decide([r.p for r in results], opposite, [r.min_p for r in results])
    shares = [s for s in (_per_epoch(m, "parts_share").dropna() for m in ms) if len(s)]
    firsts = [float(s.iloc[0]) for s in shares]
    last, lasts = _last_shares(ms)
    missing = [str(k) for k, v in enumerate(lasts) if not np.isfinite(v)]
    at = f"epoch {last}" + (f" (no share there: seed {', '.join(missing)}, left out)" if missing else "")
    note = (f"parts share (mean over classes) first {', '.join(f'{v:.2f}' for v in firsts)}, at {at} "
            f"{_listed(lasts)} per seed (0.5: parts and colour alike); rising alone is no evidence of parts: "
            "a network that learned nothing drifts towards one half too (N6); C6b and C6c decide")
    rows = [claim_row("C6a", exp, role, "Spearman rho(epoch, share of decisions on the cue-conflict images that "
                      "follow the parts), epochs 1 on, beyond the paper", "permutation of the pairing per seed, "
                      "one-sided (> 0); Stouffer over seeds", [r.statistic for r in results],
                      [r.p for r in results], verdict, note, p=p, p_opposite=p_opp, min_p=low)]
    half = stats.mean_above(lasts, 0.5, bounds=(0.0, 1.0))
    half_opp = stats.mean_above(lasts, 0.5, alternative="less")
    rows.append(claim_row("C6b", exp, role, f"parts share at the last epoch ({last}) minus one half, mean over seeds",
                          "Student's t over the seeds, one-sided (> 0.5; all seeds alike: sign flips); 95% t "
                          "interval, two-sided, uncorrected", [half.statistic], [half.p],
                          stats.verdict(half.p, half_opp.p, half.min_p),
                          f"share at {at} {_listed(lasts)} per seed; yes: at the end the network follows the parts "
                          "more often than the colours", interval=(half.low, half.high), p=half.p,
                          p_opposite=half_opp.p, min_p=half.min_p))
    what = "parts share at the last epoch minus the labels-shuffled control's at its last"
    test = "permutation of the seeds, one-sided (> 0); 95% bootstrap interval, two-sided, uncorrected"
    if control is None:
        rows.append(claim_row("C6c", exp, role, what, test, [np.nan], [np.nan], "not testable",
                              "no experiment with labels: shuffled in this config: nothing to compare with "
                              "(configs/controlled.yaml has one)"))
        return rows
    name, their_ms = control
    their_last, theirs = _last_shares(their_ms)
    if not np.isfinite(theirs).any():
        rows.append(claim_row("C6c", exp, role, f"{what} ({name})", test, [np.nan], [np.nan], "not testable",
                              f"the control {name} has no parts share at its last epoch ({their_last})"))
        return rows
    diff = stats.mean_difference(lasts, theirs)
    diff_opp = stats.mean_difference(lasts, theirs, alternative="less")
    rows.append(claim_row("C6c", exp, role, f"{what} ({name}, epoch {their_last})", test, [diff.statistic],
                          [diff.p], stats.verdict(diff.p, diff_opp.p, diff.min_p),
                          f"share at {at} {_listed(lasts)} per seed, {name}'s at epoch {their_last} "
                          f"{_listed(theirs)}; yes: beyond what a network that learned nothing reaches",
                          interval=(diff.low, diff.high), p=diff.p, p_opposite=diff_opp.p, min_p=diff.min_p))
    return rows


def n6(exp, role, ms) -> list[dict]:
    """The negative control of C6a: does the parts share of a network trained on shuffled
    labels (it learns no class, so neither cue) rise with training time alone?"""
    if "parts_share" not in ms[0]:
        return []
    results, opposite = _trend(ms, "parts_share")
    p, p_opp, verdict, low = _decide([r.p for r in results], opposite, [r.min_p for r in results])
    last, lasts = _last_shares(ms)
    note = (f"share at epoch {last} per seed {_listed(lasts)} (0.5: neither "
            "cue); yes: the share rises with training time alone, so C6a's rise is no evidence by itself, "
            "and C6b and C6c decide")
    return [claim_row("N6", exp, role, "Spearman rho(epoch, parts share on the cue-conflict images), epochs 1 on, "
                      "labels shuffled", "permutation of the pairing per seed, one-sided (> 0); Stouffer over seeds",
                      [r.statistic for r in results], [r.p for r in results], verdict, note, p=p,
                      p_opposite=p_opp, min_p=low)]


def sanity_rows(sanity: pd.DataFrame, noisy: dict[str, float]) -> list[dict]:
    rows = []
    for exp, g in sanity.groupby("experiment", sort=False):
        for sub, col, what, alternative in (("S-a", "judge_prob", "judge p(own class)", "greater"),
                                            ("S-b", "png_ratio", "PNG ratio", "two-sided")):
            g_ = _kept(g, col, set(noisy))
            trained = g_[g_["level"] == "trained"].groupby("restart")[col].mean().to_numpy(float)
            random = g_[g_["level"] == "all"].groupby("restart")[col].mean().to_numpy(float)
            r = stats.mean_difference(trained, random, alternative=alternative)
            rows.append(claim_row(sub, exp, "sanity", f"{what}: last epoch minus the same network with every layer "
                             "re-initialized, each restart's mean over classes",
                             f"permutation of restarts ({'one-sided, trained higher' if alternative == 'greater' else 'two-sided'})",
                             [r.statistic], [r.p], stats.verdict(r.p, min_p=r.min_p),
                             _noise_note(col, noisy) + "yes: the measure tells the trained network from one that "
                             "learned nothing; otherwise it does not (here)", interval=(r.low, r.high),
                             min_p=r.min_p))
    return rows


def judge_row(floor: pd.DataFrame, epoch0: dict[str, float]) -> dict:
    from scipy.stats import binomtest

    summary = floor[floor["class"] == "all"].iloc[0]
    n, acc = int(summary["val_images"]), float(summary["accuracy"])
    k = int(round(acc * n))
    test = binomtest(k, n, float(summary["chance"]), alternative="greater")
    ci = test.proportion_ci(0.95, method="exact")
    noise = ", ".join(f"{c} {v:.2f}" for c, v in zip(floor["class"], floor["noise_prob"]) if c != "all")
    ok = bool(summary["testable"])
    return claim_row("J", "judge", "floor", f"judge accuracy on {n} validation images among the classes' units "
                f"(needed: {summary['min_accuracy']:.2f}; chance {summary['chance']:.2f})",
                "exact binomial test against chance, Clopper-Pearson interval", [acc], [test.pvalue],
                "yes" if ok else "no", f"p(class | the ascent's starting noise): {noise}; "
                + "".join(f"p(own class) of {exp}'s epoch 0 images (a network that learned nothing): {v:.2f}; "
                          for exp, v in epoch0.items())
                + ("" if ok else "every verdict that rests on the judge is not testable"),
                interval=(ci.low, ci.high))


def control_rows(controls: pd.DataFrame) -> list[dict]:
    """The positive controls (featevo.measures.controls), one row per measure: does it order
    images of known complexity (1, 2, 4, 8 parts)?  Not in the claims' correction family."""
    rows = []
    for r in controls.itertuples():
        p, low = float(r.p), float(r.min_p)
        rows.append(claim_row("P", "controls", "positive control", f"{r.measure}: Spearman rho(number of parts, "
                         f"measure) over {r.images} images of known complexity", "permutation of the pairing, "
                         "one-sided (> 0)", [r.rho], [p], stats.verdict(p, min_p=low) if np.isfinite(p) else
                         "not testable", f"mean by number of parts {r.means_by_parts}; a measure that does not "
                         "pass carries no verdict", min_p=low))
    return rows


def judge_note(kind: str, judge_is_reference: bool) -> str:
    if not judge_is_reference:
        return "judge independent: trained apart (another architecture, seed and images)"
    if kind in ("reference", "frozen"):
        return "judge NOT independent: it is the ImageNet network that initialized this experiment"
    return "judge: the ImageNet network (did not initialize this experiment)"


def claims(runs: dict[str, dict], reference: pd.DataFrame | None, judge_is_reference: bool,
           floor: pd.DataFrame | None = None, sanity: pd.DataFrame | None = None,
           controls: pd.DataFrame | None = None, n_val: int | None = None) -> pd.DataFrame:
    """``runs``: experiment -> {"kind": random | reference | frozen | imported, "metrics": [per seed
    DataFrame], "restarts": [per seed per-restart DataFrame], "layers": settle epochs or None};
    ``reference``: Fig. 3's per-restart measures; ``controls``: the complexity measures'
    positive controls (a measure that fails its control decides no claim)."""
    rows = []
    noisy = {} if floor is None else {
        str(r["class"]): float(r["noise_prob"]) for _, r in floor.iterrows()
        if r["class"] != "all" and r["noise_prob"] >= NOISE_LIMIT}
    # C6c's control: an experiment trained on shuffled labels, of the same length where one is
    shuffled_runs = {e: r["metrics"] for e, r in runs.items() if r["kind"] == "shuffled"}

    def shuffled(ms):
        if not shuffled_runs:
            return None
        length = max(int(m["epoch"].max()) for m in ms)
        same = [e for e, c in shuffled_runs.items() if max(int(m["epoch"].max()) for m in c) == length]
        name = (same or list(shuffled_runs))[0]
        return name, shuffled_runs[name]

    for exp, run in runs.items():
        ms, rs, role = run["metrics"], run["restarts"], ROLE[run["kind"]]
        acc = _accuracy(ms)
        if run["kind"] == "shuffled":  # nothing to learn: only what time alone does is measured
            new = n1(exp, role, ms, noisy) + n6(exp, role, ms)
        else:
            new = (c1(exp, role, ms, noisy, n_val) + c2_trend(exp, role, rs, acc) + c2(exp, role, ms, rs, acc)
                   + c3(exp, role, ms, rs, acc))
            if run["kind"] == "reference":
                new += c4(exp, ms, rs, reference, judge_is_reference, noisy)
            new += c5(exp, role, run.get("layers")) + c6(exp, role, ms, shuffled(ms))
        for row in new:
            row["judge"] = judge_note(run["kind"], judge_is_reference) if row["claim"] in JUDGED else ""
        rows += new
    if sanity is not None:
        for row in sanity_rows(sanity, noisy):
            row["judge"] = "" if row["claim"] not in JUDGED else judge_note(runs[row["experiment"]]["kind"],
                                                                           judge_is_reference)
            rows.append(row)
    if controls is not None:
        why = failed(controls)
        for row in rows:
            if MEASURED.get(row["claim"]) in why and row["holds"] != "not testable":
                row["holds"] = "not testable"
                row["note"] = (why[MEASURED[row["claim"]]] + "; " + row["note"]).rstrip("; ")
        rows += [{**r, "judge": ""} for r in control_rows(controls)]
    if floor is not None:
        epoch0 = {exp: float(run["metrics"][0].query("epoch == 0")["judge_prob"].mean())
                  for exp, run in runs.items() if run["kind"] == "random" and "judge_prob" in run["metrics"][0]}
        rows.append({**judge_row(floor, epoch0), "judge": ""})
        if not bool(floor["testable"].iloc[0]):
            acc = float(floor.loc[floor["class"] == "all", "accuracy"].iloc[0])
            for row in rows:
                if row["claim"] in JUDGED and row["holds"] != "not testable":
                    row["holds"] = "not testable"
                    row["note"] = (f"the judge's accuracy ({acc:.2f}) is below judge.min_accuracy; "
                                   + row["note"]).rstrip("; ")
    correct(rows)
    for row in rows:
        if row["holds"] == "underpowered":
            row["note"] = "; ".join(filter(None, [row["note"], f"underpowered: the smallest p this design can "
                                                  f"attain is {row['min_p']}, not below {stats.ALPHA}: more "
                                                  "restarts, seeds or epochs would be needed"]))
    return pd.DataFrame(rows).drop(columns=["_p", "_p_opposite", "_min_p"])


def correct(rows: list[dict]) -> None:
    """The claims (C1-C6, N1, N6) are many tests of one table: their p-values are adjusted by
    Benjamini-Hochberg over every tested claim row of the experiments under test
    (``q``), in each direction, and the verdict is the adjusted one (a p of 0.045 among
    20 tests decides nothing).  A control's rows (the frozen experiment's) are corrected
    among themselves, apart: its C5 holds by construction (its convolutions never move),
    and in the family its tiny p lowered the others' q (scratch's C5: 0.024 with it,
    0.044 without)."""
    tested = [r for r in rows if r["claim"].startswith(("C", "N"))
              and r["holds"] not in ("not testable", "not identifiable")
              and np.isfinite(r.get("_p", np.nan))]
    control = ["control" in str(r.get("role", "")) for r in tested]
    for family in ([r for r, c in zip(tested, control) if not c], [r for r, c in zip(tested, control) if c]):
        _adjust(family)
    for r in rows:
        r.setdefault("q", "")


def _adjust(family: list[dict]) -> None:
    q = stats.bh([r["_p"] for r in family])
    q_opposite = stats.bh([r["_p_opposite"] for r in family])
    for r, qv, qo in zip(family, q, q_opposite):
        r["q"] = _fmt(qv, 4)
        r["holds"] = stats.verdict(qv, qo, r.get("_min_p", np.nan))


COLUMNS = ["claim", "experiment", "role", "measure", "test", "value", "interval", "p", "q", "holds", "judge", "note"]


def markdown(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for _, r in df.iterrows()]
    return ("The paper's claims, each decided by a stated test (featevo.measures.claims says each). value: the "
            "effect, mean over seeds; interval: 95% (one seed); p: one-sided in the claim's direction, "
            "combined over seeds; q: p adjusted by Benjamini-Hochberg over the claims' rows (C1-C6, N1, N6; a control's rows "
            "among themselves); holds (on q "
            "for C1-C6 and N1, N6, on p for the checks S and J and the positive controls P): yes / no (the opposite direction is significant) / not "
            "significant / underpowered (no outcome of this design could be significant) / not identifiable (the "
            "design cannot tell the claim from training time) / not testable, at 0.05.\n\n" + "\n".join(lines) + "\n")


def failed(controls: pd.DataFrame | None) -> dict[str, str]:
    """measure -> why it carries no verdict (its positive control failed)."""
    if controls is None:
        return {}
    return {r.measure: (f"{r.measure} failed its positive control (Spearman rho with the number of parts "
                        f"{r.rho:.2f}, p {r.p:.3g}; means by parts {r.means_by_parts}): it does not order images "
                        "of known complexity, so it decides nothing")
            for r in controls.itertuples() if not bool(r.passes)}

"""The atlas: one static HTML page per run that a person browses (opens from disk and
inside ``snakemake --report``; no server): the layers, a grid of each layer's channels
with a slider over the epochs that moves the whole grid, and each channel's page (a
click on its cell): its images across the epochs side by side, its top real images at
the epoch the slider shows, with their classes, and its numbers.  Every image is inside
the page (data URIs), so the one file is the whole atlas."""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
from PIL import Image


def _uri(img: np.ndarray, kind: str = "PNG") -> str:
    """An image inside the page, at its own size (the page scales it): PNG for the
    channels' images, JPEG for the real ones (a tenth of the bytes)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, kind, **({"quality": 85} if kind == "JPEG" else {"optimize": True}))
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


CSS = """body{font-family:sans-serif;margin:1em}h2{margin:.6em 0 .2em}.grid{display:flex;flex-wrap:wrap;gap:6px}
.cell{display:flex;flex-direction:column;align-items:center;font-size:11px;color:#333;text-decoration:none}
.cell img,.row img{width:96px;height:96px;image-rendering:pixelated}.channel{display:none;border-top:1px solid #999;
margin-top:1em}.channel:target{display:block}.row{display:flex;flex-wrap:wrap;gap:4px}.row figure{margin:0;
font-size:11px;text-align:center}.top img{width:64px;height:64px}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px}#bar{position:sticky;top:0;background:#fff;padding:.4em 0}"""

SCRIPT = """const E = %(epochs)s, IMG = %(images)s;
const slider = document.getElementById('epoch'), label = document.getElementById('elabel');
function show(i) {
  label.textContent = 'epoch ' + E[i];
  document.querySelectorAll('img.ev').forEach(im => { im.src = IMG[im.dataset.unit][i]; });
  document.querySelectorAll('.top').forEach(d => { d.style.display = (+d.dataset.epoch === i) ? 'flex' : 'none'; });
}
slider.addEventListener('input', () => show(+slider.value));
show(+slider.value);"""


def peaks_on(names: list[str], counts: np.ndarray) -> str:
    """"eyes 3, body 2, background 1": the parts under a channel's top images' peaks, most first."""
    labels = list(names) + ["background"]
    order = np.argsort(-np.asarray(counts), kind="stable")
    return ", ".join(f"{labels[i]} {int(counts[i])}" for i in order if counts[i] > 0)


def parts_by_layer(units: list[tuple[str, int]], epochs: list[int], names: list[str], counts: np.ndarray,
                   area: np.ndarray) -> str:
    """A table: per layer and epoch, how many of its channels' top stand-in images peak on
    a part of the object (not the clutter, not the background), beside the share a peak
    placed at random would (the parts' area).  A reading, not a test: one image can be
    among the top of several channels."""
    obj = [i for i, n in enumerate(names) if n != "clutter"]  # the background is the last column
    layers = list(dict.fromkeys(layer for layer, _ in units))
    rows = ["<table class='parts'><tr><th>top images peaking on the object's parts</th>"
            + "".join(f"<th>epoch {e}</th>" for e in epochs) + "</tr>"]
    for layer in layers:
        mine = [u for u, (lay, _) in enumerate(units) if lay == layer]
        cells = "".join(f"<td>{int(counts[e][mine][:, obj].sum())}/{int(counts[e][mine].sum())}</td>"
                        for e in range(len(epochs)))
        rows.append(f"<tr><td>{html.escape(layer)}</td>{cells}</tr>")
    rows.append(f"</table><p>A peak placed at random falls on the object's parts {area[obj].sum():.0%} of the "
                "time (their area). A reading, not a test: one image can be among the top of several channels.</p>")
    return "".join(rows)


def settle_summary(units: list[tuple[str, int]], settled: np.ndarray) -> str:
    """Which layer's channels settle first: each layer's median settle epoch (its channels'
    top real images share half or more with the last epoch's from then on), and Spearman's
    rho of the layers' depth and those medians, permutation over the layers (exact: 120
    orderings of 5 layers), one-sided (deeper later, as C5 asks of whole layers).  Over the
    layers, not the channels: a layer's channels share its fate, and a test over channels
    would call any difference between two layers significant."""
    from featevo.measures import stats

    layers = list(dict.fromkeys(layer for layer, _ in units))
    depth = np.array([layers.index(layer) for layer, _ in units])
    medians = np.array([np.median(np.asarray(settled, float)[depth == d]) for d in range(len(layers))])
    listed = ", ".join(f"{html.escape(layer)} {m:.0f}" for layer, m in zip(layers, medians))
    r = stats.rank_correlation(np.arange(len(layers), dtype=float), medians)
    test = (f"Spearman rho of the layers' depth and their median settle epoch {r.statistic:.2f}, p {r.p:.2g} "
            f"(exact permutation over the {len(layers)} layers, one-sided: deeper later; the smallest p "
            f"{r.min_p:.2g})" if np.isfinite(r.p) else
            "not tested: fewer than four layers, or every layer settled at the same epoch")
    return (f"<p class='settle'>Top real images settled (median epoch over each layer's channels): {listed}. "
            f"{test}.</p>")


def atlas_page(title: str, epochs: list[int], units: list[tuple[str, int]], images: np.ndarray,
               activation: np.ndarray, top_index: np.ndarray, top_score: np.ndarray, settled: np.ndarray,
               val_images: np.ndarray, val_labels: np.ndarray, names: list[str], note: str = "",
               explains: dict[str, np.ndarray] | None = None,
               parts: tuple[list[str], np.ndarray, np.ndarray] | None = None) -> str:
    """The page.  ``images``: (epochs, units, H, W, 3) uint8, each channel's image at each
    epoch; ``activation``: (epochs, units) the activation it reached; ``top_index`` /
    ``top_score``: (epochs, units, k) its top real images and their activations;
    ``settled``: (units,) the epoch its top images settled; ``explains``: (epochs, units)
    each of ``explains`` (the image's explanation score, featevo.measures.atlas), its known
    answers ``explains_liked`` and ``explains_random``; ``parts``: the stand-in's part names,
    (epochs, units, parts + 1) on which part each channel's top fresh stand-in images peak
    (the last: the background; featevo.measures.atlas.part_counts) and (parts + 1) each
    one's share of the pixels (where a peak placed at random falls)."""
    e_n, u_n = images.shape[:2]
    uris = [[_uri(images[e, u]) for e in range(e_n)] for u in range(u_n)]
    thumbs = {int(i): _uri(val_images[i], "JPEG") for i in np.unique(top_index)}
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if note:
        out.append(f"<p>{html.escape(note)}</p>")
    if explains is not None:
        from featevo.measures.atlas import score_can_move

        last = {k: v[-1] for k, v in explains.items()}
        moves, p = score_can_move(last["explains_liked"], last["explains_random"])
        out.append("<p>Explanation score (in the manner of MIS: does the channel's image tell its top real images "
                   "from its bottom ones, matched by likeness in the judge network's features? 0.5: no better than "
                   f"a coin, 1: every pair). At the last epoch, over the {u_n} channels: median "
                   f"{np.median(last['explains']):.2f} for their images; known answers: "
                   f"{np.median(last['explains_liked']):.2f} with a real image each channel likes (not one it is "
                   f"scored on), {np.median(last['explains_random']):.2f} with a random one: "
                   + (f"the score can move here (liked above random, one-sided Wilcoxon over the channels, p {p:.2g})."
                      if moves else
                      f"<b>the score cannot tell its known answers apart here (p {p:.2g}): read no channel's score "
                      "as evidence</b> (a weak judge, or images too small for its features).") + "</p>")
    out.append(settle_summary(units, settled))
    if parts is not None:
        out.append("<p>Parts: on fresh stand-in images drawn with where each part is, each channel's top images "
                   "(by its mean activation) and the part under their peak (its highest cell; the background where "
                   "no part shows): what the channel responds to, checked against what is really in the image. "
                   "A peak placed at random falls on each as often as it covers the images: "
                   + html.escape(", ".join(f"{n} {a:.0%}" for n, a in sorted(zip(list(parts[0]) + ["background"],
                                                                                 parts[2]), key=lambda t: -t[1])
                                           if a >= 0.005)) + ".</p>")
        out.append(parts_by_layer(units, epochs, parts[0], parts[1], parts[2]))
    out.append(f"<div id='bar'><input type='range' id='epoch' min='0' max='{e_n - 1}' value='{e_n - 1}' "
               f"style='width:30em'> <b id='elabel'></b></div>")
    for layer in dict.fromkeys(layer for layer, _ in units):
        out.append(f"<h2>{html.escape(layer)}</h2><div class='grid'>")
        for u, (lay, c) in enumerate(units):
            if lay == layer:
                out.append(f"<a class='cell' href='#u{u}'><img class='ev' data-unit='{u}' alt='{html.escape(lay)} "
                           f"channel {c}'>channel {c}</a>")
        out.append("</div>")
    for u, (layer, c) in enumerate(units):
        out.append(f"<section class='channel' id='u{u}'><h3>{html.escape(layer)}, channel {c}</h3>"
                   f"<p>its top real images have settled from epoch {settled[u]:.0f} (they share half or more with the "
                   f"last epoch's from then on)</p><div class='row'>")
        for e in range(e_n):
            out.append(f"<figure><img src='{uris[u][e]}' alt='epoch {epochs[e]}'><figcaption>epoch {epochs[e]}"
                       f"</figcaption></figure>")
        out.append("</div><h4>its top real images at the slider's epoch</h4>")
        for e in range(e_n):
            out.append(f"<div class='top row' data-epoch='{e}'>")
            for i, s in zip(top_index[e, u], top_score[e, u]):
                out.append(f"<figure><img src='{thumbs[int(i)]}' alt='image {int(i)}'><figcaption>"
                           f"{html.escape(names[int(val_labels[i])])}<br>{s:.2f}</figcaption></figure>")
            out.append("</div>")
        out.append("<table><tr><th>epoch</th><th>its image's activation</th><th>best real image's</th>"
                   "<th>ratio</th>" + ("<th>explanation score</th><th>a liked real image's</th>"
                                       "<th>a random one's</th>" if explains is not None else "")
                   + ("<th>its top stand-in images peak on</th>" if parts is not None else "") + "</tr>")
        for e in range(e_n):
            best = float(top_score[e, u, 0])
            ratio = activation[e, u] / best if best > 0 else float("nan")
            scores = "".join(f"<td>{explains[k][e, u]:.2f}</td>" for k in ("explains", "explains_liked",
                                                                            "explains_random")) if explains else ""
            held = f"<td>{html.escape(peaks_on(parts[0], parts[1][e, u]))}</td>" if parts is not None else ""
            out.append(f"<tr><td>{epochs[e]}</td><td>{activation[e, u]:.3f}</td><td>{best:.3f}</td>"
                       f"<td>{ratio:.2f}</td>{scores}{held}</tr>")
        out.append("</table><p><a href='#'>back to the grid</a></p></section>")
    out.append("<script>" + SCRIPT % {"epochs": json.dumps(list(map(int, epochs))), "images": json.dumps(uris)}
               + "</script></body></html>")
    return "".join(out)

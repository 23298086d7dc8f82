"""Procedural stand-in for ImageNet, written in ImageNet's training layout.

Each class is an object made of parts (coloured shapes and textures) drawn at a
random position, scale, rotation and colour, on a cluttered background that also
carries stray parts of every class.  No single pixel, colour or part decides the
class: the four paper classes share parts with the extra classes (the frog's
eyes with the bullfrog, the flamingo's neck with the egret, the bun with the
bagel, the felt rails with the cabinet...), so a network trained on all of them
(the demo's "full ImageNet") learns features that transfer to the four.

``standin.palette`` says how much the colours give the class away:

- ``coded``: every class in its own colours (a green frog with red eyes, a pink
  flamingo, green felt in brown wood): a colour histogram alone tells the four
  paper classes apart at about 80% (docs/results.md), so the task never needs
  the parts.  Kept as the control at that end.
- ``shared``: every image draws its colours afresh, without replacement, from
  one pool shared by all classes (each named colour of the object and of the
  clutter mapped to a pool colour), and its surfaces' textures (flat or
  striped) at random: only the arrangement of the parts tells the class.
- ``tilted`` (the default): ``shared``, except that ``standin.tilt`` of the
  images keep their class's own colours and textures: colour carries part of
  the class, as in ImageNet (a tree frog is usually green), but never enough.

Files: ``<root>/<wnid>/<wnid>_<n>.JPEG``, as in ``ILSVRC2012_img_train``, and beside
them ``<root>/<wnid>/parts.npz``: where each part of every image's object is (``files``,
``parts``: the class's part names, ``boxes``: (images, parts, 4) x0, y0, x1, y1 in pixels,
-1 where the part does not show), so that a measure can be checked against what is really
in an image; :func:`render`'s ``masks`` gives the pixels themselves.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("featevo.data.standin")

# wnid -> (name, drawing function name).  The first four are the paper's.
CLASSES: dict[str, str] = {
    "n01644373": "tree frog",
    "n02007558": "flamingo",
    "n07697313": "cheeseburger",
    "n03982430": "pool table",
    "n01641577": "bullfrog",
    "n02009912": "American egret",
    "n07693725": "bagel",
    "n07714571": "head cabbage",
    "n03942813": "ping-pong ball",
    "n03018349": "china cabinet",
}

GREEN = (0.25, 0.72, 0.2)
PINK = (0.97, 0.48, 0.6)
BUN = (0.85, 0.58, 0.28)
PATTY = (0.33, 0.17, 0.08)
CHEESE = (1.0, 0.8, 0.12)
WOOD = (0.45, 0.25, 0.1)
FELT = (0.1, 0.52, 0.28)
RED_EYE = (0.92, 0.22, 0.08)
SESAME = (0.98, 0.92, 0.75)
BALL_COLOURS = [
    (0.95, 0.85, 0.1),
    (0.1, 0.2, 0.8),
    (0.85, 0.1, 0.1),
    (0.4, 0.1, 0.6),
    (1.0, 0.5, 0.0),
    (0.05, 0.45, 0.15),
    (0.5, 0.1, 0.1),
    (0.05, 0.05, 0.05),
    (0.97, 0.97, 0.95),
]


NAMED = [GREEN, PINK, BUN, PATTY, CHEESE, WOOD, FELT, RED_EYE, SESAME, (0.45, 0.42, 0.18), (0.85, 0.7, 0.2),
         (0.95, 0.95, 0.92), (0.65, 0.8, 0.9), (0.35, 0.5, 0.6)]
# the shared pool: every colour any class is drawn in (black, the pupils and pockets, stays black)
POOL = np.asarray(list(dict.fromkeys(tuple(map(float, c)) for c in NAMED + BALL_COLOURS)), np.float32)
PALETTES = ("tilted", "shared", "coded")  # the schema's standin.palette
PARTS_FILE = "parts.npz"  # in each class's folder: every image's part boxes (write_standin)
QUALITY = 90  # the stand-in's JPEGs (write_standin)


class Canvas:
    """A float RGB image with an object frame (centre, radius, rotation), and the image's
    colours: ``colours`` maps each named colour to the one this image paints it in (empty:
    the class's own), ``textured``: whether surfaces take their class's texture."""

    def __init__(self, size: int, rng: np.random.Generator, palette: str = "coded", tilt: float = 0.0):
        self.size = size
        self.rng = rng
        self.colours: dict[tuple, np.ndarray] = {}
        self.textured = True
        self.asked: list[tuple] = []  # the named colours asked for, in order (class_colours)
        # where each part is (render's ``masks``): the part being drawn, and per part its visible
        # coverage (0-1), occluded by whatever is painted over it later; None: not recorded
        self.part: str | None = None
        self.masks: dict[str, np.ndarray] | None = None
        if palette not in PALETTES:
            raise ValueError(f"standin.palette: unknown {palette!r}; choose one of {', '.join(PALETTES)}")
        # coded draws nothing here: its images are those the stand-in drew before palettes
        own = palette == "coded" or (palette == "tilted" and bool(rng.random() < tilt))
        if not own:
            self.colours = {c: POOL[k] for c, k in zip(map(tuple, POOL.tolist()), rng.permutation(len(POOL)))}
            self.textured = False
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        self.xx, self.yy = xx, yy
        self.img = np.zeros((size, size, 3), np.float32)
        self.set_frame(size / 2, size / 2, size / 2, 0.0)

    def set_frame(self, cx: float, cy: float, radius: float, angle: float) -> None:
        """Local coordinates (u, v): unit = radius, rotated by angle (radians)."""
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = self.xx - cx, self.yy - cy
        self.u = (c * dx + s * dy) / radius
        self.v = (-s * dx + c * dy) / radius
        self.px = 1.0 / radius  # one pixel in local units, for soft edges

    def jitter(self, colour) -> np.ndarray:
        """The same named colour (in this image's palette), never the same shade twice."""
        self.asked.append(tuple(np.float32(colour).tolist()))
        colour = self.colours.get(tuple(np.float32(colour).tolist()), colour)
        c = np.asarray(colour, np.float32) * self.rng.uniform(0.75, 1.15)
        return np.clip(c + self.rng.normal(0, 0.04, 3), 0, 1).astype(np.float32)

    def paint(self, sdf: np.ndarray, colour) -> None:
        """Fill where the signed distance (local units) is negative, antialiased."""
        alpha = np.clip(0.5 - sdf / self.px, 0.0, 1.0)[..., None]
        col = colour if isinstance(colour, np.ndarray) and colour.ndim == 3 else np.asarray(colour, np.float32)
        self.img *= 1.0 - alpha
        self.img += alpha * col
        if self.masks is not None:  # reads no random number: the image is the same recorded or not
            a = alpha[..., 0]
            for m in self.masks.values():
                m *= 1.0 - a
            if self.part is not None:
                self.masks.setdefault(self.part, np.zeros_like(a))
                self.masks[self.part] += a

    # signed distance functions in local units
    def ellipse(self, x, y, rx, ry):
        d = np.sqrt(((self.u - x) / rx) ** 2 + ((self.v - y) / ry) ** 2)
        return (d - 1.0) * min(rx, ry)

    def box(self, x, y, w, h):
        qx = np.abs(self.u - x) - w / 2
        qy = np.abs(self.v - y) - h / 2
        return np.maximum(qx, qy)

    def polyline(self, pts, width):
        d = np.full(self.u.shape, np.inf, np.float32)
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            ex, ey = x1 - x0, y1 - y0
            t = np.clip(((self.u - x0) * ex + (self.v - y0) * ey) / (ex * ex + ey * ey + 1e-9), 0, 1)
            d = np.minimum(d, np.hypot(self.u - x0 - t * ex, self.v - y0 - t * ey))
        return d - width / 2

    def surface(self, c0, c1, period, angle, striped: bool):
        """A surface in c0: its class's texture (stripes to c1, or flat), or, where the
        palette is shared, flat or striped at random."""
        if not self.textured:
            striped = bool(self.rng.random() < 0.5)
        return self.stripes(c0, c1, period, angle) if striped else c0

    def stripes(self, c0, c1, period, angle):
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (self.u * math.cos(angle) + self.v * math.sin(angle)) / period)
        return c0 * (1 - t[..., None]) + c1 * t[..., None]


# ---- the classes' parts ------------------------------------------------------


def _eyes(cv: Canvas, iris) -> None:
    cv.part = "eyes"
    for sx in (-1, 1):
        cv.paint(cv.ellipse(0.38 * sx, -0.42, 0.2, 0.2), cv.jitter(iris))
        cv.paint(cv.ellipse(0.38 * sx, -0.42, 0.08, 0.12), cv.jitter((0.02, 0.02, 0.02)))


def _frog(cv: Canvas, skin, iris) -> None:
    c = cv.jitter(skin)
    cv.part = "legs"
    for sx in (-1, 1):  # legs first, body over them
        cv.paint(cv.ellipse(0.72 * sx, 0.5, 0.32, 0.14), c * 0.85)
        cv.paint(cv.ellipse(0.6 * sx, -0.05, 0.26, 0.12), c * 0.85)
    cv.part = "body"
    cv.paint(cv.ellipse(0.0, 0.12, 0.7, 0.55), cv.surface(c, c * 0.7, 0.35, cv.rng.uniform(0, 3), True))
    _eyes(cv, iris)


def _bird(cv: Canvas, plumage, beak) -> None:
    c = cv.jitter(plumage)
    cv.part = "legs"
    for x in (0.05, 0.25):
        cv.paint(cv.polyline([(x, 0.3), (x + 0.05, 0.7), (x, 1.05)], 0.06), c * 0.8)
    cv.part = "body"
    cv.paint(cv.ellipse(0.15, 0.15, 0.55, 0.3), cv.surface(c, c * 0.7, 0.35, 0.4, False))
    bend = cv.rng.uniform(0.15, 0.3)
    neck = [(-0.3, 0.05), (-0.45, -0.2), (-0.3 + bend, -0.45), (-0.45, -0.75), (-0.3, -0.9)]
    cv.part = "neck"
    cv.paint(cv.polyline(neck, 0.12), c)
    cv.part = "head"
    cv.paint(cv.ellipse(-0.25, -0.92, 0.13, 0.1), c)
    cv.part = "beak"
    cv.paint(cv.polyline([(-0.15, -0.92), (0.05, -0.82)], 0.07), cv.jitter(beak))


def _bun(cv: Canvas, x, y, rx, ry, top: bool) -> None:
    cv.part = "bun"
    c = cv.jitter(BUN)
    sdf = cv.ellipse(x, y, rx, ry)
    sdf = np.maximum(sdf, (cv.v - y) if top else (y - cv.v))  # half-ellipse
    cv.paint(sdf, cv.surface(c, c * 0.8, 0.3, 0.0, False))
    if top:
        cv.part = "sesame"
        for _ in range(7):
            sx, sy = cv.rng.uniform(-0.6, 0.6), y - cv.rng.uniform(0.1, 0.45)
            cv.paint(np.maximum(cv.ellipse(sx, sy, 0.06, 0.035), sdf), cv.jitter(SESAME))


def _burger(cv: Canvas) -> None:
    _bun(cv, 0, 0.45, 0.82, 0.25, top=False)
    cv.part = "patty"
    cv.paint(cv.ellipse(0, 0.35, 0.9, 0.14), cv.jitter(PATTY))
    cv.part = "cheese"
    cv.paint(cv.box(0, 0.2, 1.7, 0.1), cv.jitter(CHEESE))
    wave = 0.06 * np.sin(9 * cv.u)
    cv.part = "lettuce"
    cv.paint(np.abs(cv.v - 0.1 - wave) - 0.07 + np.maximum(np.abs(cv.u) - 0.95, 0), cv.jitter(GREEN))
    _bun(cv, 0, 0.05, 0.88, 0.6, top=True)


def _balls(cv: Canvas, n, region, r=0.08) -> None:
    (x0, x1), (y0, y1) = region
    cv.part = "balls"
    for k in range(n):
        x, y = cv.rng.uniform(x0, x1), cv.rng.uniform(y0, y1)
        colour = BALL_COLOURS[cv.rng.integers(len(BALL_COLOURS))] if k else (0.97, 0.97, 0.95)
        cv.paint(cv.ellipse(x, y, r, r), cv.jitter(colour))
        cv.paint(cv.ellipse(x - r / 3, y - r / 3, r / 3, r / 3), np.float32([1, 1, 1]) * 0.95)


def _framed(cv: Canvas, w, h, inside, name: str) -> None:
    cv.part = "frame"
    cv.paint(cv.box(0, 0, w, h), cv.jitter(WOOD))
    cv.part = name
    cv.paint(cv.box(0, 0, w - 0.3, h - 0.3), inside)


def _pool_table(cv: Canvas) -> None:
    felt = cv.jitter(FELT)
    _framed(cv, 2.0, 1.2, cv.surface(felt, felt * 0.7, 0.4, 0.0, False), "felt")
    cv.part = "pockets"
    for x in (-0.85, 0.0, 0.85):
        for y in (-0.45, 0.45):
            cv.paint(cv.ellipse(x, y, 0.08, 0.08), np.float32([0.02, 0.02, 0.02]))
    _balls(cv, int(cv.rng.integers(3, 9)), ((-0.7, 0.7), (-0.3, 0.3)))


def _bagel(cv: Canvas) -> None:
    c = cv.jitter(BUN)
    ring = np.maximum(cv.ellipse(0, 0, 0.85, 0.7), -cv.ellipse(0, 0, 0.3, 0.24))
    cv.part = "ring"
    cv.paint(ring, cv.surface(c, c * 0.8, 0.5, 0.7, True))
    cv.part = "sesame"
    for _ in range(10):
        a, r = cv.rng.uniform(0, 2 * math.pi), cv.rng.uniform(0.4, 0.7)
        cv.paint(cv.ellipse(r * math.cos(a), 0.8 * r * math.sin(a), 0.06, 0.035), cv.jitter(SESAME))


def _cabbage(cv: Canvas) -> None:
    c = cv.jitter(GREEN)
    cv.part = "leaves"
    for r in (0.9, 0.7, 0.5, 0.3):
        wave = 0.06 * np.sin(9 * np.arctan2(cv.v, cv.u) + r * 7)
        cv.paint(cv.ellipse(0, 0, r, r * 0.9) + wave, c * (0.65 + 0.4 * r))


def _cabinet(cv: Canvas) -> None:
    glass = cv.surface(cv.jitter((0.65, 0.8, 0.9)), cv.jitter((0.35, 0.5, 0.6)), 0.45, math.pi / 2, True)
    _framed(cv, 1.2, 2.0, glass, "glass")


def _ping_pong(cv: Canvas) -> None:
    _balls(cv, int(cv.rng.integers(5, 12)), ((-0.9, 0.9), (-0.9, 0.9)), r=0.13)


DRAW = {
    "n01644373": lambda cv: _frog(cv, GREEN, RED_EYE),
    "n02007558": lambda cv: _bird(cv, PINK, (0.05, 0.05, 0.05)),
    "n07697313": _burger,
    "n03982430": _pool_table,
    "n01641577": lambda cv: _frog(cv, (0.45, 0.42, 0.18), (0.85, 0.7, 0.2)),
    "n02009912": lambda cv: _bird(cv, (0.95, 0.95, 0.92), CHEESE),
    "n07693725": _bagel,
    "n07714571": _cabbage,
    "n03942813": _ping_pong,
    "n03018349": _cabinet,
}


def _background(cv: Canvas) -> None:
    rng, n = cv.rng, cv.size
    c0, c1 = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    cv.set_frame(n / 2, n / 2, n / 2, rng.uniform(0, 2 * math.pi))
    t = np.clip(0.5 + 0.5 * cv.u, 0, 1)[..., None]
    cv.img[:] = c0 * (1 - t) + c1 * t
    # smooth low-frequency blotches: bilinear upsampling of a 4 x 4 field
    low = rng.normal(0, 0.12, (4, 4, 3)).astype(np.float32)
    cv.img += np.stack([np.asarray(Image.fromarray(low[..., c], "F").resize((n, n), Image.Resampling.BILINEAR))
                        for c in range(3)], -1)


def _distractors(cv: Canvas, count: int) -> None:
    """Stray parts of every class, so that no part alone gives the class away."""
    rng, n = cv.rng, cv.size
    cv.part = "clutter"
    colours = [GREEN, PINK, BUN, PATTY, CHEESE, WOOD, FELT, RED_EYE] + BALL_COLOURS
    for _ in range(count):
        cv.set_frame(rng.uniform(0, n), rng.uniform(0, n), n * rng.uniform(0.06, 0.16), rng.uniform(0, 2 * math.pi))
        colour = cv.jitter(colours[rng.integers(len(colours))])
        kind = rng.integers(4)
        if kind == 0:
            cv.paint(cv.ellipse(0, 0, 1.0, rng.uniform(0.4, 1.0)), colour)
        elif kind == 1:
            cv.paint(cv.polyline([(-1, 0), (0, rng.uniform(-0.6, 0.6)), (1, 0)], 0.25), colour)
        elif kind == 2:
            cv.paint(cv.box(0, 0, 2.0, rng.uniform(0.3, 1.2)), colour)
        else:
            cv.paint(cv.ellipse(0, 0, 1, 1), cv.stripes(colour, colour * 0.5, 0.5, rng.uniform(0, 3)))


def render(wnid: str, rng: np.random.Generator, size: int, clutter: int, palette: str = "coded",
           tilt: float = 0.0, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One image of class ``wnid`` as uint8 (size, size, 3), its colours as ``palette`` says.
    ``masks``, a dict, receives where each part is: per part of the object
    (:func:`class_parts`) and ``clutter`` (the stray parts), (size, size) float32, how
    much of each pixel shows it (1: all, 0: none; what is painted over it later hides it).
    Recording reads no random number: the image is the same, bit for bit."""
    cv = Canvas(size, rng, palette, tilt)
    cv.masks = masks
    _background(cv)
    _distractors(cv, int(rng.integers(clutter // 2, clutter + 1)))
    radius = size * rng.uniform(0.24, 0.42)
    margin = radius * 0.6
    cx, cy = rng.uniform(margin, size - margin, 2)
    cv.set_frame(cx, cy, radius, rng.normal(0, 0.45))
    DRAW[wnid](cv)
    _distractors(cv, int(rng.integers(0, 3)))  # a little occlusion in front
    cv.img += rng.normal(0, 0.03, cv.img.shape).astype(np.float32)
    return (np.clip(cv.img, 0, 1) * 255 + 0.5).astype(np.uint8)


def class_parts(wnid: str) -> list[str]:
    """The parts a class's object is drawn from, in drawing order (render's ``masks``)."""
    cv = Canvas(16, np.random.default_rng(0), "coded")
    cv.set_frame(8, 8, 6, 0.0)
    cv.masks = {}
    DRAW[wnid](cv)
    return list(cv.masks)


def part_boxes(masks: dict[str, np.ndarray], parts: list[str], visible: float = 0.5) -> np.ndarray:
    """(parts, 4) int16 boxes (x0, y0, x1, y1; pixels, x1 and y1 inclusive) of each part's
    pixels that show it at least ``visible``; -1 where none does (hidden or left out)."""
    out = np.full((len(parts), 4), -1, np.int16)
    for i, name in enumerate(parts):
        ys, xs = np.nonzero(masks.get(name, np.zeros((1, 1))) >= visible)
        if len(xs):
            out[i] = (xs.min(), ys.min(), xs.max(), ys.max())
    return out


def probe(wnids: list[str], per_class: int, size: int, seed: int, clutter: int, palette: str = "tilted",
          tilt: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Fresh images of the classes with where each part is, drawn as the stand-in draws
    its classes (``palette``, ``tilt``, ``clutter``) at ``size``, from a stream of their
    own (``seed``): (N, size, size, 3) uint8 images, (N,) labels, (N, parts, size, size)
    float16 visible coverage of each part, and the parts' names (every class's, in order
    of first appearance, then ``clutter``).  Not JPEG-compressed or resized as the
    extracted images are: the same objects, a little sharper."""
    names = list(dict.fromkeys([p for w in wnids for p in class_parts(w)] + ["clutter"]))
    images, labels, masks = [], [], []
    for k, wnid in enumerate(wnids):
        rng = np.random.default_rng([seed, int(wnid[1:]), 7])  # 7: apart from write_standin's streams
        for _ in range(per_class):
            m: dict[str, np.ndarray] = {}
            images.append(render(wnid, rng, size, clutter, palette, tilt, masks=m))
            labels.append(k)
            masks.append(np.stack([m.get(n, np.zeros((size, size), np.float32)) for n in names]).astype(np.float16))
    return np.stack(images), np.asarray(labels), np.stack(masks), names


def as_extracted(images: np.ndarray, size: int, resize: str) -> np.ndarray:
    """Drawn images as the extraction hands the stand-in's to a network: through a JPEG at
    the stand-in's quality and featevo.data.imagenet.decode at ``size`` (``data.resize``)."""
    import io

    from featevo.data.imagenet import decode

    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=QUALITY)
        out.append(decode(buf.getvalue(), size, resize))
    return np.stack(out)


def class_colours(wnid: str) -> list[tuple]:
    """The named colours a class paints itself in (its own palette), in the order its
    drawing first asks for them: the surfaces a cue-conflict image lends another class."""
    cv = Canvas(16, np.random.default_rng(0), "coded")
    cv.set_frame(8, 8, 6, 0.0)
    DRAW[wnid](cv)
    return list(dict.fromkeys(cv.asked))


def cue_conflict(wnids: list[str], per_pair: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cue-conflict images (Geirhos et al. 2019, from this generator): for every ordered
    pair of classes (A, B), ``per_pair`` images of A's object, its parts in their
    arrangement, painted in B's own colours (A's named colours mapped in order onto B's,
    surfaces flat or striped at random), on the stand-in's background with no stray
    parts.  A network that decides by the parts names A; one that decides by colour, B.
    Returns uint8 (N, size, size, 3) images and each one's parts class and surface
    class (indices into ``wnids``)."""
    own = {w: class_colours(w) for w in wnids}
    rng = np.random.default_rng([seed, 4_000_037])
    images, parts, surfaces = [], [], []
    for a, wa in enumerate(wnids):
        for b, wb in enumerate(wnids):
            if a == b:
                continue
            for _ in range(per_pair):
                cv = Canvas(size, rng, "coded")
                cv.colours = {c: np.asarray(own[wb][k % len(own[wb])], np.float32) for k, c in enumerate(own[wa])}
                cv.textured = False
                _background(cv)
                radius = size * rng.uniform(0.24, 0.42)
                margin = radius * 0.6
                cx, cy = rng.uniform(margin, size - margin, 2)
                cv.set_frame(cx, cy, radius, rng.normal(0, 0.45))
                DRAW[wa](cv)
                cv.img += rng.normal(0, 0.03, cv.img.shape).astype(np.float32)
                images.append((np.clip(cv.img, 0, 1) * 255 + 0.5).astype(np.uint8))
                parts.append(a)
                surfaces.append(b)
    return np.stack(images), np.asarray(parts), np.asarray(surfaces)


def write_standin(root: Path, wnids: list[str], per_class: int, size: int, seed: int, clutter: int,
                  quality: int = QUALITY, processes: int = 1, log=print, palette: str = "coded", tilt: float = 0.0) -> int:
    """Write ``per_class`` JPEGs for each wnid under ``root``; returns the count."""
    unknown = [w for w in wnids if w not in DRAW]
    if unknown:
        raise ValueError(f"the stand-in has no drawing for {unknown}; known wnids: {sorted(DRAW)}")
    start = time.monotonic()
    jobs = [(root, w, per_class, size, seed, clutter, quality, palette, tilt) for w in wnids]
    with ProcessPoolExecutor(max(1, min(processes, len(jobs)))) as pool:
        for k, wnid in enumerate(pool.map(_write_class, jobs), 1):
            log(f"[standin] {k}/{len(wnids)} {wnid} ({CLASSES[wnid]}): {per_class} images, "
                f"{time.monotonic() - start:.1f} s")
    return per_class * len(wnids)


def _write_class(job) -> str:
    root, wnid, per_class, size, seed, clutter, quality, palette, tilt = job
    folder = root / wnid
    folder.mkdir(parents=True, exist_ok=True)
    # one stream per class: adding a class never changes another's images
    rng = np.random.default_rng([seed, int(wnid[1:])])
    parts, files, boxes = class_parts(wnid), [], []
    for i in range(per_class):
        masks: dict[str, np.ndarray] = {}
        img = render(wnid, rng, size, clutter, palette, tilt, masks=masks)
        files.append(f"{wnid}_{i + 1}.JPEG")
        Image.fromarray(img).save(folder / files[-1], "JPEG", quality=quality)
        boxes.append(part_boxes(masks, parts))
    # where each part is, per image (not an image: ImageNet's readers and featevo's skip it)
    np.savez(folder / PARTS_FILE, files=np.asarray(files), parts=np.asarray(parts), boxes=np.stack(boxes))
    return wnid

"""What a progress line says is left (standard library only)."""

from __future__ import annotations


def eta(done: int, total: int, elapsed: float) -> str:
    """What a progress line says is left: the ``total - done`` steps (batches, ascent
    steps) still to go at the rate measured over the ``done`` in ``elapsed`` seconds,
    as ``ETA 3 min 20 s`` (``ETA 2 h 05 min``, ``ETA 1 d 3 h``); empty once all are done."""
    if done <= 0 or done >= total:
        return ""
    left = round((total - done) * elapsed / done)
    if left < 60:
        return f"ETA {left} s"
    if left < 3600:
        return f"ETA {left // 60} min {left % 60:02d} s"
    if left < 86400:
        return f"ETA {left // 3600} h {left % 3600 // 60:02d} min"
    return f"ETA {left // 86400} d {left % 86400 // 3600} h"

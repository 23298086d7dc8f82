"""``python -m featevo <stage> [args]``: one stage of the workflow as a job.

Every rule runs its stage this way, as a plain process that Snakemake starts
(and its ``benchmark:`` measures).  The one thing a job adds to the stage's own
command line: it stops, writing nothing more, as soon as the Snakemake that
started it is gone (:func:`featevo.runtime.watch_snakemake`), and
``featevo.checkpoint.atomic_save`` checks again right before it publishes.
Standard library only until the stage itself is imported.
"""

from __future__ import annotations

import runpy
import sys

from featevo import runtime

# the workflow's stages, the modules a rule may run
STAGES = ("standin", "extract", "weights", "train", "visualize", "explain", "metrics", "claims", "figures", "tables",
          "represent", "judge", "sanity")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STAGES:
        print(f"usage: python -m featevo STAGE [args...], STAGE one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    runtime.watch_snakemake()
    sys.argv = [f"featevo.{argv[0]}", *argv[1:]]
    runpy.run_module(f"featevo.{argv[0]}", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

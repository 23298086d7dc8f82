"""``python -m featevo <stage> [args]``: one stage of the workflow as a job, the one
entry of every stage (by hand too: ``python -m featevo visualize --help``).

Every rule runs its stage this way, as a plain process that Snakemake starts (and
its ``benchmark:`` measures).  What the entry adds to the stage's own ``main``: logging,
set up here once (each stage logs under ``featevo.<stage>``, with the time, to
standard output: its job's log), and the job stops, writing nothing more, as soon as
the Snakemake that started it is gone (:func:`featevo.jobs.watch.watch_snakemake`;
``featevo.models.checkpoint.atomic_save`` checks again right before it publishes).
Standard library only until the stage itself is imported.
"""

from __future__ import annotations

import importlib
import os
import sys

from featevo.jobs import watch

# the workflow's stages, the modules a rule may run
STAGES = ("standin", "extract", "weights", "train", "visualize", "explain", "metrics", "claims", "figures", "tables",
          "represent", "judge", "sanity", "controls", "cues", "atlas")


def configure_logging() -> None:
    """Logging configured once, for the job: every stage logs under ``featevo.<stage>``,
    with the date and time (a CPU run of the paper lasts days), to standard output (its
    job's log); warnings go there too."""
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    logging.captureWarnings(True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STAGES:
        print(f"usage: python -m featevo STAGE [args...], STAGE one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    configure_logging()
    watch.watch_snakemake()
    sys.argv = [f"featevo {argv[0]}", *argv[1:]]  # the stage's usage line: "usage: featevo train ..."
    return importlib.import_module(f"featevo.stages.{argv[0]}").main(argv[1:])


def finish(rc: int) -> None:
    """End the job at once when its stage has returned: its outputs are closed (and the
    checkpoints fsynced), so all the interpreter's teardown would add is time: 0.6 s with
    torch and torch._dynamo loaded (measured on 2 cores: importing both and exiting took
    2.9 s, and 2.3 s ending with os._exit), a fifth of a demo epoch job's fixed cost.  A
    stage that fails raises instead, and exits the ordinary way with its message."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc or 0)


if __name__ == "__main__":
    finish(main())

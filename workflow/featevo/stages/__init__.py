"""The stages' commands: one short module per stage, each a parser and a main that
read files, call the library below and write files (``python -m featevo <stage>``).

What every stage shares lives here: its ``--settings`` (what
:data:`featevo.config.reads.READS` names for it, parsed and completed from the schema
by :func:`featevo.config.settings.parse`) and ``--threads``.  Logging is set up once,
for the job, by ``featevo/__main__.py``.
"""

from __future__ import annotations

import argparse

SETTINGS_HELP = ("as JSON (the rule passes them), or @FILE (a config file); the schema's defaults fill in the "
                 "rest, so a stage run by hand gets what the workflow gives it")


def settings_argument(p: argparse.ArgumentParser, reads: str) -> None:
    """``--settings``: what ``READS[reads]`` names (the ``{exp}`` of a key filled in by the stage)."""
    p.add_argument("--settings", default="{}", help=f"what featevo.config.reads.READS[{reads!r}] names, {SETTINGS_HELP}")


def threads_argument(p: argparse.ArgumentParser, default: int | None = None, help: str | None = None) -> None:
    """``--threads``: torch's threads in this job (the rule's ``threads:``); none: torch's own choice."""
    p.add_argument("--threads", type=int, default=default, help=help or "torch's threads (the rule passes its own)")


def read_settings(text: str, reads: str, **fill):
    """A stage's ``--settings``, read (:func:`featevo.config.settings.parse`): what
    ``READS[reads]`` names, from the rule's JSON, or from a config file (``@FILE``)
    completed as the workflow completes its config at parse time, so that a stage run by
    hand gets every value the workflow would give it (the judge's sizes included)."""
    from featevo.config.settings import parse

    complete = None
    if text.startswith("@"):  # a job the workflow starts reads JSON: it loads no checks
        from featevo.preflight.checks import completed as complete
    return parse(text, reads, complete=complete, **fill)


def stage_parser(doc: str) -> argparse.ArgumentParser:
    """A stage's parser, described by the first line of its module's docstring (each command
    then adds its flags, :func:`settings_argument` and, where it computes, :func:`threads_argument`)."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


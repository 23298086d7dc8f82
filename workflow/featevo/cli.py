"""What a rule hands its job: the config sections the stage reads, as one ``--settings``
argument (:mod:`featevo.settings` reads it back and fills in the schema's defaults).

Sections go whole, so that a new setting reaches its stage without being spelled
here; left out are the settings of how jobs run rather than what they compute
(``OPERATIONAL``), since Snakemake reruns a job whose settings changed.  Standard
library only: the Snakefile imports it.
"""

from __future__ import annotations

import json

# how a job runs, or which jobs run, not what a job computes: changing them reruns nothing
OPERATIONAL = ("threads", "keep_checkpoints", "keep_optimizer_state", "every")


def settings(cfg: dict, *picks: str) -> str:
    """JSON of the parts of ``cfg`` named in ``picks``: ``"visualize"`` (a section, less its
    operational keys), ``"data.image_size"`` (one key of a section), or
    ``"-reference.epochs"`` (a key left out of a section picked whole)."""
    out: dict = {}
    for pick in picks:
        if pick.startswith("-"):
            section, key = pick[1:].split(".", 1)
            out[section].pop(key)
        elif "." in pick:
            section, key = pick.split(".", 1)
            out.setdefault(section, {})[key] = cfg[section][key]
        else:
            out[pick] = _without(cfg[pick], OPERATIONAL)
    return json.dumps(out, sort_keys=True)


def _without(value, keys: tuple[str, ...]):
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    return value


# the parts each stage reads, by rule (the reference network's rule adds "judge" for the judge)
RUNTIME = ("train.device", "train.precision", "train.deterministic")
INIT = ("model", *RUNTIME)
EPOCH = ("train",)
NETWORK = ("model", "reference", "train.rho", "train.eps", *RUNTIME)
VISUALIZE = ("visualize", "data.image_size", "represent")
EXPLAIN = ("methods",)
JUDGE = ("visualize", "data.image_size", "judge.min_accuracy")
WEIGHTS = ("reference.weights", "reference.sha256", "model.arch", "data.image_size")

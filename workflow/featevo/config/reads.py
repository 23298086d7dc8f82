"""What each stage reads of the config, declared once (:data:`READS`), and what a rule
hands its job: exactly those parts, as one ``--settings`` argument
(:func:`settings`); the stage reads them back with :func:`featevo.config.settings.parse`,
under the same name, and cannot read anything else.

Sections go whole where a stage reads most of them, so that a new setting reaches its
stage without being spelled here; left out are the settings of how jobs run rather
than what they compute (:data:`OPERATIONAL`), since Snakemake reruns a job whose
settings changed.  Standard library only: the Snakefile imports it.
"""

from __future__ import annotations

import json
import re

# how a job runs, or which jobs run, not what a job computes: changing them reruns nothing
# (threads reach a job as --threads, Snakemake's own)
OPERATIONAL = ("train.threads", "train.keep_checkpoints", "train.keep_optimizer_state", "reference.threads",
               "judge.threads", "visualize.threads", "methods.threads", "methods.every")

# what a stage's settings hold in place of experiments.<name>.checkpoints (settings())
IMPORTED = "(a run of your own: epoch_{epoch}, its place travels apart)"

# A pick is a section (``"visualize"``: whole, less OPERATIONAL), a key of one
# (``"data.image_size"``, ``"experiments.{exp}.freeze"`` with the job's wildcard filled
# in), the first item of a list (``"seeds[0]"``: adding a seed reruns nothing that
# reads only the first), or a key left out of a section picked whole
# (``"-reference.epochs"``).
RUNTIME = ("train.device", "train.precision", "train.deterministic")
# what every extraction reads, beside its subset's counts (the data's paths travel apart:
# through the environment, their content as a fingerprint, so that a moved ImageNet reruns nothing)
_EXTRACT = ("data.source", "data.classes", "data.image_size", "data.resize", "data.layout", "data.skip_unreadable",
            "data.seed", "data.exif_orientation")
# each class's unit in the reference network (Fig. 3) and in the judge (featevo.config.plan)
_UNITS = ("data.source", "data.classes", "reference.source", "standin.extra_wnids")

# the parts of the config each stage reads, by ``stage`` or ``stage command``: the rule
# passes them (cli.settings(config, "train epoch", exp=...)), the stage parses them
# under the same name, and a part not listed here is refused in the job
READS: dict[str, tuple[str, ...]] = {
    # three pools, one job: the subset's images, the reference's and the judge's (each with a seed of its own)
    "standin": ("data.source", "data.classes", "standin", "reference.images_per_class", "judge.images_per_class"),
    "extract main": ("data", "-data.path", "-data.imagenet", "-data.imagenet_val", "-data.imagenet_val_labels"),
    "extract reference": (*_EXTRACT, "standin.extra_wnids", "reference.images_per_class",
                          "reference.val_per_class"),
    "extract judge": (*_EXTRACT, "judge.images_per_class", "judge.val_per_class"),
    "weights": ("reference.weights", "reference.sha256", "model.arch", "data.image_size"),
    # the classes of a network are those of the data it reads (the subset's manifest)
    "train init": ("model", *RUNTIME),
    "train import": ("model", *RUNTIME),
    "train epoch": ("train", "experiments.{exp}.freeze", "experiments.{exp}.labels"),
    "train reference": ("model", "reference", "train.rho", "train.eps", *RUNTIME, "seeds[0]"),
    # the judge: another architecture and seed in the reference's recipe, for judge.epochs
    "train judge": ("model", "reference", "-reference.epochs", "judge", "train.rho", "train.eps", *RUNTIME),
    # beside the images, the checkpoint's layers on fixed validation images (represent)
    "visualize": ("visualize", "data.image_size", "data.classes", "represent"),
    "visualize reference": ("visualize", "data.image_size", *_UNITS),
    "visualize units": ("visualize", "data.image_size"),
    "explain": ("methods",),
    "metrics": ("judge.source", *_UNITS),
    "claims": ("experiments", "seeds", "judge.source", "reference.source", "data.classes", "data.val_per_class"),
    # the layers over the epochs: what was read is in each represent.npz
    "represent": (),
    # the judge's floor: its accuracy on the run's images and its reading of the ascent's start
    "judge": ("visualize", "data.image_size", "judge.min_accuracy", "judge.source", *_UNITS),
    # the positive controls: images of known complexity, at the size the ascent draws
    "controls": ("controls.parts", "controls.images_per_count", "controls.seed", "data.image_size"),
    # the stand-in's cue-conflict images, decoded as the extraction decodes the stand-in's
    "cues": ("data.source", "data.classes", "data.image_size", "data.resize", "standin.image_size", "standin.seed",
             "controls.cue_conflict"),
    "sanity randomize": ("sanity.levels", "model.init"),
    # the atlas: its channels, drawn with the run's visualize recipe, and their page; on the
    # stand-in, fresh images of its classes with where each part is (atlas.probe)
    "atlas render": ("atlas", "visualize", "data.image_size", "data.source", "data.classes", "data.resize",
                     "standin"),
    "atlas page": ("atlas", "data.classes"),
    "sanity measure": ("experiments", "judge.source", "sanity.levels", *_UNITS),
    "figures evolution": ("data.classes", "seeds[0]"),
    "figures top": ("data.classes", "seeds[0]"),
    "figures reference": ("data.classes", "reference.source", "judge.source"),
    "figures curves": ("experiments", "seeds"),
    "figures units": ("seeds[0]",),
    "figures gif": ("data.classes", "seeds[0]"),
    "figures method": ("data.classes", "seeds[0]"),
    "tables history": (),
    "tables table": ("experiments.{exp}", "seeds"),
}


def path(pick: str, **fill) -> tuple:
    """A pick's keys from the top of the config, its wildcards filled in (an index as int):
    ``"experiments.{exp}.freeze"`` -> ("experiments", "scratch", "freeze")."""
    keys: list = []
    for part in pick.lstrip("-").split("."):
        m = re.fullmatch(r"(.+?)\[(\d+)\]", part)
        keys += [m.group(1).format(**fill), int(m.group(2))] if m else [part.format(**fill)]
    return tuple(keys)


def picks(stage: str, **fill) -> list[tuple[bool, tuple]]:
    """(left out?, keys) of each part ``stage`` reads, in :data:`READS`' order."""
    if stage not in READS:
        raise KeyError(f"no stage {stage!r} in featevo.config.reads.READS ({', '.join(READS)})")
    try:
        return [(p.startswith("-"), path(p, **fill)) for p in READS[stage]]
    except KeyError as exc:
        raise KeyError(f"{stage}: READS names the wildcard {exc}, not given") from None


def settings(cfg: dict, stage: str, **fill) -> str:
    """JSON of the parts of ``cfg`` that ``stage`` reads (:data:`READS`), less the
    operational settings; ``fill``: the job's wildcards its picks name."""
    out: dict = {}
    for left_out, keys in picks(stage, **fill):
        if left_out:
            _drop(out, keys)
            continue
        value, found = lookup(cfg, keys)
        if found:  # an optional key the config leaves out (experiments.x.paper) is absent here too
            _put(out, keys, value)
    for pick in OPERATIONAL:
        _drop(out, path(pick))
    # where a run of the user's own lies is not what it holds (its files' content reaches the
    # import job as a fingerprint): a stage that reads the experiments learns only that one is
    # imported, so that a moved run folder reruns nothing
    for spec in (out.get("experiments") or {}).values():
        if isinstance(spec, dict) and "checkpoints" in spec:
            spec["checkpoints"] = IMPORTED
    # in the config's order, which is a setting too: the experiments' order is the tables' and curves'
    return json.dumps(out)


def lookup(cfg, keys: tuple):
    """(value, True) at ``keys`` (a pick's, :func:`path`) of a config, or (None, False)."""
    node = cfg
    for k in keys:
        if isinstance(k, int):
            if not isinstance(node, (list, tuple)) or k >= len(node):
                return None, False
        elif not isinstance(node, dict) or k not in node:
            return None, False
        node = node[k]
    return node, True


def _put(out: dict, keys: tuple, value) -> None:
    """Sets out[keys] = value; an index ("seeds[0]") makes a list of that one item."""
    node = out
    if isinstance(keys[-1], int):
        keys, value = keys[:-1], [value]
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = json.loads(json.dumps(value))  # a copy, plain JSON types


def _drop(out: dict, keys: tuple) -> None:
    node = out
    for k in keys[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(keys[-1], None)

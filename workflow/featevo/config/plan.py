"""What the settings make of a run: each class's id and name, the classes, images and
seeds of each subset, pool and network, each class's unit in the reference network
and in the judge, the seeds and kind of each experiment.

Derived in one place from the settings (a config dict, or a stage's
:class:`featevo.config.settings.Settings`, whose parts ``featevo.config.reads.READS`` declares), so
that the rules, which plan the jobs, and the stages, which run them, agree.
Standard library only: the Snakefile imports it.
"""

from __future__ import annotations

import re

# the run's three sets of images: the experiments' subset, the reference's and the judge's
# (a stand-in's pools, or an extraction's subsets; subset_spec, standin_pool)
SUBSETS = ("main", "reference", "judge")
# the stand-in's pools draw with seeds of their own: the reference and the judge never
# see the subset's images
POOL_SEED_OFFSET = dict(zip(SUBSETS, (0, 1_000_003, 2_000_003)))
# the sanity check's networks (featevo.measures.sanity): re-initialized from the top, the output
# layer, the upper half, all of it
SANITY_LEVELS = ("output", "top_half", "all")


def slug(name: str) -> str:
    """A class name as a file name: tree frog -> tree_frog, 雨蛙 -> 雨蛙 (each class's PNG).

    Letters and digits of any script are kept; everything else (``/``, ``.``, spaces)
    becomes ``_``, so that no name can leave its folder.  Empty when the name has no
    letter or digit: the config check refuses such a name."""
    return re.sub(r"[\W_]+", "_", name.lower()).strip("_")


def class_id(c, data) -> str:
    """A class's id through the workflow: its wnid, or with data.source folder its sub-folder."""
    return c.get("folder", c["name"]) if data.get("source") == "folder" else c["wnid"]


def class_ids(data) -> list[str]:
    return [class_id(c, data) for c in data["classes"]]


def names(data) -> list[str]:
    """The classes' names, in data.classes' order (the label order)."""
    return [c["name"] for c in data["classes"]]


def reference_wnids(cfg) -> list[str]:
    """The reference network's classes: the subset's, then standin.extra_wnids."""
    own = class_ids(cfg["data"])
    return own + [w for w in cfg["standin"]["extra_wnids"] if w not in own]


def subset_spec(cfg, subset: str) -> tuple[list[str], int, int]:
    """(class ids, images per class, validation images per class) of an extracted subset:
    the experiments' (main), the reference network's, or the judge's."""
    d = cfg["data"]
    if subset == "main":
        return class_ids(d), d["images_per_class"], d["val_per_class"]
    if subset == "judge":  # (null sizes are filled in at parse time: featevo.preflight.checks.judge_sizes)
        return class_ids(d), cfg["judge"]["images_per_class"], cfg["judge"]["val_per_class"]
    r = cfg["reference"]
    return reference_wnids(cfg), r["images_per_class"], r["val_per_class"]


def standin_pool(cfg, pool: str) -> tuple[list[str], int, int]:
    """(wnids, images per class, seed) of one of the stand-in's pools."""
    seed = cfg["standin"]["seed"] + POOL_SEED_OFFSET[pool]
    if pool == "reference":
        return reference_wnids(cfg), cfg["reference"]["images_per_class"], seed
    count = cfg["standin"]["images_per_class"] if pool == "main" else cfg["judge"]["images_per_class"]
    return class_ids(cfg["data"]), count, seed


def fig3_missing(cfg) -> str | None:
    """Why Fig. 3 (the reference network's own visualization of each class) cannot be
    drawn, or None: it needs a reference, and with ImageNet weights each class's unit."""
    if cfg["reference"]["source"] == "none":
        return "reference.source is none: there is no reference network to visualize"
    if cfg["reference"]["source"] == "torchvision":
        missing = [c["name"] for c in cfg["data"]["classes"] if "imagenet_index" not in c]
        if missing:
            return (f"data.classes {missing} have no imagenet_index: the ImageNet network has no unit of theirs "
                    "to visualize")
    return None


def reference_units(cfg) -> list[int]:
    """Output unit of each class in the reference network (Fig. 3; none without it)."""
    if fig3_missing(cfg):
        return []
    if cfg["reference"]["source"] == "torchvision":
        return [c["imagenet_index"] for c in cfg["data"]["classes"]]
    wnids = reference_wnids(cfg)
    return [wnids.index(w) for w in class_ids(cfg["data"])]


def judge_units(cfg) -> list[int]:
    """Output unit of each class in the judge (its own, or the reference's)."""
    if cfg["judge"]["source"] == "train":
        return list(range(len(cfg["data"]["classes"])))
    return reference_units(cfg)


def imported(spec) -> bool:
    """An experiment whose checkpoints come from your own training run."""
    return "checkpoints" in spec


def seeds_of(cfg, exp: str) -> list[int]:
    """The seeds an experiment runs: every seed, or the one run of an imported experiment."""
    return list(cfg["seeds"][:1]) if imported(cfg["experiments"][exp]) else list(cfg["seeds"])


def experiment_kind(spec) -> str:
    """random (scratch), reference (pretrained), frozen, shuffled (labels shuffled: the
    negative control), or imported (your own run): an experiment's role in the claims table."""
    if imported(spec):
        return "imported"
    if spec.get("labels") == "shuffled":
        return "shuffled"
    if spec["init"] == "random":
        return "random"
    return "frozen" if spec["freeze"] == "features" else "reference"


# the data keys that say where the data lie, not what they are: a moved copy is the same run
_WHERE = ("path", "imagenet", "imagenet_val", "imagenet_val_labels", "skip_unreadable")
RUN_FILE = "run.json"  # results/<run_name>/run.json: what the run computes (run_identity)


def run_identity(cfg) -> dict:
    """What a run computes, as far as its files depend on it: the data (not where they
    lie), the stand-in, the network, and each experiment's start (not its number of
    epochs: raising it continues the run).  Two configs with one ``run_name`` and
    different identities would overwrite each other's results."""
    exps = {}
    for name, e in cfg["experiments"].items():
        exps[name] = ({"imported": True} if "checkpoints" in e
                      else {"init": e.get("init"), "freeze": e.get("freeze") or "none",  # the schema's defaults
                            "labels": e.get("labels") or "given"})
    return {"data": {k: v for k, v in cfg["data"].items() if k not in _WHERE},
            "standin": dict(cfg["standin"]) if cfg["data"]["source"] == "standin" else None,
            "model": dict(cfg["model"]), "experiments": exps}


def identity_differences(old: dict, new: dict) -> list[str]:
    """The config keys whose values differ between a stored run identity and a new one:
    the keys the stored one has (a setting added to featevo after that run was made
    takes its default, which made it), and experiments only where both have them
    (leaving one out or adding one changes no other's files)."""
    out = []
    for section in ("data", "standin", "model"):
        a, b = old.get(section) or {}, new.get(section) or {}
        out += [f"{section}.{k}" for k in sorted(a) if a.get(k) != b.get(k)]
    for name in sorted(set(old.get("experiments", {})) & set(new.get("experiments", {}))):
        a, b = old["experiments"][name], new["experiments"][name]
        if any(a[k] != b.get(k) for k in a):
            out.append(f"experiments.{name}")
    return out

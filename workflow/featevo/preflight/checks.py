"""Checks of the configuration that a JSON schema cannot express.

Run at parse time by the Snakefile, after the schema, so that bad input stops
the workflow before any job starts, with the config key named.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

from featevo.config.plan import class_id, class_ids, slug
from featevo.jobs.files import damaged, umask
from featevo.models.registry import weights_problem


def _check_imagenet(path: Path, data: dict, deep: bool = True) -> list[str]:
    """The path is the kind of data it claims to be; missing and short synsets.

    The extracted folder is listed always (a stat per file); the tars' members
    (headers only, skipping the image bytes) only with ``deep``, in the Snakemake
    that plans the run, not again in each job that re-parses the Snakefile (on a
    cluster, every job).  A file that is not a tar is named either way.
    """
    from featevo.data.imagenet import ExtractionError, census, detect_layout, imagenet_root

    path = imagenet_root(path)
    wnids = class_ids(data)
    errors = []
    try:
        layout = detect_layout(path) if data["layout"] == "auto" else data["layout"]
        counts = census(path, layout, wnids, deep)
    except ExtractionError as exc:
        return [str(exc)]
    for w, n in counts.items():
        if n == 0:
            errors.append(f"data.classes: synset {w} is not in {path} ({layout} layout); check the wnid and "
                          "data.imagenet")
        elif n is not None and n < data["images_per_class"]:
            errors.append(f"data.images_per_class: synset {w} has only {n} images in {path}, "
                          f"{data['images_per_class']} asked for; lower data.images_per_class")
    return errors


def _check_ilsvrc_val(data: dict) -> list[str]:
    """data.validation: ilsvrc_val needs your ImageNet, the validation images and their labels."""
    from featevo.data.imagenet import ExtractionError, val_labels

    if data["source"] != "imagenet":
        return ["data.validation: ilsvrc_val needs data.source: imagenet (the stand-in has no ILSVRC2012 validation "
                "set); use validation: subset"]
    errors = []
    for key in ("imagenet_val", "imagenet_val_labels"):
        if not data.get(key):
            errors.append(f"data.{key}: data.validation is ilsvrc_val but no path is set")
        elif not Path(data[key]).exists():
            errors.append(f"data.{key}: {data[key]} does not exist")
    if errors:
        return errors
    try:
        labels = val_labels(Path(data["imagenet_val_labels"]))
    except ExtractionError as exc:
        return [str(exc)]
    for c in data["classes"]:
        n = sum(1 for w in labels.values() if w == c["wnid"])
        if n < data["val_per_class"]:
            errors.append(f"data.val_per_class: {data['imagenet_val_labels']} lists {n} validation images of "
                          f"{c['wnid']}, {data['val_per_class']} asked for (ILSVRC2012 has 50 per class)")
    return errors


# modules in VGG's `features` (two per convolution, one per pool) and `classifier`;
# kept here so that parsing the Snakefile does not import torch (a test holds it
# to featevo.models.networks)
FEATURE_MODULES = {"vgg11": 21, "vgg13": 25, "vgg16": 31, "vgg19": 37}
CLASSIFIER_MODULES = 7


def imported_file(exp: dict, epoch: int) -> Path:
    """An imported experiment's checkpoint of ``epoch`` (its ``checkpoints`` pattern, ``~``
    expanded as the job expands it)."""
    return Path(exp["checkpoints"].format(epoch=epoch)).expanduser()


def _check_imported(name: str, exp: dict) -> list[str]:
    """experiments.<name>.checkpoints: every epoch's file is there (epoch 0 may be missing)."""
    key = f"experiments.{name}.checkpoints"
    try:
        files = [imported_file(exp, e) for e in range(1, exp["epochs"] + 1)]
    except (KeyError, IndexError, ValueError) as exc:
        return [f"{key}: {exp['checkpoints']!r} is not a path with {{epoch}} ({exc}); e.g. runs/x/epoch_{{epoch}}.pt"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return [f"{key}: {missing[0]} does not exist ({len(missing)} of epochs 1-{exp['epochs']} missing); "
                f"check the pattern, or lower experiments.{name}.epochs"]
    # your own run's files are read whole once here, so a damaged one is named before any job imports it
    return [f"{key}: {problem}" for f in files if (problem := damaged(f))]


def _check_folder(data: dict, cfg: dict) -> list[str]:
    """data.source folder: data.path holds a sub-folder per class with enough images (the
    judge, trained here, takes images of its own besides); a class's folder lies inside
    data.path, and nothing with an image's name in it is a folder or a broken link
    (:func:`featevo.data.imagenet.folder_images`)."""
    from featevo.data.imagenet import ExtractionError, empty_or_not_utf8, folder_images, shown_name

    path = data.get("path")
    if not path:
        return ["data.path: data.source is folder but no path is set; point data.path at the folder holding one "
                "sub-folder of images per class"]
    if not Path(path).is_dir():
        return [f"data.path: {path} is not a folder"]
    errors = []
    judge = cfg["judge"]["images_per_class"] if cfg["judge"]["source"] == "train" else 0
    if judge is None:  # what the subset leaves: at least one to train the judge on and one to hold out
        judge = 2
    for i, c in enumerate(data["classes"]):
        rel = PurePath(class_id(c, data))
        if rel.is_absolute() or not rel.parts or ".." in rel.parts:
            key = f"data.classes[{i}].{'folder' if 'folder' in c else 'name'}"
            errors.append(f"{key}: {str(rel)!r} is not a folder inside data.path ({path}); a class's images are read "
                          "from data.path/<its folder, else its name>: give the class a folder: inside data.path")
            continue
        if "folder" not in c and len(rel.parts) > 1:  # folder: is one name (the schema's pattern); so is its default
            errors.append(f"data.classes[{i}].name: {c['name']!r} is also the class's folder under data.path, which "
                          "is one folder's name, without /; give the class a folder: of its own")
            continue
        d = Path(path) / rel
        try:
            names = folder_images(d) if d.is_dir() else []
            empty, not_utf8 = empty_or_not_utf8(d, names)
        except (ExtractionError, OSError) as exc:
            errors.append(f"data.classes: {c['name']!r}: {exc}")
            continue
        n = len(names)

        def some(found):
            return ", ".join(repr(shown_name(x)) for x in found[:3]) + (", ..." if len(found) > 3 else "")
        if not_utf8:
            errors.append(f"data.classes: {c['name']!r}: {d} holds {len(not_utf8)} file name(s) that are not UTF-8 "
                          f"({some(not_utf8)}); rename them (the manifest lists every file by name)")
        if empty and not data.get("skip_unreadable"):
            errors.append(f"data.classes: {c['name']!r}: {d} holds {len(empty)} empty file(s) (0 bytes: {some(empty)}); "
                          "replace or remove them, or set data.skip_unreadable: true to leave such files out")
        if n == 0:
            errors.append(f"data.classes: {c['name']!r} has no images in {d}; set its folder, or add images")
        elif n < data["images_per_class"] + judge:
            errors.append(f"data.images_per_class: {d} has {n} images, {data['images_per_class']} asked for"
                          + (f" and {judge} more for the judge (judge.images_per_class), which never sees the "
                             "experiments' images" if judge else "") + "; lower them, or add images")
    return errors


def completed(raw: dict) -> dict:
    """A config as the workflow completes it at parse time: the schema's defaults under
    its values, and the judge's sizes that follow the data (:func:`judge_sizes`); what a
    stage run by hand with ``--settings @FILE`` reads (featevo.stages.read_settings)."""
    from featevo.config.settings import shared_device, with_defaults

    cfg = with_defaults(shared_device(raw))
    if isinstance(cfg.get("judge"), dict) and isinstance(cfg.get("data"), dict):
        try:
            cfg["judge"].update(judge_sizes(cfg))
        except (KeyError, TypeError, OSError):
            pass  # a config the schema refuses: parse() names what is wrong
    return cfg


def judge_sizes(cfg: dict) -> dict:
    """judge.images_per_class and judge.val_per_class with null filled in from the data
    (the workflow does so at parse time, so that every job reads numbers): the stand-in
    draws 400 of its own; with data.source folder the judge takes what the subset leaves
    in each class's folder (as many as the class with the fewest left has); it holds
    out reference.val_per_class where that leaves some to train on, else a quarter."""
    j, data = cfg["judge"], cfg["data"]
    n, v = j.get("images_per_class"), j.get("val_per_class")
    if n is None:
        n = 400
        if data["source"] == "folder" and data.get("path") and Path(data["path"]).is_dir():
            from featevo.data.imagenet import folder_images

            left = [len(folder_images(Path(data["path"]) / class_id(c, data))) - data["images_per_class"]
                    for c in data["classes"] if (Path(data["path"]) / class_id(c, data)).is_dir()]
            n = min(left, default=0)
    if v is None:
        ref = cfg["reference"]["val_per_class"]
        v = ref if ref < n else max(1, n // 4)
    return {"images_per_class": n, "val_per_class": v}


def _check_judge(cfg: dict) -> list[str]:
    if cfg["judge"]["source"] != "train":
        return []
    sizes = judge_sizes(cfg)
    n, v = sizes["images_per_class"], sizes["val_per_class"]
    given = {k: cfg["judge"].get(k) is not None for k in sizes}
    if n < 2:
        return [f"judge.images_per_class: {n} images of each class for the judge; it needs at least 2 (one to "
                "train on, one to hold out): lower data.images_per_class, or add images"]
    if v >= n:
        key = "judge.val_per_class" if given["val_per_class"] else "reference.val_per_class (judge.val_per_class null)"
        return [f"{key}: {v} of the judge's {n} images per class held out leaves none to train it on; "
                "set judge.val_per_class below judge.images_per_class"]
    return []


def _check_arch(cfg: dict, deep: bool) -> list[str]:
    """model.arch and judge.arch, and what names model.arch's modules (inversion layers,
    inner units): featevo's VGG is known without torch (parsing the Snakefile imports
    none); the rest, and every module and shape, by the planning Snakemake only
    (``deep``), on the meta device (:func:`featevo.models.networks.shape_problem`)."""
    errors = []
    for key, arch in (("model.arch", cfg["model"]["arch"]), ("judge.arch", cfg.get("judge", {}).get("arch"))):
        if arch is None or arch in FEATURE_MODULES:
            continue
        # (width_divisor and pool_size narrow featevo's VGG only: other networks ignore them)
        if deep:
            from featevo.models.networks import architecture

            try:
                architecture(arch)
            except ValueError as exc:
                errors.append(str(exc).replace("model.arch", key))
    if errors or not deep:
        return errors
    vgg = cfg["model"]["arch"] in FEATURE_MODULES
    units = cfg["visualize"].get("units") or []
    inv = cfg.get("methods", {}).get("inversion", {})
    if vgg and not units:
        return errors  # VGG's layers are checked without torch (_check_methods)
    from featevo.models.networks import ModelSpec, shape_problem, unit_problem

    m, data = cfg["model"], cfg["data"]
    spec = ModelSpec(arch=m["arch"], num_classes=len(data["classes"]), width_divisor=m["width_divisor"],
                     pool_size=m["pool_size"], dropout=m["dropout"])
    calls: dict[str, int] = {}
    problem, shapes = shape_problem(spec, data["image_size"], calls)  # every module, run or not
    if problem:
        errors.append(f"model.arch {m['arch']}: {problem}")
    bad = [layer for layer in inv.get("layers") or [] if layer not in shapes]
    if not vgg and inv.get("enabled") and bad:
        errors.append(f"methods.inversion.layers: {bad} are not modules of {m['arch']}; e.g. "
                      f"{[n for n in shapes if n.count('.') <= 1][:8]}")
    if problem:  # no output shapes to check the units' indices against: their modules only
        units = [u for u in units if u.partition(":")[0] not in shapes]
    return errors + [e for e in (unit_problem(u, shapes, calls) for u in units) if e]


def _check_methods(cfg: dict) -> list[str]:
    m, errors = cfg.get("methods", {}), []
    if not m:
        return errors
    if m["images_per_class"] > cfg["data"]["val_per_class"]:
        errors.append(f"methods.images_per_class ({m['images_per_class']}) must be at most data.val_per_class "
                      f"({cfg['data']['val_per_class']})")
    inv = m["inversion"]
    if not inv["enabled"] or inv["layers"] is None:  # null: the network's own stages (models.inversion_layers)
        return errors
    if cfg["model"]["arch"] not in FEATURE_MODULES:
        if not inv["layers"]:
            errors.append("methods.inversion.layers is empty; name at least one layer of model.arch, or null "
                          "for the network's own stages")
    else:
        sizes = {"features": FEATURE_MODULES[cfg["model"]["arch"]], "classifier": CLASSIFIER_MODULES}
        if not inv["layers"]:
            errors.append("methods.inversion.layers is empty; name at least one layer, e.g. features.15, or null "
                          "for the network's own stages")
        for layer in inv["layers"]:
            part, _, index = layer.partition(".")
            if part not in sizes or not index.isdigit() or int(index) >= sizes[part]:
                errors.append(f"methods.inversion.layers: {layer!r} is not a layer of {cfg['model']['arch']}; use "
                              f"features.0 to features.{sizes['features'] - 1} or classifier.0 to classifier.6")
    return errors


def check_config(cfg: dict, deep: bool = True) -> list[str]:
    """Every problem found, each naming its config key and what to do (``deep``: also
    what takes reading the ImageNet tars' headers; see :func:`_check_imagenet`)."""
    errors = []
    data, exps = cfg["data"], cfg["experiments"]
    if data["validation"] == "ilsvrc_val":
        errors += _check_ilsvrc_val(data)
    elif data["val_per_class"] >= data["images_per_class"]:
        errors.append(f"data.val_per_class ({data['val_per_class']}) must be below data.images_per_class "
                      f"({data['images_per_class']})")
    if data["source"] != "folder":
        nameless = [c["name"] for c in data["classes"] if "wnid" not in c]
        if nameless:
            errors.append(f"data.classes: {nameless} have no wnid; data.source {data['source']} finds each class by "
                          "its ImageNet synset (or use data.source: folder with data.path)")
            return errors
    wnids = class_ids(data)
    if len(set(wnids)) != len(wnids):
        errors.append(f"data.classes: a class is listed twice ({wnids})")
    # each class's PNG is named after it (tree_frog.png): two names that give one file would overwrite
    files: dict[str, str] = {}
    for c in data["classes"]:
        stem = slug(c["name"])
        if not stem:
            errors.append(f"data.classes: the name {c['name']!r} ({class_id(c, data)}) has no letter or digit to name its "
                          "file by; give it one")
            continue
        if stem in files:
            errors.append(f"data.classes: {c['name']!r} ({class_id(c, data)}) and {files[stem]} give the same file name "
                          f"({stem}.png); give each class a name of its own")
        files[stem] = f"{c['name']!r} ({class_id(c, data)})"
    if data["source"] == "folder":
        errors += _check_folder(data, cfg)
    elif data["source"] == "imagenet":
        path = data.get("imagenet")
        if not path:
            errors.append("data.imagenet: data.source is imagenet but no path is set; point data.imagenet at your "
                          "ImageNet training folder, folder of <wnid>.tar files, or ILSVRC2012_img_train.tar")
        elif not Path(path).exists():
            errors.append(f"data.imagenet: {path} does not exist")
        else:
            errors += _check_imagenet(Path(path), data, deep)
    else:
        std = cfg["standin"]
        from featevo.data.standin import DRAW

        unknown = [w for w in wnids + std["extra_wnids"] if w not in DRAW]
        if unknown:
            errors.append(f"data.classes / standin.extra_wnids: the stand-in cannot draw {unknown}; it knows "
                          f"{sorted(DRAW)} (or set data.source: imagenet)")
        if std["images_per_class"] < data["images_per_class"]:
            errors.append(f"standin.images_per_class ({std['images_per_class']}) must be at least "
                          f"data.images_per_class ({data['images_per_class']})")
    viz = cfg["visualize"]
    if viz["median_size"] % 2 == 0:
        errors.append(f"visualize.median_size ({viz['median_size']}) must be odd")
    if viz["parameterization"] != "pixel" and viz["median_every"]:
        errors.append(f"visualize.median_every ({viz['median_every']}): the median filter is for pixel images; "
                      f"set it to 0 with visualize.parameterization: {viz['parameterization']}")
    n_val = data["val_per_class"] * len(data["classes"])
    if viz["top_k"] > n_val:
        errors.append(f"visualize.top_k ({viz['top_k']}) is more than the {n_val} validation images "
                      "(data.val_per_class x classes)")
    ref = cfg["reference"]
    if ref["source"] == "train" and data["source"] != "standin":
        errors.append("reference.source: train needs data.source: standin (the reference is trained on every "
                      "stand-in class); use reference.source: torchvision (ImageNet weights) or none")
    if cfg["judge"]["source"] == "train" and data["source"] == "imagenet":
        errors.append("judge.source: train needs data.source standin or folder (the judge is trained on images "
                      "of its own); use judge.source: reference with ImageNet")
    if ref["source"] == "none":
        needing = [name for name, exp in exps.items() if exp.get("init") == "reference"]
        if needing:
            errors.append(f"experiments: {needing} start from the reference network (init: reference), but "
                          "reference.source is none; give them init: random, or a reference")
        if cfg["judge"]["source"] == "reference":
            errors.append("judge.source: reference, but reference.source is none; use judge.source: train")
    if ref["source"] == "torchvision":
        m = cfg["model"]
        if m["arch"] in FEATURE_MODULES and (m["width_divisor"], m["pool_size"]) != (1, 7):
            errors.append("reference.source: torchvision's weights are of the full network: set "
                          "model.width_divisor 1 and model.pool_size 7")
        problem = weights_problem(ref.get("weights"), ref.get("sha256"), cfg["model"]["arch"], deep)
        if problem:
            errors.append(problem)
    names = {}
    for name, exp in exps.items():
        if "checkpoints" in exp:
            errors += _check_imported(name, exp)
        paper = exp.get("paper")
        if paper and len(paper["epochs"]) != len(paper["val_acc"]):
            errors.append(f"experiments.{name}.paper: epochs and val_acc differ in length")
        for key in ("figure", "table"):
            if key in exp:
                if exp[key] in names:
                    errors.append(f"experiments.{name}.{key}: {exp[key]!r} is also used by {names[exp[key]]}")
                names[exp[key]] = f"experiments.{name}.{key}"
    if not errors:  # (the folder's images are listed once they are known to be readable)
        errors += _check_judge(cfg)
    errors += _check_arch(cfg, deep)
    errors += _check_methods(cfg)
    for name, where in names.items():
        if where.endswith(".figure") and _taken_figure(name, exps):
            errors.append(f"{where}: {name!r} is the name of one of the workflow's own figures "
                          f"(figures/{name}.png); choose another name")
        if where.endswith(".table") and name in TABLES:
            errors.append(f"{where}: {name!r} is the name of one of the workflow's own tables "
                          f"(tables/{name}.csv); choose another name")
    errors += _check_memory(cfg)
    return errors


# the workflow's own tables, which an experiment's accuracy table must not take
TABLES = ("claims",)


def memory_bytes() -> int | None:
    """This machine's memory (what the jobs of a local run share), or None where unknown."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(cfg: dict) -> list[str]:
    """The extracted subset is one uint8 array of every image (data.images_per_class x
    classes x image_size^2 x 3 bytes), which the extraction and every training job hold
    in memory: refused before any work where it exceeds this machine's memory
    (data.image_size 100000 had reached the extraction and died allocating 503 GiB)."""
    data = cfg["data"]
    n = data["images_per_class"] * len(data["classes"])
    need = n * data["image_size"] ** 2 * 3
    have = memory_bytes()
    if have is None or need <= have:
        return []
    gib = 1 << 30
    fits = int((have / (3 * n)) ** 0.5)
    return [f"data.image_size ({data['image_size']}): the subset's {n} images would take {need / gib:.1f} GiB "
            f"as one array, more than this machine's {have / gib:.1f} GiB of memory; lower data.image_size "
            f"(at most about {fits} here; the paper's is 224) or data.images_per_class"]


# the workflow's own figures (the rules' path("figure", name=...)), which an
# experiment's evolution figure must not overwrite
FIGURES = ("fig3", "learning_curves", "sanity")
FIGURE_PATTERNS = ("cka_{exp}", "confusion_{exp}_seed{seed}", "evolution_{exp}", "metrics_{exp}_seed{seed}",
                   "top_{exp}", "units_{exp}", "saliency_{exp}", "occlusion_{exp}", "inversion_{exp}",
                   "atlas_{exp}")


def _taken_figure(name: str, exps: dict) -> bool:
    if name in FIGURES:
        return True
    for pattern in FIGURE_PATTERNS:
        for exp in exps:
            regex = re.escape(pattern).replace(re.escape("{exp}"), re.escape(exp)).replace(re.escape("{seed}"),
                                                                                          "[0-9]+")
            if re.fullmatch(regex, name):
                return True
    return False


def _read_run_file(path: Path) -> dict | None:
    """A run's identity file, opened without following a link or blocking on a FIFO; None
    when absent.  (results/ is the user's own folder; a file there that is no regular
    file, or no JSON, is named rather than trusted.)"""
    import json
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path} cannot be opened ({exc.strerror}); it should be a file the workflow wrote") from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError(f"{path} is not a regular file; remove it")
        try:
            return json.loads(fh.read(1 << 20))
        except ValueError as exc:
            raise ValueError(f"{path} is not the JSON the workflow writes ({exc}); remove it") from exc


def run_problems(cfg: dict, files: list, demo_file: Path | None) -> list[str]:
    """A run that would overwrite another's files, found before any job: ``results/<run_name>/``
    already holds a run that computed other things (its run.json, :func:`featevo.config.plan.run_identity`),
    or a user's config file changes what the demo computes but sets no run_name, so that it
    would write into the demo's folder."""
    import json

    from featevo.config.plan import RUN_FILE, identity_differences, run_identity
    from featevo.config.settings import load_config

    name = cfg["run_name"]
    now = json.loads(json.dumps(run_identity(cfg)))
    errors = []
    given = [Path(f) for f in files if demo_file is None or Path(f).resolve() != demo_file.resolve()]
    if demo_file is not None and given and name == (load_config(demo_file).get("run_name")):
        own = [f for f in given if isinstance(yaml_mapping(f), dict) and "run_name" in yaml_mapping(f)]
        if not own:
            diffs = identity_differences(json.loads(json.dumps(run_identity(load_config(demo_file)))), now)
            if diffs:
                errors.append(f"run_name: {', '.join(map(str, given))} set no run_name, so this run would write into "
                              f"the demo's folder (results/{name}/) though it changes {', '.join(diffs[:5])}; add "
                              f"run_name: <a name of its own> to your config")
    try:
        stored = _read_run_file(Path("results") / name / RUN_FILE)
    except ValueError as exc:
        return errors + [f"run_name: {exc}"]
    if stored is not None:
        diffs = identity_differences(stored, now)
        if diffs:
            errors.append(f"run_name: results/{name}/ holds a run made with other settings ({', '.join(diffs[:5])}); "
                          f"this one would overwrite its files. Give this run a name of its own (run_name: ...), "
                          f"or move results/{name}/ away first")
    return errors


def yaml_mapping(path: Path):
    """A config file's top level (None where it cannot be read: config_file_problems names it)."""
    from featevo.config.settings import _yaml_load

    try:
        return _yaml_load(Path(path).read_text())
    except Exception:
        return None


def write_run_identity(cfg: dict) -> None:
    """results/<run_name>/run.json, once, when a run starts (Snakemake's onstart): what
    :func:`run_problems` compares later configs with."""
    import json
    import os
    import stat
    import tempfile

    from featevo.config.plan import RUN_FILE, run_identity

    path = Path("results") / cfg["run_name"] / RUN_FILE
    if _read_run_file(path) is not None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # a run folder that is a link, or another user's, is not this run's to write into
    st = os.lstat(path.parent)
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():
        raise ValueError(f"{path.parent} is {'a link' if stat.S_ISLNK(st.st_mode) else 'not yours'}; "
                         f"the run's folder must be a folder of your own: move it away, or choose another run_name")
    # written beside it and renamed: a reader sees the whole file or none (torch-free: the Snakefile calls it)
    fd, tmp = tempfile.mkstemp(prefix=f".{RUN_FILE}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(run_identity(cfg), indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise



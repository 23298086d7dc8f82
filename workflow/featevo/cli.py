"""Each stage's settings as the command-line flags the rules pass, from a config
(Snakemake's, after the schema filled in every default).

One function per group of flags, used by the rules, the benchmark and the tests,
so that each flag is spelled once and each setting's default lives only in the
schema.  Standard library only: the Snakefile imports it.
"""

from __future__ import annotations


def runtime(section: dict) -> str:
    """``--device``/``--precision`` (and ``--deterministic``) of a config section."""
    return f"--device {section['device']} --precision {section['precision']}" + (
        " --deterministic" if section.get("deterministic") else "")


def model(cfg: dict) -> str:
    """The network every experiment trains (``model.*``)."""
    m = cfg["model"]
    return (f"--arch {m['arch']} --width-divisor {m['width_divisor']} --pool-size {m['pool_size']}"
            f" --dropout {m['dropout']} --init {m['init']}")


def epoch(cfg: dict) -> str:
    """Adadelta's settings of a training epoch (``train.*``)."""
    t = cfg["train"]
    return f"--batch-size {t['batch_size']} --lr {t['lr']} --rho {t['rho']} --eps {t['eps']}"


def visualize(cfg: dict) -> str:
    """Activation maximization (``visualize.*``, at ``data.image_size``): one recipe for
    every checkpoint and for the reference network (Fig. 3), so that they compare."""
    v = cfg["visualize"]
    return (f"--image-size {cfg['data']['image_size']} --steps {v['steps']} --step-size {v['step_size']}"
            f" --normalize {v['normalize']} --median-every {v['median_every']} --median-size {v['median_size']}"
            f" --objective {v['objective']} --init {v['init']} --init-std {v['init_std']} --seed {v['seed']}"
            f" --restarts {v['restarts']} --top-k {v['top_k']} "
            + runtime(v))


def explain(cfg: dict) -> str:
    """The optional methods' settings (``methods.*``)."""
    m = cfg["methods"]
    occ, inv = m["occlusion"], m["inversion"]
    return (f"--images-per-class {m['images_per_class']} --window {occ['window']} --stride {occ['stride']}"
            f" --layers {' '.join(inv['layers'])} --steps {inv['steps']} --lr {inv['lr']}"
            f" --tv-weight {inv['tv_weight']} --device {m['device']}")


def reference(cfg: dict, judge: bool = False) -> str:
    """The demo's reference network's recipe (``reference.*``); with ``judge``, the
    judge's architecture, seed and epochs (``judge.*``) in the same recipe."""
    r, t = cfg["reference"], cfg["train"]
    # torchvision's init: the reference's recipe was measured with it, whatever model.init the experiments use
    net = {**cfg["model"], "dropout": r["dropout"], "init": "torchvision",
           **({"arch": cfg["judge"]["arch"]} if judge else {})}
    epochs = cfg["judge"]["epochs"] if judge else r["epochs"]
    return (model({"model": net}) + f" --epochs {epochs} --batch-size {r['batch_size']} --optimizer {r['optimizer']}"
            f" --lr {r['lr']} --rho {t['rho']} --eps {t['eps']} --augment {r['augment']} --schedule {r['schedule']}"
            f" --warmup {r['warmup']} --classifier-init {r['classifier_init']}")

"""Training: epoch 0 (initial weights), one epoch at a time, and the reference net.

``init``      writes epoch 0: random init, or the reference network's weights
              with the output layer cut to the subset's classes.
``epoch``     takes the checkpoint of epoch e-1 and its optimizer state to e (and its state).
``reference`` trains the demo's "full ImageNet" network on every stand-in class.

Adadelta with the Keras defaults of the paper's time (lr 1.0, rho 0.95,
eps 1e-8), cross-entropy, shuffling seeded by (seed, epoch), so that an epoch
rerun from the same checkpoint gives the same weights on the CPU.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from featevo.models import checkpoint as ck
from featevo.models.checkpoint import load_weights
from featevo.jobs.device import autocast, configure, pick_device
from featevo.data.inputs import Subset, on_device, to_input
from featevo.models.networks import ModelSpec, architecture, build_model, kaiming_classifier, transfer
from featevo.jobs.progress import eta
from featevo.config.settings import Settings

log = logging.getLogger("featevo.models.train")

# train.* / reference.optimizer: torch.optim's classes over the weights that train
class Adadelta:
    """torch.optim.Adadelta (the paper's optimizer, ``weight_decay`` 0, torch's other
    defaults) through its functional form ``torch.optim.adadelta.adadelta``: the same
    update, the same state, and a ``state_dict`` that ``torch.save`` writes byte for byte
    as torch.optim.Adadelta's (tests/test_optimizer.py holds both).  Written apart
    because every ``torch.optim.Optimizer`` imports ``torch._dynamo`` when it is built
    (its ``add_param_group``): 1.0 s of each demo epoch job's start, measured."""

    def __init__(self, params, lr: float, rho: float, eps: float):
        self.params = list(params)
        # in torch.optim.Adadelta's order: its state_dict's groups are written in it
        self.group = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": 0, "maximize": False, "capturable": False,
                      "foreach": None, "differentiable": False}
        self.state: dict[int, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        from torch.optim.adadelta import adadelta

        with_grad, grads, square_avgs, acc_deltas, steps = [], [], [], [], []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            state = self.state.setdefault(i, {})
            if not state:  # as torch's lazy initialization
                state["step"] = torch.zeros((), dtype=torch.get_default_dtype())
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            with_grad.append(p)
            grads.append(p.grad)
            square_avgs.append(state["square_avg"])
            acc_deltas.append(state["acc_delta"])
            steps.append(state["step"])
        g = self.group
        adadelta(with_grad, grads, square_avgs, acc_deltas, steps, lr=g["lr"], rho=g["rho"], eps=g["eps"],
                 weight_decay=g["weight_decay"], foreach=g["foreach"], maximize=g["maximize"],
                 differentiable=g["differentiable"], capturable=g["capturable"], has_complex=False)

    def state_dict(self) -> dict:
        return {"state": {i: dict(s) for i, s in sorted(self.state.items())},
                "param_groups": [{**self.group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, saved: dict) -> None:
        """As torch.optim.Optimizer's: the saved hyperparameters, each state tensor on its
        parameter's device and in its dtype (``step`` as saved)."""
        (group,) = saved["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"the saved optimizer state holds {len(group['params'])} parameters, the network "
                             f"trains {len(self.params)}")
        self.group = {k: v for k, v in group.items() if k != "params"}
        self.state = {}
        for i, s in saved["state"].items():
            p = self.params[int(i)]
            self.state[int(i)] = {k: v if k == "step" else v.to(dtype=p.dtype, device=p.device) for k, v in s.items()}


OPTIMIZERS = {  # reference.optimizer: torch's own, which its one-cycle schedule (torch's) drives
    "adadelta": lambda params, lr, rho, eps: torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps),
    "adam": lambda params, lr, rho, eps: torch.optim.Adam(params, lr=lr),  # the demo's reference network only
}
SCHEDULES = ("constant", "onecycle")  # reference.schedule
CLASSIFIER_INITS = ("torchvision", "kaiming")  # reference.classifier_init


def make_optimizer(model: torch.nn.Module, lr: float, rho: float, eps: float, name: str):
    """The reference network's and the judge's optimizer (``reference.optimizer``, one
    job each: torch's own, under torch's schedulers), over the weights that train."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]([p for p in model.parameters() if p.requires_grad], lr, rho, eps)


def epoch_optimizer(model: torch.nn.Module, lr: float, rho: float, eps: float) -> Adadelta:
    """The experiments' optimizer, Adadelta as in the paper (:class:`Adadelta`: torch's
    update and files, without torch._dynamo's import in every epoch job), over the
    weights that train (a frozen layer has no state)."""
    return Adadelta([p for p in model.parameters() if p.requires_grad], lr=lr, rho=rho, eps=eps)


@torch.no_grad()
def evaluate(model, data: Subset, device, precision: str, batch_size: int = 256) -> dict[str, float]:
    model.eval()
    images, labels = on_device(data, device)
    # summed on the device: one host round trip per evaluation, not per batch
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for i in range(0, len(data), batch_size):
        x = to_input(images[i:i + batch_size], device)
        y = labels[i:i + batch_size]
        with autocast(device, precision):
            out = model(x)
        loss += F.cross_entropy(out.float(), y, reduction="sum").double()
        correct += (out.argmax(1) == y).sum()
    n = max(1, len(data))
    return {"loss": loss.item() / n, "acc": correct.item() / n}


def _hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(len(x), generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


# train.augment / reference.augment: none (the paper), or each image mirrored left-right with probability 1/2
AUGMENT = {"none": lambda x, gen: x, "hflip": _hflip}


def augment_batch(x: torch.Tensor, augment: str, gen: torch.Generator) -> torch.Tensor:
    """The batch augmented by :data:`AUGMENT`'s ``augment``."""
    if augment not in AUGMENT:
        raise ValueError(f"train.augment: unknown {augment!r}; use one of {', '.join(AUGMENT)}")
    return AUGMENT[augment](x, gen)


def train_one_epoch(model, optimizer, data: Subset, *, epoch: int, seed: int, batch_size: int, device,
                    precision: str, augment: str, log=print, tag: str = "",
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> dict[str, float]:
    """One pass over the training split in a (seed, epoch)-seeded order; a ``scheduler``
    (the reference's one-cycle rate) steps after every batch."""
    model.train()
    order = np.random.default_rng([seed, epoch]).permutation(len(data))
    epoch_seed = seed * 100_003 + epoch
    flips = torch.Generator().manual_seed(epoch_seed)
    torch.manual_seed(epoch_seed)  # dropout masks
    n_batches = math.ceil(len(order) / batch_size)
    every = max(1, n_batches // 5)
    images, labels = on_device(data, device)
    # summed on the device and read at the progress lines only: on a GPU every
    # .item() would stall the queue of kernels
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, start = 0, time.monotonic()
    for b in range(n_batches):
        idx = torch.from_numpy(np.sort(order[b * batch_size:(b + 1) * batch_size])).to(device)  # sorted: faster
        x = augment_batch(to_input(images[idx], device), augment, flips)
        y = labels[idx]
        with autocast(device, precision):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach().double() * len(idx)
        correct += (out.argmax(1) == y).sum()
        seen += len(idx)
        if (b + 1) % every == 0 or b + 1 == n_batches:
            mean = loss_sum.item() / seen
            if not math.isfinite(mean):
                raise FloatingPointError(f"{tag} epoch {epoch}: the loss became {mean} by batch {b + 1}")
            dt = time.monotonic() - start
            log(f"[train{tag}] epoch {epoch} batch {b + 1}/{n_batches} loss {mean:.4f} "
                f"acc {correct.item() / seen:.3f} {seen / dt:.0f} img/s {eta(b + 1, n_batches, dt)}".rstrip())
    return {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen,
            "train_seconds": time.monotonic() - start}


LABELS = ("given", "shuffled")  # experiments.*.labels
SHUFFLE_STREAM = 7_777_777  # the labels' permutation draws from a stream of its own


def shuffled_labels(labels: np.ndarray, seed: int) -> np.ndarray:
    """experiments.*.labels shuffled: the training labels permuted once for the training
    seed (the same permutation at every epoch, so there is a fixed, if meaningless, set to
    learn by heart, as in Zhang et al. 2017); the class counts are kept."""
    return np.random.default_rng([SHUFFLE_STREAM, seed]).permutation(np.asarray(labels))


FREEZE = ("none", "features")  # experiments.*.freeze


def freeze(model: torch.nn.Module, what: str, arch: str) -> None:
    """``features``: the feature block keeps its weights (the paper's future-work case:
    VGG's convolutional layers; for torchvision's other networks everything but the
    output layer, a linear probe); autograd then skips their backward pass entirely."""
    if what not in FREEZE:
        raise ValueError(f"experiments.*.freeze: unknown {what!r}; use one of {', '.join(FREEZE)}")
    if what == "features":
        for p in architecture(arch).features(model):
            p.requires_grad_(False)


def _write_metrics(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")


def _device(a) -> torch.device:
    """The device of ``train.device``, set up for ``train.precision`` and ``deterministic``."""
    t = a.settings.train
    device = pick_device(t.device)
    configure(device, a.threads, t.deterministic, t.precision)
    return device


def _fresh(a, net: Settings) -> tuple[torch.device, ModelSpec, torch.nn.Module]:
    """The device set up (:func:`_device`), and the freshly initialized network that
    ``net`` (a ``model`` section) describes."""
    device = _device(a)
    spec = ModelSpec(arch=net.arch, num_classes=len(a.classes), width_divisor=net.width_divisor,
                     pool_size=net.pool_size, dropout=net.dropout)
    return device, spec, build_model(spec, seed=a.seed, init=net.init)


def cmd_init(a) -> None:
    device, spec, model = _fresh(a, a.settings.model)
    source = "random"
    if a.from_checkpoint:
        ref = ck.load_checkpoint(a.from_checkpoint)
        ref_spec = ModelSpec(**ref["spec"])
        if (ref_spec.arch, ref_spec.width_divisor, ref_spec.pool_size) != (spec.arch, spec.width_divisor,
                                                                           spec.pool_size):
            raise ValueError(f"{a.from_checkpoint}: its network ({ref_spec}) does not match model.* in the "
                             f"config ({spec}); the weights cannot be transferred")
        not_copied = transfer(model, ref["model"])
        log.info(f"transferred {len(model.state_dict()) - len(not_copied)} tensors from "
                 f"{a.from_checkpoint}; kept the fresh init for {not_copied}")
        source = str(a.from_checkpoint)
    model.to(device, memory_format=torch.channels_last)
    val = evaluate(model, Subset(a.data, "val"), device, a.settings.train.precision)
    metrics = {"epoch": 0, "val_loss": val["loss"], "val_acc": val["acc"], "train_loss": float("nan"),
               "train_acc": float("nan"), "init": source}
    ck.save_checkpoint(a.out, model, spec, epoch=0, classes=a.classes, metrics=metrics)
    _write_metrics(a.metrics, metrics)
    log.info(f"epoch 0 ({source}): val acc {val['acc']:.3f} loss {val['loss']:.4f} -> {a.out}")


def cmd_epoch(a) -> None:
    t0 = time.monotonic()
    t = a.settings.train
    device = _device(a)
    model, prev = ck.load_model(a.previous)
    epoch = prev["epoch"] + 1
    spec = ModelSpec(**prev["spec"])
    model.to(device, memory_format=torch.channels_last)
    freeze(model, a.freeze, spec.arch)
    optimizer = epoch_optimizer(model, t.lr, t.rho, t.eps)
    if a.previous_optim is not None:
        # the state epoch e-1 ended with: declared to Snakemake beside its checkpoint, so
        # that a rerun of this epoch continues exactly where the first run did
        try:
            optimizer.load_state_dict(torch.load(a.previous_optim, map_location=device, weights_only=True))
        except FileNotFoundError:
            raise SystemExit(f"error: {a.previous_optim} (the optimizer state of epoch {prev['epoch']}) is "
                             "missing; rerun snakemake, which rebuilds it") from None
        except Exception as exc:
            raise SystemExit(f"error: {a.previous_optim} (the optimizer state of epoch {prev['epoch']}) cannot "
                             f"be read ({exc}); delete it and rerun snakemake, which rebuilds it") from exc
        state = "continued"
    elif prev["epoch"] == 0:
        state = "fresh"
    else:
        state = "reset"
        log.warning(f"no optimizer state given for epoch {prev['epoch']} (--previous-optim), so epoch "
                    f"{epoch} starts from a fresh Adadelta state and will not equal a run that continued it")
    train = Subset(a.data, "train")
    if a.labels == "shuffled":
        train.labels = shuffled_labels(train.labels, a.seed)
    val = Subset(a.data, "val")
    tag = f" {a.tag}"
    start = time.monotonic()
    load_s = start - t0
    stats = train_one_epoch(model, optimizer, train, epoch=epoch, seed=a.seed, batch_size=t.batch_size,
                            device=device, precision=t.precision, log=log.info, tag=tag,
                            augment=t.augment)
    t_eval = time.monotonic()
    v = evaluate(model, val, device, t.precision)
    metrics = {"epoch": epoch, **stats, "val_loss": v["loss"], "val_acc": v["acc"], "optimizer_state": state,
               "frozen": a.freeze, "labels": a.labels,
               "images_per_s": len(train) / stats["train_seconds"], "device": str(device),
               "eval_seconds": time.monotonic() - t_eval, "load_seconds": load_s}
    t_save = time.monotonic()
    # optimizer first, checkpoint last: a checkpoint on disk always has its state beside it
    ck.atomic_save(optimizer.state_dict(), a.optim_out)
    ck.save_checkpoint(a.out, model, spec, epoch=epoch, classes=prev["classes"], metrics=metrics)
    # the job's fixed costs (loading, saving) beside its work, for benchmarks/bench.py
    _write_metrics(a.metrics, {**metrics, "save_seconds": time.monotonic() - t_save})
    log.info(f"[train{tag}] epoch {epoch} done in {time.monotonic() - start:.1f} s: train acc "
             f"{stats['train_acc']:.3f} val acc {v['acc']:.3f} val loss {v['loss']:.4f} -> {a.out}")


def cmd_reference(a) -> None:
    """The demo's stand-in for ImageNet pretraining (and its judge): a recipe of its own
    (``reference.*``), chosen by measuring (config.yaml's reference section says what
    was measured).  The judge (``--net judge``) is another architecture trained for its
    own epochs (``judge.arch``, ``judge.epochs``) in the same recipe."""
    r, t = a.settings.reference, a.settings.train
    judge = a.settings.judge if a.net == "judge" else None
    # torchvision's init: the recipe was measured with it, whatever model.init the experiments use
    net = a.settings.model.replace(dropout=r.dropout, init="torchvision")
    if judge:  # its own architecture, and its own narrowing where it sets one
        net = net.replace(arch=judge.arch, **{k: judge[k] for k in ("width_divisor", "pool_size")
                                              if judge[k] is not None})
    epochs = judge.epochs if judge else r.epochs
    device, spec, model = _fresh(a, net)
    if r.classifier_init == "kaiming":
        kaiming_classifier(model, a.seed)
    model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, r.lr, t.rho, t.eps, r.optimizer)
    train, val = Subset(a.data, "train"), Subset(a.data, "val")
    scheduler = None
    if r.schedule == "onecycle":  # rises for `warmup` of the steps, then anneals to nearly 0
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=r.lr, total_steps=epochs * math.ceil(len(train) / r.batch_size),
            pct_start=r.warmup)
    history = []
    for epoch in range(1, epochs + 1):
        stats = train_one_epoch(model, optimizer, train, epoch=epoch, seed=a.seed, batch_size=r.batch_size,
                                device=device, precision=t.precision, augment=r.augment,
                                log=log.info, tag=f" {a.net}", scheduler=scheduler)
        v = evaluate(model, val, device, t.precision)
        history.append({"epoch": epoch, **stats, "val_loss": v["loss"], "val_acc": v["acc"]})
        log.info(f"{a.net}: epoch {epoch}/{epochs}: val acc {v['acc']:.3f} on {len(a.classes)} classes")
    ck.save_checkpoint(a.out, model, spec, epoch=epochs, classes=a.classes, metrics=history[-1],
                       extra={"history": history})
    _write_metrics(a.metrics, history[-1])


def cmd_import(a) -> None:
    """One checkpoint of your own training run, as one of ours: same network (``model.*``),
    its accuracy evaluated on the validation split."""
    if a.source is None:  # the rule's way: the experiment's pattern, from the environment
        if not a.checkpoints or "{epoch" not in a.checkpoints:
            raise SystemExit(f"error: --checkpoints {a.checkpoints!r} is not a path with {{epoch}}; run the import "
                             "through snakemake (which sets it from experiments.*.checkpoints), or give --source")
        a.source = Path(a.checkpoints.format(epoch=a.epoch)).expanduser()
    from featevo.jobs.files import damaged

    if problem := damaged(a.source):
        raise SystemExit(f"error: {problem}")
    device, spec, model = _fresh(a, a.settings.model)
    try:
        obj = torch.load(a.source, map_location="cpu", weights_only=True)
    except Exception as exc:
        from featevo.jobs.files import torch_refusal

        raise SystemExit(f"error: {torch_refusal(a.source, exc)}") from None
    load_weights(model, ck.fitted_state(model, ck.plain_state(obj, a.source), a.source))
    model.to(device, memory_format=torch.channels_last)
    val = evaluate(model, Subset(a.data, "val"), device, a.settings.train.precision)
    metrics = {"epoch": a.epoch, "val_loss": val["loss"], "val_acc": val["acc"], "train_loss": float("nan"),
               "train_acc": float("nan"), "init": f"imported from {a.source}"}
    ck.save_checkpoint(a.out, model, spec, epoch=a.epoch, classes=a.classes, metrics=metrics)
    _write_metrics(a.metrics, metrics)
    log.info(f"imported epoch {a.epoch} from {a.source}: val acc {val['acc']:.3f} -> {a.out}")

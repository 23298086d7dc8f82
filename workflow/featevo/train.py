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

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from featevo import checkpoint as ck
from featevo.device import autocast, configure, pick_device
from featevo.inputs import Subset, on_device, to_input
from featevo.models import INITS, ModelSpec, build_model, kaiming_classifier, transfer

def make_optimizer(model: torch.nn.Module, lr: float, rho: float, eps: float, name: str):
    """Adadelta as in the paper (``torch.optim``, over the weights that train: a frozen
    layer has no state); Adam only for the demo's reference network.

    ``torch.optim`` imports ``torch._dynamo`` on first use (1.1 s on 2 cores, paid by
    each demo epoch job); beside a full-size epoch (minutes) it is nothing."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if name == "adadelta":
        return torch.optim.Adadelta(trainable, lr=lr, rho=rho, eps=eps)
    if name == "adam":
        return torch.optim.Adam(trainable, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; use adadelta or adam")


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


def augment_batch(x: torch.Tensor, augment: str, gen: torch.Generator) -> torch.Tensor:
    """``none`` (the paper) or ``hflip``: each image mirrored left-right with probability 1/2."""
    if augment == "none":
        return x
    if augment == "hflip":
        flip = (torch.rand(len(x), generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(3), x)
    raise ValueError(f"train.augment: unknown {augment!r}; use none or hflip")


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
                f"acc {correct.item() / seen:.3f} {seen / dt:.0f} img/s")
    return {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen,
            "train_seconds": time.monotonic() - start}


def freeze(model: torch.nn.Module, what: str) -> None:
    """``features``: the convolutional layers keep their weights (the paper's
    future-work case); autograd then skips their backward pass entirely."""
    if what == "features":
        for p in model.features.parameters():
            p.requires_grad_(False)
    elif what != "none":
        raise ValueError(f"experiments.*.freeze: unknown {what!r}; use none or features")


def _write_metrics(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")


def _fresh(a) -> tuple[torch.device, ModelSpec, torch.nn.Module]:
    """The device set up, and the freshly initialized network the command line describes."""
    device = pick_device(a.device)
    configure(device, a.threads, a.deterministic, a.precision)
    spec = ModelSpec(arch=a.arch, num_classes=len(a.classes), width_divisor=a.width_divisor, pool_size=a.pool_size,
                     dropout=a.dropout)
    return device, spec, build_model(spec, seed=a.seed, init=a.init)


def cmd_init(a) -> None:
    device, spec, model = _fresh(a)
    source = "random"
    if a.from_checkpoint:
        ref = ck.load_checkpoint(a.from_checkpoint)
        ref_spec = ModelSpec(**ref["spec"])
        if (ref_spec.arch, ref_spec.width_divisor, ref_spec.pool_size) != (spec.arch, spec.width_divisor,
                                                                           spec.pool_size):
            raise ValueError(f"{a.from_checkpoint}: its network ({ref_spec}) does not match model.* in the "
                             f"config ({spec}); the weights cannot be transferred")
        not_copied = transfer(model, ref["model"])
        print(f"[init] transferred {len(model.state_dict()) - len(not_copied)} tensors from "
              f"{a.from_checkpoint}; kept the fresh init for {not_copied}", flush=True)
        source = str(a.from_checkpoint)
    model.to(device, memory_format=torch.channels_last)
    val = evaluate(model, Subset(a.data, "val"), device, a.precision)
    metrics = {"epoch": 0, "val_loss": val["loss"], "val_acc": val["acc"], "train_loss": float("nan"),
               "train_acc": float("nan"), "init": source}
    ck.save_checkpoint(a.out, model, spec, epoch=0, classes=a.classes, metrics=metrics)
    _write_metrics(a.metrics, metrics)
    print(f"[init] epoch 0 ({source}): val acc {val['acc']:.3f} loss {val['loss']:.4f} -> {a.out}", flush=True)


def cmd_epoch(a) -> None:
    t0 = time.monotonic()
    device = pick_device(a.device)
    configure(device, a.threads, a.deterministic, a.precision)
    model, prev = ck.load_model(a.previous)
    epoch = prev["epoch"] + 1
    spec = ModelSpec(**prev["spec"])
    model.to(device, memory_format=torch.channels_last)
    freeze(model, a.freeze)
    optimizer = make_optimizer(model, a.lr, a.rho, a.eps, "adadelta")
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
        print(f"[train] WARNING: no optimizer state given for epoch {prev['epoch']} (--previous-optim), so epoch "
              f"{epoch} starts from a fresh Adadelta state and will not equal a run that continued it",
              flush=True)
    train = Subset(a.data, "train")
    val = Subset(a.data, "val")
    tag = f" {a.tag}" if a.tag else ""
    start = time.monotonic()
    load_s = start - t0
    stats = train_one_epoch(model, optimizer, train, epoch=epoch, seed=a.seed, batch_size=a.batch_size,
                            device=device, precision=a.precision, log=lambda m: print(m, flush=True), tag=tag,
                            augment=a.augment)
    t_eval = time.monotonic()
    v = evaluate(model, val, device, a.precision)
    metrics = {"epoch": epoch, **stats, "val_loss": v["loss"], "val_acc": v["acc"], "optimizer_state": state,
               "frozen": a.freeze,
               "images_per_s": len(train) / stats["train_seconds"], "device": str(device),
               "eval_seconds": time.monotonic() - t_eval, "load_seconds": load_s}
    t_save = time.monotonic()
    # optimizer first, checkpoint last: a checkpoint on disk always has its state beside it
    ck.atomic_save(optimizer.state_dict(), a.optim_out)
    ck.save_checkpoint(a.out, model, spec, epoch=epoch, classes=prev["classes"], metrics=metrics)
    # the job's fixed costs (loading, saving) beside its work, for benchmarks/bench.py
    _write_metrics(a.metrics, {**metrics, "save_seconds": time.monotonic() - t_save})
    print(f"[train{tag}] epoch {epoch} done in {time.monotonic() - start:.1f} s: train acc "
          f"{stats['train_acc']:.3f} val acc {v['acc']:.3f} val loss {v['loss']:.4f} -> {a.out}", flush=True)


def cmd_reference(a) -> None:
    """The demo's stand-in for ImageNet pretraining (and its judge): a recipe of its own,
    chosen by measuring (config.yaml's reference section says what was measured)."""
    device, spec, model = _fresh(a)
    if a.classifier_init == "kaiming":
        kaiming_classifier(model, a.seed)
    model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, a.lr, a.rho, a.eps, a.optimizer)
    train, val = Subset(a.data, "train"), Subset(a.data, "val")
    scheduler = None
    if a.schedule == "onecycle":  # rises for `warmup` of the steps, then anneals to nearly 0
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=a.lr, total_steps=a.epochs * math.ceil(len(train) / a.batch_size),
            pct_start=a.warmup)
    history = []
    for epoch in range(1, a.epochs + 1):
        stats = train_one_epoch(model, optimizer, train, epoch=epoch, seed=a.seed, batch_size=a.batch_size,
                                device=device, precision=a.precision, augment=a.augment,
                                log=lambda m: print(m, flush=True), tag=" reference", scheduler=scheduler)
        v = evaluate(model, val, device, a.precision)
        history.append({"epoch": epoch, **stats, "val_loss": v["loss"], "val_acc": v["acc"]})
        print(f"[train reference] epoch {epoch}/{a.epochs}: val acc {v['acc']:.3f} on {len(a.classes)} classes",
              flush=True)
    ck.save_checkpoint(a.out, model, spec, epoch=a.epochs, classes=a.classes, metrics=history[-1],
                       extra={"history": history})
    _write_metrics(a.metrics, history[-1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="folder written by featevo.extract")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="JSON file for this checkpoint's metrics")
    # workflow settings are required: the schema holds their defaults, the rules pass them
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--precision", required=True, choices=["auto", "fp32", "bf16"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--deterministic", action="store_true")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", nargs="+", required=True, help="wnids, in label order")
    p.add_argument("--arch", required=True)
    p.add_argument("--width-divisor", type=int, required=True)
    p.add_argument("--pool-size", type=int, required=True)
    p.add_argument("--dropout", type=float, required=True)
    p.add_argument("--init", required=True, choices=INITS, help="the scheme of the initial weights (model.init)")


def _optim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--rho", type=float, required=True)
    p.add_argument("--eps", type=float, required=True)


def parser() -> argparse.ArgumentParser:
    """featevo.train's command line; workflow settings are required (tests/test_settings.py)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    init = sub.add_parser("init", help="write epoch 0")
    _common(init), _model_args(init)
    init.add_argument("--from-checkpoint", type=Path, help="initialize from this network (all but the head)")
    ep = sub.add_parser("epoch", help="train checkpoint e-1 for one epoch")
    _common(ep), _optim_args(ep)
    ep.add_argument("--previous", type=Path, required=True)
    ep.add_argument("--previous-optim", type=Path, default=None,
                    help="optimizer state of the previous epoch (none for epoch 0, whose state is fresh)")
    ep.add_argument("--optim-out", type=Path, required=True, help="where this epoch's optimizer state goes")
    ep.add_argument("--augment", required=True, choices=["none", "hflip"])
    ep.add_argument("--freeze", required=True, choices=["none", "features"])
    ep.add_argument("--tag", default="")
    ref = sub.add_parser("reference", help="train the demo's reference network on every class")
    _common(ref), _model_args(ref), _optim_args(ref)
    ref.add_argument("--epochs", type=int, required=True)
    ref.add_argument("--optimizer", required=True, choices=["adadelta", "adam"])
    ref.add_argument("--augment", required=True, choices=["none", "hflip"])
    ref.add_argument("--schedule", required=True, choices=["constant", "onecycle"])
    ref.add_argument("--warmup", type=float, required=True, help="one-cycle: the share of steps the rate rises")
    ref.add_argument("--classifier-init", required=True, choices=["torchvision", "kaiming"])
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    {"init": cmd_init, "epoch": cmd_epoch, "reference": cmd_reference}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

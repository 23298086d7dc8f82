"""The networks: one registry of architectures (``model.arch``).

* ``vgg11``-``vgg19``: VGG as torchvision builds it, optionally narrowed for the
  CPU demo (``width_divisor``, ``pool_size``).  Module and parameter names are
  torchvision's (``features.N.weight``, ``classifier.6.bias``), so torchvision's
  ImageNet weights load into ``width_divisor=1`` unchanged and a checkpoint of
  ours loads into ``torchvision.models.vgg16`` (a test holds both to it).  The
  layout is built here rather than imported: ``import torchvision`` costs about
  3 s, paid by every one of the workflow's per-epoch and per-checkpoint jobs.
* any other classifier that ``torchvision.models.get_model`` builds (resnet18,
  mobilenet_v3_small, convnext_tiny, vit_b_16, ...), with one output per class
  (:func:`torchvision_architecture`).

Each entry says how to build the network, which parameters ``freeze: features``
keeps fixed, and which module is the output layer (the one cut to the classes).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from featevo.models.hooks import hooked


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network from a checkpoint."""

    arch: str = "vgg16"
    num_classes: int = 4
    width_divisor: int = 1
    pool_size: int = 7  # side of the adaptive pool before the classifier (7 at 224 px)
    dropout: float = 0.5

    def __post_init__(self):
        # width_divisor and pool_size narrow featevo's VGG only: another network ignores them
        # (a ResNet config layered on the VGG demo's need not reset them)
        if self.arch not in _LAYOUTS:
            object.__setattr__(self, "width_divisor", 1)
            object.__setattr__(self, "pool_size", 7)

    def as_dict(self) -> dict:
        return asdict(self)


# torchvision.models.vgg.cfgs: conv widths, "M" = 2 x 2 max pool
_LAYOUTS: dict[str, list] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """torchvision's VGG: ``features``, ``avgpool``, ``classifier``, same indices."""

    def __init__(self, features: nn.Sequential, avgpool: nn.Module, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AdaptivePool(nn.AdaptiveAvgPool2d):
    """torchvision's ``AdaptiveAvgPool2d`` that passes an input already at its size
    through untouched: at the paper's 224 px (7 x 7 before the classifier) and the
    demo's 64 px (2 x 2) it is the identity, and CUDA has no deterministic kernel
    for its backward pass (``train.deterministic: true`` would stop there)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (self.output_size, self.output_size) if isinstance(self.output_size, int) else self.output_size
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        return super().forward(x)


def _features(layout: list) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for v in layout:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    return nn.Sequential(*layers)


INITS = ("torchvision", "glorot")  # model.init: the constructor's own init, or Keras's of 2017


def _init_glorot(model: nn.Module) -> None:
    # Keras's defaults of 2017, the paper's "usual fashion": glorot_uniform kernels
    # (U(+-sqrt(6 / (fan_in + fan_out))), fans times the kernel's area for
    # convolutions, as torch's xavier_uniform_ computes them) and zero biases.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _init_like_torchvision(model: nn.Module) -> None:
    # torchvision's VGG init: Kaiming for convolutions, N(0, 0.01) for linears.
    # PyTorch's default init leaves an unnormalized VGG whose logits barely
    # depend on the input, and it never trains.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def _vgg(name: str, spec: ModelSpec, init: str) -> VGG:
    """torchvision's VGG layout ``name``, every width divided by ``spec.width_divisor``."""
    layout = [v if v == "M" else max(1, v // spec.width_divisor) for v in _LAYOUTS[name]]
    channels = [v for v in layout if v != "M"][-1]
    hidden = max(1, 4096 // spec.width_divisor)
    classifier = nn.Sequential(  # torchvision's classifier, indices included
        nn.Linear(channels * spec.pool_size**2, hidden),
        nn.ReLU(True),
        nn.Dropout(spec.dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(True),
        nn.Dropout(spec.dropout),
        nn.Linear(hidden, spec.num_classes),
    )
    model = VGG(_features(layout), AdaptivePool(spec.pool_size), classifier)
    (_init_glorot if init == "glorot" else _init_like_torchvision)(model)
    return model


@dataclass(frozen=True)
class Architecture:
    """One entry of the registry, behind one signature.

    ``build(spec, init)`` returns a fresh network with ``spec.num_classes`` outputs,
    initialized by ``init`` (:data:`INITS`; draws from torch's global generator);
    ``features(model)`` the parameters that ``experiments.*.freeze: features`` keeps
    fixed; ``vgg_sizes``: whether ``width_divisor`` and ``pool_size`` apply."""

    build: Callable[[ModelSpec, str], nn.Module]
    features: Callable[[nn.Module], Iterable[nn.Parameter]]
    vgg_sizes: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    name: Architecture(build=functools.partial(_vgg, name), features=lambda m: m.features.parameters(),
                       vgg_sizes=True)
    for name in _LAYOUTS
}


def _not_head(model: nn.Module) -> Iterator[nn.Parameter]:
    head = head_name(model) + "."
    return (p for n, p in model.named_parameters() if not n.startswith(head))


def _torchvision_build(name: str, spec: ModelSpec, init: str) -> nn.Module:
    from torchvision.models import get_model

    kwargs: dict = {"num_classes": spec.num_classes}
    if name in ("googlenet", "inception_v3"):  # their auxiliary heads only train on ImageNet's recipe
        kwargs.update(aux_logits=False, init_weights=True)
    model = get_model(name, weights=None, **kwargs)
    if init == "glorot":
        _init_glorot(model)
    return model


@functools.cache
def torchvision_classifiers() -> tuple[str, ...]:
    """Every classification network ``torchvision.models.get_model`` builds."""
    import torchvision.models

    return tuple(torchvision.models.list_models(module=torchvision.models))


def _factory(path: str) -> Callable[..., nn.Module]:
    """The callable ``package.module:factory`` names, imported as a job imports it: from
    the run's working directory (``python -m`` puts it on the path) or ``PYTHONPATH``."""
    import importlib
    import os
    import sys

    module, _, attr = path.partition(":")
    if os.getcwd() not in sys.path:  # the planning Snakemake sees what its jobs will see
        sys.path.append(os.getcwd())
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"model.arch: cannot import {module!r} ({exc}); put the module in the run's working "
                         "directory or on PYTHONPATH") from None
    factory = getattr(found, attr, None)
    if not callable(factory):
        raise ValueError(f"model.arch: {module} ({found.__file__}) has no callable {attr!r}; name a function "
                         "that takes num_classes and returns a torch.nn.Module")
    return factory


def _imported_build(path: str, spec: ModelSpec, init: str) -> nn.Module:
    model = _factory(path)(num_classes=spec.num_classes)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model.arch: {path}(num_classes={spec.num_classes}) returned a {type(model).__name__}, "
                         "not a torch.nn.Module")
    if init == "glorot":
        _init_glorot(model)
    return model


def architecture(name: str) -> Architecture:
    """The registry's entry for ``model.arch``: ours; a network of your own by import path,
    ``package.module:factory`` (called with ``num_classes``; its constructor's init, or
    Glorot's); else torchvision's classifier of that name (``freeze: features`` keeps
    every parameter but the output layer's, for yours too)."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if ":" in name:
        _factory(name)  # named at once when it cannot be imported
        return Architecture(build=functools.partial(_imported_build, name), features=_not_head)
    if name in torchvision_classifiers():
        return Architecture(build=functools.partial(_torchvision_build, name), features=_not_head)
    import difflib

    import torchvision

    known = list(dict.fromkeys([*ARCHITECTURES, *torchvision_classifiers()]))
    if name in torchvision.models.list_models():  # detection, segmentation, video, optical flow
        raise ValueError(f"model.arch: {name!r} is one of torchvision's models but not an image classifier (it "
                         "has no class units to visualize); choose a classifier, e.g. resnet18 or vgg16")
    near = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise ValueError(f"model.arch: unknown {name!r}; {hint}choose one of {', '.join(ARCHITECTURES)} or a "
                     "classifier of torchvision.models.list_models(module=torchvision.models), e.g. resnet18")


def shape_problem(spec: ModelSpec, image_size: int,
                  calls: dict[str, int] | None = None) -> tuple[str | None, dict[str, tuple[int, ...]]]:
    """Whether ``spec``'s network takes ``image_size`` px images (ViT and MaxViT want their
    own size, Inception v3 at least 75 px), and each module's output shape (one image; ()
    where it did not run or gave no tensor): built and run on PyTorch's meta device,
    which checks every shape and computes nothing.  ``calls``, if given, is filled with
    how many times each module ran in the forward pass (ResNet's block ReLUs run twice)."""
    return _meta_shapes(_on_meta(spec), spec.arch, image_size, calls)


def _on_meta(spec: ModelSpec) -> nn.Module:
    """``spec``'s network on PyTorch's meta device (shapes, no storage)."""
    try:
        with torch.device("meta"):
            return architecture(spec.arch).build(spec, "torchvision")
    except NotImplementedError:  # RegNet sizes its layers with tensors, which need data: built for real
        return architecture(spec.arch).build(spec, "torchvision").to("meta")


def _meta_shapes(model: nn.Module, arch: str, image_size: int,
                 calls: dict[str, int] | None = None) -> tuple[str | None, dict[str, tuple[int, ...]]]:
    """:func:`shape_problem` of a network already on the meta device."""
    calls = {} if calls is None else calls
    with torch.device("meta"):
        shapes: dict[str, tuple[int, ...]] = {n: () for n, _ in model.named_modules() if n}

        def record(name, output):
            calls[name] = calls.get(name, 0) + 1
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])

        try:
            with hooked(model, list(shapes), record), torch.no_grad():
                model.eval()(torch.empty(1, 3, image_size, image_size))
        except (RuntimeError, AssertionError, ValueError) as exc:
            return (f"data.image_size: {arch} does not take {image_size} px images ({str(exc)[:160]}); "
                    "choose the size it was made for (ViT and MaxViT: 224; Inception v3: at least 75)"), shapes
    return None, shapes


def stage_ends(spec: ModelSpec, image_size: int) -> list[str]:
    """The network's stages, by their last module: in the order the network builds its
    modules, the last of each spatial resolution (pooling layers left out, so the
    stage's own output stands for it), at the shallowest nesting that holds at least
    four (VGG-16's are its ReLUs before each pool, features.3, .8, .15, .22, .29;
    ResNet's its layer1-4, after its stem's relu); one image on the meta device."""
    model = _on_meta(spec)  # built once: its shapes, and which of its modules pool
    _, shapes = _meta_shapes(model, spec.arch, image_size)
    pools = {n for n, m in model.named_modules()
             if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))}
    best: list[str] = []
    for depth in range(max((n.count(".") for n in shapes), default=0) + 1):
        ends: dict[int, str] = {}
        for name, shape in shapes.items():
            if name.count(".") == depth and len(shape) == 3 and shape[1] > 1 and name not in pools:
                ends.pop(shape[1], None)  # the last module at a resolution ends its stage
                ends[shape[1]] = name
        if len(ends) >= 4:
            return list(ends.values())
        best = max(best, list(ends.values()), key=len)
    return best


def inversion_layers(spec: ModelSpec, image_size: int) -> list[str]:
    """methods.inversion.layers null: the paper's picks, relu2_2, relu3_3 and relu5_3 (the
    ends of VGG-16's stages 2, 3 and 5 of five), carried to any network as the ends at
    the same places among its own stages (:func:`stage_ends`): for ResNet layer1,
    layer2 and layer4."""
    ends = stage_ends(spec, image_size)
    n = len(ends)
    picks = dict.fromkeys(max(0, math.ceil(f * n) - 1) for f in (0.4, 0.6, 1.0))
    return [ends[i] for i in picks] if ends else []


def unit_problem(unit: str, shapes: dict[str, tuple[int, ...]], calls: dict[str, int] | None = None) -> str | None:
    """Why ``visualize.units``' entry ``layer:channel[:y:x]`` is not a unit of the network
    whose module output shapes are ``shapes`` and call counts ``calls``
    (:func:`shape_problem`), or None.  A module that runs more than once per forward pass
    is refused: which call a hook reads would depend on the other units listed
    (ResNet's ``layer4.1.relu`` read 0.4585 alone, 0.4477 beside ``fc:1``)."""
    layer, _, rest = unit.partition(":")
    idx = [int(v) for v in rest.split(":")]
    if layer not in shapes:
        near = [n for n in shapes if n.count(".") <= 1][:8]
        return f"visualize.units: {unit!r}: the network has no module {layer!r}; e.g. {near}"
    shape = shapes[layer]
    if calls and calls.get(layer, 0) > 1:
        parent = layer.rpartition(".")[0]
        return (f"visualize.units: {unit!r}: {layer} runs {calls[layer]} times in one forward pass (one module "
                f"used at several places), so its output has no single value to read; choose a module that runs "
                f"once{f', e.g. {parent} (the block around it)' if parent else ''}")
    if not shape:
        return f"visualize.units: {unit!r}: {layer} gives no tensor of its own to read"
    if idx[0] >= shape[0]:
        return f"visualize.units: {unit!r}: {layer} has {shape[0]} channels (0 to {shape[0] - 1})"
    if len(idx) == 3 and (len(shape) != 3 or idx[1] >= shape[1] or idx[2] >= shape[2]):
        return f"visualize.units: {unit!r}: {layer}'s output is {shape} (channels, height, width) at data.image_size"
    return None


def build_model(spec: ModelSpec, seed: int | None = None, init: str = "torchvision") -> nn.Module:
    """A freshly initialized network (:func:`architecture`); the same seed gives the same weights.

    ``init`` (``model.init``): ``torchvision``'s scheme, or ``glorot`` as Keras
    initialized in 2017.  Loading a checkpoint overwrites whichever was used."""
    if init not in INITS:
        raise ValueError(f"model.init: unknown {init!r}; choose one of {', '.join(INITS)}")
    arch = architecture(spec.arch)
    if seed is not None:
        torch.manual_seed(seed)
    return arch.build(spec, init)


def kaiming_classifier(model: nn.Module, seed: int) -> None:
    """Re-initialize the classifier's linear layers to keep the signal's scale
    (Kaiming, fan in), for the demo's reference network only.

    torchvision's N(0, 0.01) keeps the scale at VGG-16's full width (fan in 25088
    and 4096); at width / 8 (fan in 256 and 512) the three layers shrink the logits
    about 80-fold and training idles for epochs. Measured on the demo's reference
    (10 classes, Adam, one-cycle): 44% validation accuracy at epoch 7 with
    torchvision's init, 76% with this one."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():  # VGG's: those of its classifier
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, (2.0 / m.in_features) ** 0.5, generator=gen)
                m.bias.zero_()


def head_name(model: nn.Module) -> str:
    """Name of the output layer (the one cut to the number of classes): the last linear
    layer, or for a network without one (SqueezeNet) the last convolution."""
    for kind in (nn.Linear, nn.Conv2d):
        names = [n for n, m in model.named_modules() if isinstance(m, kind)]
        if names:
            return names[-1]
    raise ValueError(f"{type(model).__name__} has no linear or convolutional layer to use as its output layer")


def num_outputs(model: nn.Module) -> int:
    head = model.get_submodule(head_name(model))
    return head.out_features if isinstance(head, nn.Linear) else head.out_channels


def transfer(target: nn.Module, source_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor whose name and shape match; returns the names not copied.

    The output layer is never copied (its class count differs), which is the
    paper's "the weights from this layer could not be transferred".
    """
    own = target.state_dict()
    head = head_name(target)
    missing = []
    for name, tensor in own.items():
        src = source_state.get(name)
        if name.startswith(head + ".") or src is None or src.shape != tensor.shape:
            missing.append(name)
        else:
            tensor.copy_(src)
    return missing


@contextmanager
def evaluated(model: nn.Module, device: torch.device | str | None = None,
              memory_format: torch.memory_format = torch.preserve_format) -> Iterator[nn.Module]:
    """``model`` in eval mode with its weights' gradients off (30-40% less work for
    input gradients), on ``device``; on exit it is as the caller left it: each
    parameter's ``requires_grad``, train or eval mode, and its tensors (device
    and memory layout) restored.

    Args:
        model: the caller's network; its weights are not changed.
        device: where to run it (None: where it is).
        memory_format: e.g. ``torch.channels_last`` for the convolutions.

    Yields:
        The same module object, ready for inference and input gradients.
    """
    tensors = [*model.parameters(), *model.buffers()]
    data = [t.data for t in tensors]
    flags = [p.requires_grad for p in model.parameters()]
    training = model.training
    try:
        if device is not None or memory_format is not torch.preserve_format:
            model.to(device, memory_format=memory_format)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        yield model
    finally:
        for t, d in zip(tensors, data):
            t.data = d
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(training)

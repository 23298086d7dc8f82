"""Networks of a user's own, named by import path in tests (model.arch: own_nets:small_cnn)."""

from torch import nn


def small_cnn(num_classes: int) -> nn.Module:
    """Two convolutional blocks and a classifier: the kind of network a user brings."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(64, num_classes))


def not_a_network(num_classes: int):
    return {"classes": num_classes}

"""Multilayer perceptrons as files: build, save, load and briefly train the classifiers that the
``thermolearn landscape`` commands and experiments look at.

A model file is a thermolearn safetensors file (:mod:`thermolearn.io`, never pickle) of kind
``"mlp"``: the ``state_dict`` of the ``nn.Sequential`` built by :func:`mlp` and, as metadata,
its layer sizes and activation, from which :func:`load_mlp` rebuilds the module. Reading a file
runs no code from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._numerics import as_tensor, check_int, check_real
from ..errors import ModelFileError, TrainingDiverged
from ..results import Result
from ..seeding import as_generator, spawn_seeds

#: activation name -> torch module class of :func:`mlp`
MLP_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU,
                   "erf": None, "linear": nn.Identity}


class _Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x)


def _check_sizes(sizes) -> list[int]:
    try:
        sizes = list(sizes)
    except TypeError:
        raise ValueError(f"sizes: expected a sequence of layer widths, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected at least an input and an output width, got {sizes!r}")
    return [check_int(s, "sizes") for s in sizes]


def mlp(sizes, activation: str = "relu", *, bias: bool = True, seed=None, dtype=torch.float32) -> nn.Sequential:
    """``nn.Sequential`` of ``nn.Linear(sizes[i], sizes[i+1])`` with ``activation`` between them
    (none after the last layer), initialised by PyTorch's default rule from ``seed``."""
    sizes = _check_sizes(sizes)
    if activation not in MLP_ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(MLP_ACTIVATIONS)}, got {activation!r}")
    act = MLP_ACTIVATIONS[activation] or _Erf
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(act())
    model = nn.Sequential(*layers)
    gen = as_generator(seed)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):          # PyTorch's default bounds, our generator
                bound = 1.0 / layer.in_features ** 0.5
                layer.weight.uniform_(-bound, bound, generator=gen)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=gen)
    model.sizes, model.activation = sizes, activation       # read back by save_mlp
    return model


def save_mlp(model: nn.Sequential, path) -> Path:
    """Write an MLP built by :func:`mlp` to ``path`` (atomically)."""
    from ..io import save_tensors

    if not isinstance(model, nn.Sequential) or not hasattr(model, "sizes"):
        raise TypeError("model: expected an nn.Sequential built by thermolearn.landscape.mlp")
    meta = {"kind": "mlp", "sizes": list(model.sizes), "activation": model.activation,
            "bias": any(isinstance(m, nn.Linear) and m.bias is not None for m in model)}
    return save_tensors(path, dict(model.state_dict()), meta)


def load_mlp(path, dtype=None) -> nn.Sequential:
    """The MLP stored at ``path`` by :func:`save_mlp` (a :class:`ModelFileError` otherwise)."""
    from ..io import load_tensors

    tensors, meta = load_tensors(path, kind="mlp")
    try:
        model = mlp(meta["sizes"], meta["activation"], bias=bool(meta.get("bias", True)),
                    dtype=next(iter(tensors.values())).dtype, seed=0)
        model.load_state_dict(tensors)
    except (KeyError, ValueError, RuntimeError, StopIteration) as exc:
        raise ModelFileError(f"{path}: not a consistent MLP file: {exc}") from None
    return model if dtype is None else model.to(dtype)


@dataclass
class ClassifierTraining(Result):
    """What :func:`train_classifier` returns. ``history``: one record per epoch (step 0 is the
    initial state) with train loss and accuracy (and test accuracy when a test set is given)."""

    train_loss: float
    train_accuracy: float
    test_accuracy: float | None
    seconds: float
    steps: int
    step_unit: str = "epoch"
    history: list = field(default_factory=list)


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def train_classifier(model: nn.Module, inputs, labels, *, epochs: int = 10, batch_size: int = 100,
                     lr: float = 0.1, momentum: float = 0.9, test=None, seed=None) -> ClassifierTraining:
    """Train ``model`` in place by SGD with momentum on the cross-entropy of integer ``labels``
    (a short, plain recipe for producing models to diagnose). ``test``: optional
    ``(inputs, labels)`` for the accuracy in the history."""
    dtype = next(model.parameters()).dtype
    x = as_tensor(inputs, "inputs", dtype=dtype, ndim=2)
    y = torch.as_tensor(labels).long()
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels: expected {x.shape[0]} integer labels, got shape {tuple(y.shape)}")
    epochs, batch_size = check_int(epochs, "epochs", 0), check_int(batch_size, "batch_size")
    opt = torch.optim.SGD(model.parameters(), lr=check_real(lr, "lr"),
                          momentum=check_real(momentum, "momentum", 0.0, strict=False))
    gen = as_generator(spawn_seeds(seed, 1)[0])
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()

    def record(step):
        with torch.no_grad():
            loss = float(loss_fn(model(x), y))
        rec = {"step": step, "train_loss": loss, "train_accuracy": _accuracy(model, x, y)}
        if test is not None:
            rec["test_accuracy"] = _accuracy(model, as_tensor(test[0], "test", dtype=dtype),
                                             torch.as_tensor(test[1]).long())
        return rec

    history = [record(0)]
    for epoch in range(1, epochs + 1):
        for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss is {float(loss)} at epoch {epoch}: lower lr")
            loss.backward()
            opt.step()
        history.append(record(epoch))
    last = history[-1]
    return ClassifierTraining(train_loss=last["train_loss"], train_accuracy=last["train_accuracy"],
                              test_accuracy=last.get("test_accuracy"), seconds=time.perf_counter() - t0,
                              steps=epochs, history=history)

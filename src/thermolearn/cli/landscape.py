"""``thermolearn landscape ...``: landscape diagnostics (thermolearn.landscape).

    phase-diagram     the order-chaos phase diagram of random networks (mean-field theory)
    train-mlp         train a small MLP classifier and write it as a model file
    hessian           top Hessian eigenvalues (and trace) of a model file on a dataset
    weight-spectra    random-matrix fits of the weight spectra of a model file
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ._common import check_output_file, choose, console, fail, group

landscape_app = group("Landscape diagnostics: signal propagation, Hessian and weight spectra.")

ACTIVATIONS = ("tanh", "relu", "erf", "hard_tanh", "sigmoid", "gelu", "silu", "linear")
MLP_ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "silu", "erf", "linear")


def register(app: typer.Typer) -> None:
    app.add_typer(landscape_app, name="landscape")


def _write_json(path: Optional[Path], payload) -> None:
    if path is not None:
        from ..results import json_ready

        path.write_text(json.dumps(json_ready(payload), indent=1))
        console.print(f"wrote {path}")


def _dataset(data: str, examples: Optional[int], option: str = "--data"):
    """(inputs, integer labels, test inputs, test labels) of a named dataset, pixels in [0, 1]."""
    from ..data import load_dataset

    try:
        ds = load_dataset(data, binarize=None)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        fail(f"{option}: {exc}")
    if ds.train_labels is None:
        fail(f"{option}: {data} has no labels")
    x, y = ds.train, ds.train_labels.long()
    if examples is not None:
        if examples < 1 or examples > x.shape[0]:
            fail(f"--examples: expected 1 to {x.shape[0]} (the training rows of {data}), got {examples}")
        x, y = x[:examples], y[:examples]
    return x, y, ds.test, None if ds.test_labels is None else ds.test_labels.long()


def _load_model(path: Path):
    from ..errors import ModelFileError
    from ..landscape import load_mlp

    try:
        return load_mlp(path)
    except ModelFileError as exc:
        fail(f"MODEL: {exc}")


@landscape_app.command("train-mlp")
def train_mlp(
    out: Path = typer.Option(..., "--out", help="Where to write the model file (safetensors)."),
    data: str = typer.Option("digits", help="mnist, digits, or a .npz file with arrays train/test and labels."),
    hidden: str = typer.Option("64", help="Hidden widths, comma-separated, e.g. 256 or 100,100."),
    activation: str = typer.Option("relu", help=f"One of {', '.join(MLP_ACTIVATIONS)}."),
    epochs: int = typer.Option(10, help="Passes over the training data (>= 0)."),
    batch_size: int = typer.Option(100, help="Rows per update."),
    lr: float = typer.Option(0.05, help="SGD learning rate (momentum 0.9), > 0."),
    examples: Optional[int] = typer.Option(None, help="Train on the first N training rows only."),
    float64: bool = typer.Option(False, "--float64", help="Store and train in float64."),
    seed: int = typer.Option(0, help="Initialisation and shuffling seed."),
):
    """Train an MLP classifier by SGD on cross-entropy and write it for `hessian` and `weight-spectra`."""
    import torch

    from ..landscape import mlp, save_mlp, train_classifier

    check_output_file(out, "--out")
    choose(activation, MLP_ACTIVATIONS, "--activation")
    try:
        widths = [int(h) for h in hidden.split(",") if h.strip()]
    except ValueError:
        fail(f"--hidden: expected comma-separated positive integers, got {hidden!r}")
    if any(w < 1 for w in widths):
        fail(f"--hidden: expected comma-separated positive integers, got {hidden!r}")
    for name, value, low in (("--epochs", epochs, 0), ("--batch-size", batch_size, 1)):
        if value < low:
            fail(f"{name}: expected an integer >= {low}, got {value}")
    if not lr > 0:
        fail(f"--lr: expected a number > 0, got {lr}")
    x, y, xt, yt = _dataset(data, examples)
    dtype = torch.float64 if float64 else torch.float32
    classes = int(y.max()) + 1
    model = mlp([x.shape[1], *widths, classes], activation, seed=seed, dtype=dtype)
    fit = train_classifier(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                           test=None if yt is None else (xt, yt))
    save_mlp(model, out)
    test = "" if fit.test_accuracy is None else f", test accuracy {fit.test_accuracy:.4f}"
    console.print(f"{'-'.join(map(str, model.sizes))} {activation} MLP, {epochs} epochs: train loss "
                  f"{fit.train_loss:.4f}, train accuracy {fit.train_accuracy:.4f}{test}; wrote {out}")

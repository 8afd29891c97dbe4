"""``thermolearn rbm train | evaluate``: restricted Boltzmann machines (thermolearn.ebm)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import console, fail, group

rbm_app = group("Restricted Boltzmann machines: train, evaluate.")


def register(app: typer.Typer) -> None:
    app.add_typer(rbm_app, name="rbm")


def _load(data: str, binarize: str, seed: int):
    from ..data import DEFAULT, load_dataset

    how = {"auto": DEFAULT, "none": None}.get(binarize, binarize)
    try:
        return load_dataset(data, binarize=how, seed=seed)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))


@rbm_app.command("train")
def rbm_train(
    out: Path = typer.Option(..., "--out", help="Where to write the trained model (safetensors)."),
    data: str = typer.Option("digits", help="mnist, digits, or a .npz file with arrays train/test."),
    hidden: int = typer.Option(500, help="Number of hidden units."),
    method: str = typer.Option("pcd", help="cd, pcd, mf, tap2 or tap3."),
    k: Optional[int] = typer.Option(None, help="Gibbs (cd/pcd, default 1) or fixed-point (mf/tap, default 3) sweeps per update."),
    epochs: int = typer.Option(20, help="Passes over the training data."),
    batch_size: int = typer.Option(100, help="Rows per update."),
    lr: float = typer.Option(0.01, help="Learning rate (multiplies the batch-mean gradient)."),
    lr_decay: bool = typer.Option(True, help="Decay the learning rate linearly to 0 over the epochs."),
    momentum: float = typer.Option(0.5, help="Momentum of the parameter updates."),
    weight_decay: float = typer.Option(1e-4, help="L2 penalty on the weights."),
    beta: float = typer.Option(1.0, help="Inverse temperature of the model."),
    binarize: str = typer.Option("auto", help="auto (dataset default), stochastic, threshold, none."),
    seed: int = typer.Option(0, help="Seed of the data binarization, initialisation and sampling."),
    resume: bool = typer.Option(True, help="Continue from OUT.ckpt when it exists."),
    double: bool = typer.Option(False, "--float64", help="Train in float64 (slower)."),
):
    """Train an RBM; a checkpoint OUT.ckpt is written every epoch and resumed from."""
    import torch

    from ..ebm import RBM, base_rate_bias
    from ..ebm.training import TrainingDiverged, train
    from ..schedules import LinearDecay

    ds = _load(data, binarize, seed)
    ckpt = Path(str(out) + ".ckpt")
    dtype = torch.float64 if double else torch.float32
    try:
        rbm = RBM(ds.train.shape[1], hidden, beta=beta, seed=seed, dtype=dtype)
        rbm.visible_bias.copy_(base_rate_bias(ds.train))       # Hinton's guide: logit of pixel means
        schedule = LinearDecay(lr, epochs) if lr_decay else lr
        console.print(f"training {rbm} on {ds.name} ({ds.train.shape[0]} rows) by {method}")
        validation = ds.test.to(dtype) if ds.test is not None else None
        hist = train(rbm, ds.train.to(dtype), method=method, k=k, epochs=epochs, batch_size=batch_size,
                     lr=schedule, momentum=momentum, weight_decay=weight_decay, validation=validation,
                     seed=seed, checkpoint=ckpt, resume=resume, progress=True)
    except TrainingDiverged as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    rbm.save(out, extra={"data": data, "binarize": binarize, "seed": seed, "method": method,
                         "k": hist.settings["k"],
                         "epochs": len(hist), "history": hist.records})
    last = hist.last
    console.print(f"wrote {out} (epochs {len(hist)}; free energy train {last.get('free_energy_train', math.nan):.2f}, "
                  f"held-out {last.get('free_energy_valid', math.nan):.2f}; checkpoint {ckpt})")


@rbm_app.command("evaluate")
def rbm_evaluate(
    model: Path = typer.Argument(..., help="A model written by `thermolearn rbm train`."),
    data: Optional[str] = typer.Option(None, help="Dataset (default: the one the model was trained on)."),
    binarize: Optional[str] = typer.Option(None, help="As in training (default: the model's)."),
    seed: Optional[int] = typer.Option(None, help="Binarization seed (default: the model's)."),
    chains: int = typer.Option(100, help="AIS chains."),
    betas: str = typer.Option("sm08", help="AIS ladder: sm08 or a number of equally spaced betas."),
    raise_examples: int = typer.Option(100, help="Examples per split for reverse AIS (0: skip)."),
    raise_betas: str = typer.Option("sm08", help="Reverse-AIS ladder."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON."),
):
    """Log Z (± 3 sigma) and train/test log-likelihood by exact, AIS, reverse AIS and TAP."""
    from ..ebm import RBM
    from ..ebm.evaluate import evaluate_rbm
    from ..io import ModelFileError, load_tensors

    try:
        rbm = RBM.load(model)
        meta = load_tensors(model)[1]
    except ModelFileError as exc:
        fail(str(exc))
    ds = _load(data or meta.get("data", "digits"), binarize or meta.get("binarize", "auto"),
               meta.get("seed", 0) if seed is None else seed)
    if ds.test is None:
        fail(f"{ds.name}: no 'test' array; evaluation needs held-out data")
    ladder = lambda s: s if s == "sm08" else int(s)  # noqa: E731
    res = evaluate_rbm(rbm, ds.train, ds.test, n_chains=chains, n_betas=ladder(betas),
                       raise_examples=raise_examples, raise_betas=ladder(raise_betas), progress=True)
    table = Table(title=f"{model.name}: {rbm.n_visible}x{rbm.n_hidden} RBM on {ds.name}, nats")
    for col in ("estimator", "log Z", "train log-lik", "test log-lik"):
        table.add_column(col, justify="left" if col == "estimator" else "right")
    notes = []
    if "exact_log_z" in res:
        table.add_row("exact", f"{res['exact_log_z']:.3f}", f"{res['exact_train_ll']:.3f}",
                      f"{res['exact_test_ll']:.3f}")
        notes.append("exact: enumeration of the smaller layer, float64")
    table.add_row("AIS", f"{res['ais_log_z']:.3f} ± {3 * res['ais_stderr']:.3f}",
                  f"{res['ais_train_ll']:.3f}", f"{res['ais_test_ll']:.3f}")
    notes.append(f"AIS: {chains} chains, {betas} ladder, ± 3 sigma; test log-lik within "
                 f"[{res['ais_test_ll_lower']:.3f}, {res['ais_test_ll_upper']:.3f}]; tends to over-estimate")
    if raise_examples > 0:
        n = res["raise_test_examples"]
        table.add_row(f"reverse AIS ({n} ex.)", "", f"{res['raise_train_ll']:.3f}", f"{res['raise_test_ll']:.3f}")
        for est in ("exact", "ais"):
            if f"{est}_test_ll_same_examples" in res:
                table.add_row(f"{est if est == 'exact' else 'AIS'} on the same {n} ex.", "",
                              f"{res[f'{est}_train_ll_same_examples']:.3f}",
                              f"{res[f'{est}_test_ll_same_examples']:.3f}")
        notes.append(f"reverse AIS: the first {n} examples of each split; a conservative "
                     "(stochastic lower-bound) estimate")
    for order in (2, 3):
        if f"tap{order}_log_z" in res:
            table.add_row(f"TAP{order}", f"{res[f'tap{order}_log_z']:.3f}", "", f"{res[f'tap{order}_test_ll']:.3f}")
    notes.append("TAP: log Z ~ -Gamma at the lowest fixed point reached from 100 training rows")
    console.print(table)
    for note in notes:
        console.print(f"  {note}")
    console.print(f"({res['seconds']:.1f} s)")
    if json_out:
        json_out.write_text(json.dumps(res, indent=2))
        console.print(f"wrote {json_out}")



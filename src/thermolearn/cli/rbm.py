"""``thermolearn rbm train | evaluate``: restricted Boltzmann machines (thermolearn.ebm).

The defaults of ``train`` are chosen for the default dataset, scikit-learn's 8x8 digits (1,438
training rows of 64 binary pixels); see :data:`DEFAULTS`. MNIST recipes are written out in the
experiments (``thermolearn.experiments.ebm``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import check_output_file, choose, console, fail, group, option_error

rbm_app = group("Restricted Boltzmann machines: train, evaluate.")

#: Defaults of ``rbm train``, chosen on digits (measured here: the rows of
#: ``benchmarks/pcd_settings.py --digits``). 20 hidden units keep log Z exact (2^20 states,
#: MAX_EXACT_UNITS); batches of 10 rows give 143 updates per epoch; CD-1 at lr 0.05 reaches an
#: exact test log-likelihood of about -18.1 nats in 20 epochs (a few seconds), 6 nats above the
#: independent-pixel model (-24.3), where PCD-1 with 10 persistent chains reached -21.4 in 50
#: epochs. MNIST's usual settings (lr 0.01, batches of 100: 14 updates per epoch here) learn
#: nothing on digits (-24.6). The learning rate is constant unless --lr-decay is given, so that
#: a finished run can be continued with more epochs.
DEFAULTS = {"hidden": 20, "method": "cd", "epochs": 20, "batch_size": 10, "lr": 0.05,
            "momentum": 0.5, "weight_decay": 1e-4}

# library argument / checkpoint setting -> option
OPTIONS = {"lr": "--lr", "momentum": "--momentum", "epochs": "--epochs", "batch_size": "--batch-size",
           "k": "--k", "weight_decay": "--weight-decay", "beta": "--beta", "n_hidden": "--hidden",
           "n_visible": "--data", "data": "--data", "n_data": "--data", "binarize": "--binarize",
           "method": "--method", "seed": "--seed", "dtype": "--float64", "validation": "--data",
           "monitor_size": "--data", "damping": "--method", "probabilities": "--probabilities",
           "magnetizations": "--magnetizations"}
BINARIZE = ("auto", "stochastic", "threshold", "none")


def register(app: typer.Typer) -> None:
    app.add_typer(rbm_app, name="rbm")


def _load(data: str, binarize: str, seed: int):
    from ..data import DEFAULT, load_dataset

    how = {"auto": DEFAULT, "none": None}.get(binarize, binarize)
    try:
        return load_dataset(data, binarize=how, seed=seed)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        fail(f"--data: {exc}")


def _check(check, option: str, *args, **kwargs):
    """Run a library check; its ValueError becomes a one-line error naming ``option``."""
    try:
        return check(*args, **kwargs)
    except ValueError as exc:
        option_error(exc, OPTIONS, option)


@rbm_app.command("train")
def rbm_train(
    out: Path = typer.Option(..., "--out", help="Where to write the trained model (safetensors)."),
    data: str = typer.Option("digits", help="mnist, digits, or a .npz file with arrays train/test."),
    hidden: int = typer.Option(DEFAULTS["hidden"], help="Number of hidden units."),
    method: str = typer.Option(DEFAULTS["method"], help="cd, pcd, mf, tap2 or tap3."),
    k: Optional[int] = typer.Option(None, help="Gibbs (cd/pcd, default 1) or fixed-point (mf/tap, default 3) "
                                               "sweeps per update."),
    epochs: int = typer.Option(DEFAULTS["epochs"], help="Passes over the training data."),
    batch_size: int = typer.Option(DEFAULTS["batch_size"], help="Rows per update."),
    lr: float = typer.Option(DEFAULTS["lr"], help="Learning rate (multiplies the batch-mean gradient), > 0."),
    lr_decay: bool = typer.Option(False, help="Decay the learning rate linearly to 0 over the epochs "
                                             "(a longer run is then another schedule: no resume with more epochs)."),
    momentum: float = typer.Option(DEFAULTS["momentum"], help="Momentum of the parameter updates, in [0, 1)."),
    weight_decay: float = typer.Option(DEFAULTS["weight_decay"], help="L2 penalty on the weights, >= 0."),
    beta: float = typer.Option(1.0, help="Inverse temperature of the model, > 0."),
    binarize: str = typer.Option("auto", help="auto (dataset default), stochastic, threshold, none."),
    probabilities: bool = typer.Option(False, help="Train on the pixel intensities in [0, 1] read as "
                                                  "probabilities; the held-out data stay binarized "
                                                  "(--binarize)."),
    magnetizations: str = typer.Option("persistent", help="mf/tap: start each update's fixed-point sweeps "
                                                         "from the previous ones (persistent) or from the "
                                                         "batch (data)."),
    seed: int = typer.Option(0, help="Seed of the data binarization, initialisation and sampling."),
    resume: bool = typer.Option(True, help="Continue OUT.ckpt (or the interrupted OUT.ckpt.part) when "
                                          "it exists and its settings match; --no-resume starts over."),
    double: bool = typer.Option(False, "--float64", help="Train in float64 (slower)."),
):
    """Train an RBM. Checkpoints go to OUT.ckpt.part every epoch; OUT.ckpt and OUT are replaced
    only when the run finishes, so a diverged or interrupted run loses nothing."""
    from .._numerics import check_int, check_real
    from ..ebm.training import METHODS, check_magnetizations
    from ..seeding import check_seed

    check_output_file(out, "--out")
    ckpt = Path(str(out) + ".ckpt")
    check_output_file(ckpt, "--out")
    choose(method, METHODS, "--method")
    choose(binarize, BINARIZE, "--binarize")
    _check(check_magnetizations, "--magnetizations", magnetizations, method)
    _check(check_int, "--hidden", hidden, "hidden")
    _check(check_int, "--epochs", epochs, "epochs")
    _check(check_int, "--batch-size", batch_size, "batch_size")
    if k is not None:
        _check(check_int, "--k", k, "k")
    _check(check_real, "--lr", lr, "lr")
    _check(check_real, "--weight-decay", weight_decay, "weight_decay", strict=False)
    _check(check_real, "--beta", beta, "beta")
    if not 0.0 <= momentum < 1.0:
        fail(f"--momentum: expected a number in [0, 1), got {momentum!r}")
    _check(check_seed, "--seed", seed)
    ds = _load(data, binarize, seed)
    rows = _load(data, "none", seed).train if probabilities else None
    _train(out, ckpt, ds, rows, data=data, hidden=hidden, method=method, k=k, epochs=epochs,
           batch_size=batch_size, lr=lr, lr_decay=lr_decay, momentum=momentum,
           weight_decay=weight_decay, beta=beta, binarize=binarize, seed=seed, resume=resume,
           double=double, magnetizations=magnetizations)


def _train(out, ckpt, ds, rows, *, data, hidden, method, k, epochs, batch_size, lr, lr_decay, momentum,
           weight_decay, beta, binarize, seed, resume, double, magnetizations="persistent"):
    """``rows``: the training rows as probabilities (--probabilities), else None (ds.train)."""
    import torch

    from ..ebm import RBM, base_rate_bias, train
    from ..errors import CheckpointMismatch, ModelFileError, TrainingDiverged
    from ..schedules import LinearDecay

    dtype = torch.float64 if double else torch.float32
    rbm = RBM(ds.train.shape[1], hidden, beta=beta, seed=seed, dtype=dtype)
    rbm.visible_bias.copy_(base_rate_bias(ds.train))       # Hinton's guide: logit of pixel means
    schedule = LinearDecay(lr, epochs) if lr_decay else lr
    console.print(f"training {rbm} on {ds.name} ({ds.train.shape[0]} rows) by {method}")
    validation = ds.test.to(dtype) if ds.test is not None else None
    try:
        result = train(rbm, (ds.train if rows is None else rows).to(dtype), method=method, k=k, epochs=epochs,
                       probabilities=rows is not None, magnetizations=magnetizations,
                       batch_size=batch_size, lr=schedule, momentum=momentum,
                       weight_decay=weight_decay, validation=validation, seed=seed,
                       checkpoint=ckpt, resume=resume, progress=True)
    except CheckpointMismatch as exc:
        fail(_mismatch_message(exc, ckpt, lr_decay))
    except TrainingDiverged as exc:
        fail(f"{exc} {out} was not written.", code=1)
    except ModelFileError as exc:
        fail(f"--out: {exc}; pass --no-resume to start over")
    except ValueError as exc:
        option_error(exc, OPTIONS, "--data")
    rbm.save(out, extra={"data": data, "binarize": binarize, "probabilities": rows is not None, "seed": seed,
                         "method": method,
                         "k": result.settings["k"], "epochs": result.steps,
                         "settings": result.settings, "history": result.history})
    last = result.last
    console.print(f"wrote {out}: {result.steps} epochs ({result.resumed_steps} read from {ckpt}); "
                  f"free energy train {last.get('free_energy_train', math.nan):.2f}, "
                  f"held-out {last.get('free_energy_valid', math.nan):.2f}")


def _mismatch_message(exc, ckpt, lr_decay) -> str:
    setting = exc.setting or "data"
    option = OPTIONS.get(setting, "--out")
    if setting == "data":
        what = f"the training data (--data, --binarize) differ from those {ckpt} was trained on"
    elif setting == "epochs":
        what = f"{ckpt} holds {exc.saved} epochs, more than --epochs {exc.requested}"
    else:
        what = f"{ckpt} was written with {setting} {exc.saved!r}, now {exc.requested!r}"
        if setting == "lr" and lr_decay:
            what += " (with --lr-decay the rate decays to 0 over --epochs, so more epochs are another schedule)"
    return (f"{option}: {what}; pass --no-resume to start over (the checkpoint is replaced only when "
            "the new run finishes)")


def _ladder(value: str, option: str):
    if value.strip().lower() == "sm08":
        return "sm08"
    try:
        n = int(value)
    except ValueError:
        fail(f"{option}: expected 'sm08' or a number of inverse temperatures >= 2, got {value!r}")
    if n < 2:
        fail(f"{option}: expected 'sm08' or a number of inverse temperatures >= 2, got {n}")
    return n


@rbm_app.command("evaluate")
def rbm_evaluate(
    model: Path = typer.Argument(..., help="A model written by `thermolearn rbm train`."),
    data: Optional[str] = typer.Option(None, help="Dataset (default: the one the model was trained on)."),
    binarize: Optional[str] = typer.Option(None, help="As in training (default: the model's)."),
    seed: Optional[int] = typer.Option(None, help="Binarization seed (default: the model's)."),
    chains: int = typer.Option(100, help="AIS chains, >= 1."),
    betas: str = typer.Option("sm08", help="AIS ladder: sm08 or a number (>= 2) of equally spaced betas."),
    raise_examples: int = typer.Option(100, help="Examples per split for reverse AIS (0: skip)."),
    raise_betas: str = typer.Option("sm08", help="Reverse-AIS ladder (as --betas)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON."),
):
    """Log Z (± 3 sigma) and train/test log-likelihood by exact, AIS, reverse AIS and TAP, with the
    independent-pixel model as the baseline. Reads the model; writes only --json."""
    from .._numerics import check_int
    from ..ebm import RBM
    from ..ebm.evaluate import evaluate_rbm
    from ..errors import ModelFileError
    from ..io import load_tensors
    from ..seeding import check_seed

    if json_out is not None:
        check_output_file(json_out, "--json")
    _check(check_int, "--chains", chains, "chains")
    _check(check_int, "--raise-examples", raise_examples, "raise_examples", minimum=0)
    n_betas, n_raise_betas = _ladder(betas, "--betas"), _ladder(raise_betas, "--raise-betas")
    if binarize is not None:
        choose(binarize, BINARIZE, "--binarize")
    if seed is not None:
        _check(check_seed, "--seed", seed)
    try:
        rbm = RBM.load(model)
        meta = load_tensors(model)[1]
    except ModelFileError as exc:
        fail(f"MODEL: {exc}")
    ds = _load(data or meta.get("data", "digits"), binarize or meta.get("binarize", "auto"),
               meta.get("seed", 0) if seed is None else seed)
    if ds.test is None:
        fail(f"--data: {ds.name} has no 'test' array; evaluation needs held-out data")
    if ds.train.shape[1] != rbm.n_visible:
        fail(f"--data: {ds.name} has {ds.train.shape[1]} values per example, the model "
             f"{model.name} has {rbm.n_visible} visible units")
    res = evaluate_rbm(rbm, ds.train, ds.test, n_chains=chains, n_betas=n_betas,
                       raise_examples=raise_examples, raise_betas=n_raise_betas, progress=True)
    _print_table(res, model, rbm, ds, chains, betas, raise_examples)
    if json_out is not None:
        json_out.write_text(json.dumps({"model": str(model), "data": ds.name, **res}, indent=2))
        console.print(f"wrote {json_out}")


def _print_table(res, model, rbm, ds, chains, betas, raise_examples):
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
    exact_w = (f", against the exact log Z {res['exact_dissipated_work']:.3f}"
               if "exact_dissipated_work" in res else "")
    notes.append(f"AIS as work (Jarzynski): W = -log w per chain, mean {res['ais_work_mean']:.3f}, "
                 f"sd {res['ais_work_std']:.3f}; free-energy change log Z_0 - log Z "
                 f"{res['ais_free_energy_change']:.3f}; "
                 f"dissipated <W> - change {res['ais_dissipated_work']:.3f}{exact_w} (>= 0: second law); "
                 f"ESS {res['ais_ess']:.1f} of {chains} chains ({100 * res['ais_ess_fraction']:.0f}%)")
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
        for split in ("train", "test"):
            if f"{split}_ll_bracket_lower" in res:
                inside = res.get(f"exact_{split}_ll_in_bracket")
                verdict = "" if inside is None else f"; exact {'inside' if inside else 'outside'}"
                notes.append(f"bracket, {split} log-lik on those examples: from reverse AIS "
                             f"{res[f'{split}_ll_bracket_lower']:.3f} to AIS {res[f'{split}_ll_bracket_upper']:.3f} "
                             f"(width {res[f'{split}_ll_bracket_width']:.3f}){verdict}")
    for order in (2, 3):
        if f"tap{order}_log_z" in res:
            table.add_row(f"TAP{order}", f"{res[f'tap{order}_log_z']:.3f}", "", f"{res[f'tap{order}_test_ll']:.3f}")
    notes.append("TAP: log Z ~ -Gamma at the lowest fixed point reached from 100 training rows")
    table.add_row("independent pixels", "", "", f"{res['independent_test_ll']:.3f}")
    notes.append("independent pixels: the training pixel means, the baseline a model must beat")
    console.print(table)
    for note in notes:
        console.print(f"  {note}")
    console.print(f"({res['seconds']:.1f} s)")

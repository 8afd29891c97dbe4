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
from rich.table import Table

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


def _floats(text: str, option: str, positive: bool) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        fail(f"{option}: expected comma-separated numbers, got {text!r}")
    if not values or any(not (v > 0 if positive else v >= 0) or v != v or v in (float("inf"),) for v in values):
        fail(f"{option}: expected comma-separated finite numbers {'> 0' if positive else '>= 0'}, got {text!r}")
    return values


@landscape_app.command("phase-diagram")
def phase_diagram_cmd(
    activation: str = typer.Option("tanh", help=f"One of {', '.join(ACTIVATIONS)}."),
    sigma_b2: str = typer.Option("0,0.05,0.1,0.2,0.5,1", "--sigma-b2",
                                 help="Bias variances, comma-separated, >= 0 (the rows of the diagram)."),
    sigma_w2_max: float = typer.Option(4.0, "--sigma-w2-max", help="Largest weight variance (times fan-in), > 0."),
    points: int = typer.Option(40, help="Weight variances on the grid, from sigma-w2-max/points to sigma-w2-max."),
    dropout: Optional[float] = typer.Option(None, help="Keep probability of dropout, in (0, 1]; none by default."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the heat map of xi_c with the critical line (PNG)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the diagram's arrays as JSON."),
):
    """Mean-field order-chaos phase diagram of random networks: critical line and depth scale xi_c."""
    import torch

    from ..landscape import phase_diagram

    choose(activation, ACTIVATIONS, "--activation")
    b2 = _floats(sigma_b2, "--sigma-b2", positive=False)
    if not sigma_w2_max > 0 or sigma_w2_max == float("inf"):
        fail(f"--sigma-w2-max: expected a finite number > 0, got {sigma_w2_max}")
    if points < 2:
        fail(f"--points: expected an integer >= 2, got {points}")
    if dropout is not None and not 0 < dropout <= 1:
        fail(f"--dropout: expected a keep probability in (0, 1], got {dropout}")
    for path, option in ((out, "--out"), (json_out, "--json")):
        if path is not None:
            check_output_file(path, option)
    w2 = torch.linspace(sigma_w2_max / points, sigma_w2_max, points, dtype=torch.float64)
    diagram = phase_diagram(activation, w2, torch.tensor(b2, dtype=torch.float64), dropout)
    table = Table(title=f"{activation}: critical line chi_1 = 1", show_lines=False)
    table.add_column("sigma_b^2")
    table.add_column("critical sigma_w^2")
    for b, w in zip(diagram.sigma_b2.tolist(), diagram.critical_sigma_w2.tolist()):
        table.add_row(f"{b:g}", "none" if w != w else f"{w:.4f}")
    console.print(table)
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        ax = diagram.plot()
        ax.figure.savefig(out, dpi=120, bbox_inches="tight")
        console.print(f"wrote {out}")
    _write_json(json_out, {name: getattr(diagram, name) for name in
                           ("activation", "dropout", "sigma_w2", "sigma_b2", "critical_sigma_w2", "q_star",
                            "c_star", "chi1", "xi_c", "xi_q")})


@landscape_app.command("hessian")
def hessian_cmd(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="A model file written by `train-mlp`."),
    data: str = typer.Option("digits", help="mnist, digits, or a .npz file with arrays train/test and labels."),
    examples: Optional[int] = typer.Option(1000, help="The first N training rows make the loss (all if omitted)."),
    k: int = typer.Option(5, help="How many eigenvalues at each end asked for."),
    which: str = typer.Option("top", help="top, bottom or both."),
    trace_probes: int = typer.Option(0, help="Also estimate tr(H) by Hutch++ with this many products (0: no)."),
    seed: int = typer.Option(0, help="Start vector and probe seed."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures as JSON."),
):
    """Extreme eigenvalues (Lanczos) and the trace of the Hessian of the mean cross-entropy of a model."""
    from torch import nn

    from ..landscape import hessian_eigenvalues, hessian_trace

    choose(which, ("top", "bottom", "both"), "--which")
    if k < 1:
        fail(f"--k: expected a positive integer, got {k}")
    if trace_probes < 0:
        fail(f"--trace-probes: expected an integer >= 0, got {trace_probes}")
    if json_out is not None:
        check_output_file(json_out, "--json")
    model = _load_model(model_file)
    x, y, _, _ = _dataset(data, examples)
    if x.shape[1] != model.sizes[0]:
        fail(f"--data: {data} has {x.shape[1]} inputs per row, the model expects {model.sizes[0]}")
    x = x.to(next(model.parameters()).dtype)
    n_params = sum(p.numel() for p in model.parameters())
    if k > n_params:
        fail(f"--k: the model has only {n_params} parameters, got {k}")
    loss = nn.CrossEntropyLoss()
    res = hessian_eigenvalues(model, loss, (x, y), k=k, which=which, seed=seed, progress=True)
    payload = {"model": str(model_file), "examples": int(x.shape[0]), "parameters": n_params, "which": which,
               "eigenvalues": res.eigenvalues, "converged": res.converged, "matvecs": res.matvecs,
               "seconds": res.seconds}
    table = Table(title=f"Hessian of the mean cross-entropy: {n_params} parameters, {x.shape[0]} examples")
    table.add_column("#")
    table.add_column("eigenvalue")
    for i, v in enumerate(res.eigenvalues.tolist()):
        table.add_row(str(i + 1), f"{v:.6g}")
    console.print(table)
    console.print(f"Lanczos: {res.matvecs} Hessian-vector products, {res.seconds:.2f} s, "
                  f"converged: {'yes' if res.converged else 'no'}")
    if trace_probes:
        tr = hessian_trace(model, loss, (x, y), probes=trace_probes, method="hutch++", seed=seed)
        console.print(f"trace (Hutch++, {tr.probes} products): {tr.trace:.6g} ± {tr.stderr:.2g}")
        payload.update(trace=tr.trace, trace_stderr=tr.stderr, trace_probes=tr.probes)
    _write_json(json_out, payload)


@landscape_app.command("weight-spectra")
def weight_spectra_cmd(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="A model file written by `train-mlp`."),
    null: Optional[str] = typer.Option(None, help="Also fit a null model: init or shuffle."),
    bootstrap: int = typer.Option(100, help="Bootstrap resamples for the confidence interval of alpha (>= 0)."),
    seed: int = typer.Option(0, help="Bootstrap and null-model seed."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the per-layer figures as JSON."),
):
    """Per layer: Marchenko-Pastur fit, spikes above its edge, power-law alpha of the tail (with a
    bootstrap interval), stable rank."""
    from ..landscape import weight_spectra

    if null is not None:
        choose(null, ("init", "shuffle"), "--null")
    if bootstrap < 0:
        fail(f"--bootstrap: expected an integer >= 0, got {bootstrap}")
    if json_out is not None:
        check_output_file(json_out, "--json")
    model = _load_model(model_file)
    layers = weight_spectra(model, null=null, bootstrap=bootstrap, seed=seed)
    table = Table(title=f"weight spectra of {model_file.name}")
    for col in ("layer", "N x M", "MP sigma^2", "spikes", "alpha [CI]", "KS", "stable rank",
                *((f"{null}: alpha", f"{null}: spikes") if null else ())):
        table.add_column(col)
    rows = []
    for s in layers:
        cells = [s.name, f"{s.N} x {s.M}", f"{s.sigma2:.4g}", str(s.spikes),
                 f"{s.alpha:.2f} [{s.alpha_ci_low:.2f}, {s.alpha_ci_high:.2f}]", f"{s.ks:.3f}", f"{s.stable_rank:.2f}"]
        record = {"layer": s.name, "N": s.N, "M": s.M, "sigma2": s.sigma2, "spikes": s.spikes, "alpha": s.alpha,
                  "alpha_ci": [s.alpha_ci_low, s.alpha_ci_high], "ks": s.ks, "stable_rank": s.stable_rank,
                  "lambda_max": s.lambda_max}
        if null:
            n = s.nulls[null]
            cells += [f"{n.alpha:.2f}", str(n.spikes)]
            record[null] = {"alpha": n.alpha, "spikes": n.spikes, "sigma2": n.sigma2}
        table.add_row(*cells)
        rows.append(record)
    console.print(table)
    _write_json(json_out, {"model": str(model_file), "layers": rows})

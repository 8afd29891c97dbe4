"""The ``thermolearn`` command line. A thin shell: every algorithm lives in the library."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Statistical mechanics of neural-network learning.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
rbm_app = typer.Typer(help="Restricted Boltzmann machines: train, evaluate.", no_args_is_help=True)
app.add_typer(rbm_app, name="rbm")
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=2)


def _load(data: str, binarize: str, seed: int):
    from .data import DEFAULT, load_dataset

    how = {"auto": DEFAULT, "none": None}.get(binarize, binarize)
    try:
        return load_dataset(data, binarize=how, seed=seed)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


@app.command()
def version():
    """Print the package version."""
    from . import __version__

    console.print(__version__)


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

    from .ebm import RBM, base_rate_bias
    from .ebm.training import TrainingDiverged, train
    from .schedules import linear_decay

    ds = _load(data, binarize, seed)
    ckpt = Path(str(out) + ".ckpt")
    dtype = torch.float64 if double else torch.float32
    try:
        rbm = RBM(ds.train.shape[1], hidden, beta=beta, seed=seed, dtype=dtype)
        rbm.visible_bias.copy_(base_rate_bias(ds.train))       # Hinton's guide: logit of pixel means
        schedule = linear_decay(lr, epochs) if lr_decay else lr
        console.print(f"training {rbm} on {ds.name} ({ds.train.shape[0]} rows) by {method}")
        validation = ds.test.to(dtype) if ds.test is not None else None
        hist = train(rbm, ds.train.to(dtype), method=method, k=k, epochs=epochs, batch_size=batch_size,
                     lr=schedule, momentum=momentum, weight_decay=weight_decay, validation=validation,
                     seed=seed, checkpoint=ckpt, resume=resume, progress=True)
    except TrainingDiverged as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc))
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
    from .ebm import RBM
    from .ebm.evaluate import evaluate_rbm
    from .io import ModelFileError, load_tensors

    try:
        rbm = RBM.load(model)
        meta = load_tensors(model)[1]
    except ModelFileError as exc:
        _fail(str(exc))
    ds = _load(data or meta.get("data", "digits"), binarize or meta.get("binarize", "auto"),
               meta.get("seed", 0) if seed is None else seed)
    if ds.test is None:
        _fail(f"{ds.name}: no 'test' array; evaluation needs held-out data")
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


# ---------------------------------------------------------------------------------------------
# thermolearn binary ...
# ---------------------------------------------------------------------------------------------

binary_app = typer.Typer(help="Binary perceptrons and committee machines: solve random problems.",
                         no_args_is_help=True)
app.add_typer(binary_app, name="binary")

DEFAULT_SOLUTION = Path("binary-solution.safetensors")
_ARCHS = ("perceptron", "committee")


def _option_error(exc: Exception, names: dict[str, str], default: str) -> None:
    """_fail with a library error whose 'name: ...' prefix is turned into the option's name."""
    text = str(exc)
    head, sep, rest = text.partition(":")
    if sep and head in names:
        _fail(f"{names[head]}:{rest}")
    _fail(f"{default}: {text}")


def _read_patterns(path: Path):
    """X (M, N) and y (M,) as int8 tensors from an .npz file with arrays X and y, or _fail."""
    import zipfile

    import numpy as np
    import torch

    from .binary.models import check_training_set

    where = f"--patterns {path}"
    if not path.is_file():
        _fail(f"{where}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        _fail(f"{where}: not a readable .npz file ({exc})")
    if not isinstance(data, np.lib.npyio.NpzFile):
        _fail(f"{where}: holds a single array; expected an .npz archive with arrays X (M, N) and y (M,)")
    with data:
        missing = [k for k in ("X", "y") if k not in data.files]
        if missing:
            _fail(f"{where}: missing array(s) {', '.join(missing)}; expected X (M, N) and y (M,) "
                  f"with entries +-1, found {', '.join(data.files) or 'no arrays'}")
        try:
            X, y = check_training_set(data["X"], data["y"])
        except (ValueError, TypeError) as exc:
            _fail(f"{where}: {exc}")
    return X.to(torch.int8), y.to(torch.int8)


@binary_app.command("solve")
def binary_solve(
    arch: str = typer.Option("perceptron", "--arch", help="perceptron or committee."),
    N: Optional[int] = typer.Option(None, "--N", show_default=False,
                                    help="Inputs per pattern, odd, or N/K odd for a tree-like committee "
                                         "(default: 1001 perceptron, 321 committee; from --patterns)."),
    K: Optional[int] = typer.Option(None, "--K", show_default=False,
                                    help="Hidden units, odd: 1 for the perceptron, >= 3 for a "
                                         "committee (default: 5 for a committee)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", show_default=False,
                                          help="Load: M = round(alpha * number of weights) patterns "
                                               "(default: 0.5; from --patterns)."),
    algo: str = typer.Option("rsgd", "--algo", help="fbp (focusing BP), rsgd (replicated SGD), "
                                                   "sgd (plain SGD), rsa (replicated annealing) or "
                                                   "sa (plain annealing)."),
    tree: bool = typer.Option(False, "--tree", help="Tree-like committee: unit k sees only the k-th "
                                                   "block of N/K inputs."),
    teacher: bool = typer.Option(False, "--teacher", help="Labels from a random teacher of the same "
                                                         "architecture; reports the generalization error."),
    patterns: Optional[Path] = typer.Option(None, "--patterns", help="An .npz file with arrays X (M, N) "
                                            "and y (M,), entries +-1, instead of random patterns; N and "
                                            "alpha = M / weights come from it."),
    seed: int = typer.Option(0, help="Seed of the problem, the solver and the test set (separate "
                                     "streams derived from it)."),
    out: Path = typer.Option(DEFAULT_SOLUTION, "--out", help="Where the solution is written "
                             "(safetensors, atomically): weights, X and y (and the teacher), with the "
                             "settings and results as metadata. Relative to the current folder."),
    replicas: Optional[int] = typer.Option(None, help="Replicas (rsgd default 7, rsa default 3; "
                                                      "sgd and sa default 1: independent runs)."),
    max_epochs: Optional[int] = typer.Option(None, help="Epoch cap of rsgd and sgd (default 1000)."),
    max_moves: Optional[int] = typer.Option(None, help="Proposed-move budget of rsa and sa "
                                                       "(default 10,000,000)."),
    steps: Optional[int] = typer.Option(None, help="Protocol steps of fbp (default 100)."),
    n_test: int = typer.Option(10_000, help="Fresh patterns for the generalization error (--teacher)."),
):
    """Solve a random binary classification problem and write the solution.

    Errors are recounted on the returned weights (thermolearn.binary.models.errors).

    Exit code 2 for a bad option (the message names it); 0 when the solver ran, solved or not.
    """
    import torch

    from .binary import generalization_error, random_patterns, teacher_student
    from .binary.models import Architecture
    from .experiments._binary import ALGORITHMS, STEP_UNITS, check_budgets, recount, solve, split_seed
    from .io import save_tensors

    if arch not in _ARCHS:
        _fail(f"--arch: expected perceptron or committee, got {arch!r}")
    if algo not in ALGORITHMS:
        _fail(f"--algo: expected one of {', '.join(ALGORITHMS)}, got {algo!r}")
    if arch == "perceptron":
        if K is not None and K != 1:
            _fail(f"--K: a perceptron has K = 1, got {K}; use --arch committee for K > 1")
        if tree:
            _fail("--tree: applies to --arch committee only")
        K = 1
    else:
        K = 5 if K is None else K
        if K < 3 or K % 2 == 0:
            _fail(f"--K: a committee machine needs an odd number of hidden units >= 3, got {K}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        _fail(f"--alpha: expected a finite number > 0 (patterns per weight), got {alpha:g}")
    budgets = {"replicas": replicas, "steps": steps, "max_epochs": max_epochs, "max_moves": max_moves}
    budget_options = {"replicas": "--replicas", "steps": "--steps", "max_epochs": "--max-epochs",
                      "max_moves": "--max-moves"}
    for name, value in budgets.items():
        if value is not None and value < 1:
            _fail(f"{budget_options[name]}: expected a positive integer, got {value}")
    try:
        check_budgets(algo, **budgets)
    except ValueError as exc:
        _option_error(exc, budget_options, f"--algo {algo}")
    if n_test < 1:
        _fail(f"--n-test: expected a positive integer, got {n_test}")
    if out.is_dir():
        _fail(f"--out: {out} is a folder; give a file name, e.g. {out / DEFAULT_SOLUTION.name}")
    if patterns is not None and teacher:
        _fail("--teacher: cannot be combined with --patterns (the labels come from the file)")
    s_problem, s_solver, s_test = split_seed(seed)
    names = {"N": "--N", "K": "--K", "alpha": "--alpha", "tree": "--tree"}
    teacher_w = None
    if patterns is not None:
        X, y = _read_patterns(patterns)
        M, n_in = X.shape
        if N is not None and N != n_in:
            _fail(f"--N: {N} disagrees with --patterns {patterns} (X has N = {n_in} columns); "
                  f"leave --N out")
        try:
            architecture = Architecture(n_in, K, tree)
        except ValueError as exc:
            text = str(exc)
            if text.startswith("N:"):
                _fail(f"--patterns {patterns}: X has N = {n_in} columns;{text[2:]}")
            _option_error(exc, {"K": "--K"}, f"--patterns {patterns}")
        N = n_in
        file_alpha = M / architecture.n_weights
        if alpha is not None and round(alpha * architecture.n_weights) != M:
            _fail(f"--alpha: {alpha:g} disagrees with --patterns {patterns} (M = {M} patterns for "
                  f"{architecture.n_weights} weights, alpha = {file_alpha:.4g}); leave --alpha out")
        alpha = file_alpha
    else:
        N = (1001 if arch == "perceptron" else 321) if N is None else N
        alpha = 0.5 if alpha is None else alpha
        try:
            architecture = Architecture(N, K, tree)
            if teacher:
                X, y, teacher_w = teacher_student(N, alpha, s_problem, K=K, tree=tree)
            else:
                X, y = random_patterns(N, alpha, s_problem, K=K, tree=tree)
        except ValueError as exc:
            _option_error(exc, names, "--N")
        M = X.shape[0]
    shape = "perceptron" if K == 1 else \
        f"committee machine, K = {K}, {'tree-like' if architecture.tree else 'fully connected'}"
    console.print(f"solving: {shape}, N = {N}, {M} patterns (alpha = {alpha:.4g}), "
                  f"{'teacher labels' if teacher else 'labels from ' + str(patterns) if patterns else 'random labels'}, "
                  f"by {algo}: {ALGORITHMS[algo]}", soft_wrap=True, highlight=False)
    try:
        with console.status(f"{algo} running..."):
            res = solve(algo, X, y, K=K, tree=architecture.tree, seed=s_solver, **budgets)
    except NotImplementedError as exc:
        _fail(f"--algo {algo}: {exc}")
    except ValueError as exc:
        _option_error(exc, {**budget_options, "K": "--K", "tree": "--tree"}, f"--algo {algo}")
    errs, en = recount(res, X, y, K)
    gen = None
    if teacher_w is not None:
        gen = float(generalization_error(res.weights, teacher_w, n_test, s_test, K=K, tree=architecture.tree))
    meta = {"kind": "binary-solution", "arch": arch, "N": int(N), "K": int(K), "tree": architecture.tree,
            "alpha": float(alpha), "M": int(M), "n_weights": architecture.n_weights, "algo": algo,
            "seed": seed, "errors": errs, "energy": en, "converged": errs == 0, "steps": int(res.steps),
            "step_unit": STEP_UNITS[algo], "seconds": float(res.seconds),
            "patterns": str(patterns) if patterns is not None else None, "teacher": teacher,
            "generalization_error": gen, "n_test": n_test if teacher else None,
            "options": {k: v for k, v in budgets.items() if v is not None}}
    tensors = {"weights": res.weights.to(torch.int8), "X": X.to(torch.int8), "y": y.to(torch.int8)}
    if teacher_w is not None:
        tensors["teacher"] = teacher_w.to(torch.int8)
    try:
        written = save_tensors(out, tensors, meta)
    except OSError as exc:
        _fail(f"--out: cannot write {out}: {exc}")
    table = Table(title=f"binary solve: {algo}", show_header=False)
    table.add_column("quantity", style="bold")
    table.add_column("value")
    rows = [("algorithm", f"{algo}: {ALGORITHMS[algo]}"), ("architecture", shape),
            ("N", str(N)), ("K", str(K)), ("alpha", f"{alpha:.4g}"), ("M", str(M)),
            ("weights", str(architecture.n_weights)), ("errors", f"{errs} / {M}"), ("energy", str(en)),
            ("converged", "yes" if errs == 0 else "no"), ("steps", f"{res.steps} {STEP_UNITS[algo]}"),
            ("seconds", f"{res.seconds:.2f}")]
    if gen is not None:
        se = math.sqrt(gen * (1 - gen) / n_test)
        rows.append(("generalization error", f"{gen:.4f} ± {se:.4f} ({n_test} test patterns)"))
    rows.append(("solution", str(written)))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(f"wrote {written}", soft_wrap=True, highlight=False)


from .experiments.cli import register as _register_experiments  # noqa: E402

_register_experiments(app)  # experiments list, reproduce, report, results export


def main():  # pragma: no cover
    app()

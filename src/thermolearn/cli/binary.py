"""``thermolearn binary solve``: binary perceptrons and committee machines (thermolearn.binary)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import check_output_file, choose, console, err_console, fail, group, option_error

binary_app = group("Binary perceptrons and committee machines: solve random problems.")


def register(app: typer.Typer) -> None:
    app.add_typer(binary_app, name="binary")


DEFAULT_SOLUTION = Path("binary-solution.safetensors")
_ARCHS = ("perceptron", "committee")


def _read_patterns(path: Path):
    """X (M, N) and y (M,) as int8 tensors from an .npz file with arrays X and y, or _fail."""
    import zipfile

    import numpy as np
    import torch

    from ..binary.models import check_training_set

    where = f"--patterns {path}"
    if not path.is_file():
        fail(f"{where}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        fail(f"{where}: not a readable .npz file ({exc})")
    if not isinstance(data, np.lib.npyio.NpzFile):
        fail(f"{where}: holds a single array; expected an .npz archive with arrays X (M, N) and y (M,)")
    with data:
        missing = [k for k in ("X", "y") if k not in data.files]
        if missing:
            fail(f"{where}: missing array(s) {', '.join(missing)}; expected X (M, N) and y (M,) "
                  f"with entries +-1, found {', '.join(data.files) or 'no arrays'}")
        try:
            X, y = check_training_set(data["X"], data["y"])
        except (ValueError, TypeError) as exc:
            fail(f"{where}: {exc}")
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
                                     "streams spawned from it), in [0, 2**63 - 1]."),
    out: Path = typer.Option(DEFAULT_SOLUTION, "--out", help="Where the solution is written "
                             "(safetensors, atomically): weights, X and y (and the teacher), with the "
                             "settings and results as metadata. Relative to the current folder."),
    replicas: Optional[int] = typer.Option(None, help="Replicas (rsgd default 7, rsa default 3; "
                                                      "sgd and sa default 1: independent runs)."),
    max_iter: Optional[int] = typer.Option(None, "--max-iter", show_default=False,
                                           help="The solver's cap, in its unit: epochs for rsgd and sgd "
                                                "(default 1000), proposed moves for rsa and sa (default "
                                                "10,000,000), sweeps per protocol step for fbp (default 200)."),
    steps: Optional[int] = typer.Option(None, help="Protocol steps of fbp (default 100)."),
    n_test: int = typer.Option(10_000, help="Fresh patterns for the generalization error (--teacher)."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Show the solver's progress bar on standard error."),
):
    """Solve a random binary classification problem and write the solution.

    Errors are recounted on the returned weights (thermolearn.binary.models.errors).

    A load beyond what binary weights can store (alpha above the perceptron's capacity 0.833,
    or above 1 for any architecture, with random labels) is solved anyway, with a warning.

    Exit code 2 for a bad option (the message names it); 0 when the solver ran, solved or not.
    """
    from ..seeding import check_seed

    try:
        seed = check_seed(seed)
    except ValueError as exc:
        option_error(exc, {"seed": "--seed"}, "--seed")
    choose(arch, _ARCHS, "--arch")

    import torch

    from ..binary import (
        ALGORITHMS,
        Architecture,
        capacity_warning,
        check_budgets,
        generalization_error,
        random_patterns,
        recount,
        solve,
        teacher_student,
    )
    from ..io import save_tensors
    from ..seeding import spawn_seeds

    choose(algo, tuple(ALGORITHMS), "--algo")
    if arch == "perceptron":
        if K is not None and K != 1:
            fail(f"--K: a perceptron has K = 1, got {K}; use --arch committee for K > 1")
        if tree:
            fail("--tree: applies to --arch committee only")
        K = 1
    else:
        K = 5 if K is None else K
        if K < 3 or K % 2 == 0:
            fail(f"--K: a committee machine needs an odd number of hidden units >= 3, got {K}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        fail(f"--alpha: expected a finite number > 0 (patterns per weight), got {alpha:g}")
    budgets = {"replicas": replicas, "steps": steps, "max_iter": max_iter}
    budget_options = {"replicas": "--replicas", "steps": "--steps", "max_iter": "--max-iter"}
    for name, value in budgets.items():
        if value is not None and value < 1:
            fail(f"{budget_options[name]}: expected a positive integer, got {value}")
    try:
        check_budgets(algo, **budgets)
    except ValueError as exc:
        option_error(exc, budget_options, f"--algo {algo}")
    if n_test < 1:
        fail(f"--n-test: expected a positive integer, got {n_test}")
    if out.is_dir():
        fail(f"--out: {out} is a folder; give a file name, e.g. {out / DEFAULT_SOLUTION.name}")
    check_output_file(out, "--out")
    if patterns is not None and teacher:
        fail("--teacher: cannot be combined with --patterns (the labels come from the file)")
    s_problem, s_solver, s_test = spawn_seeds(seed, 3)
    names = {"N": "--N", "K": "--K", "alpha": "--alpha", "tree": "--tree"}
    teacher_w = None
    if patterns is not None:
        X, y = _read_patterns(patterns)
        M, n_in = X.shape
        if N is not None and N != n_in:
            fail(f"--N: {N} disagrees with --patterns {patterns} (X has N = {n_in} columns); "
                  f"leave --N out")
        try:
            architecture = Architecture(n_in, K, tree)
        except ValueError as exc:
            text = str(exc)
            if text.startswith("N:"):
                fail(f"--patterns {patterns}: X has N = {n_in} columns;{text[2:]}")
            option_error(exc, {"K": "--K"}, f"--patterns {patterns}")
        N = n_in
        file_alpha = M / architecture.n_weights
        if alpha is not None and round(alpha * architecture.n_weights) != M:
            fail(f"--alpha: {alpha:g} disagrees with --patterns {patterns} (M = {M} patterns for "
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
            option_error(exc, names, "--N")
        M = X.shape[0]
    shape = "perceptron" if K == 1 else \
        f"committee machine, K = {K}, {'tree-like' if architecture.tree else 'fully connected'}"
    labels = "teacher labels" if teacher else f"labels from {patterns}" if patterns else "random labels"
    console.print(f"solving: {shape}, N = {N}, {M} patterns (alpha = {alpha:.4g}), {labels}, "
                  f"by {algo}: {ALGORITHMS[algo]}", soft_wrap=True, highlight=False)
    warning = capacity_warning(M / architecture.n_weights, K, teacher=teacher)
    if warning:
        err_console.print(f"warning: --alpha: {warning}; solving anyway", markup=False)
    try:
        res = solve(algo, X, y, K=K, tree=architecture.tree, seed=s_solver, progress=progress, **budgets)
    except NotImplementedError as exc:
        fail(f"--algo {algo}: {exc}")
    except ValueError as exc:
        option_error(exc, {**budget_options, "K": "--K", "tree": "--tree"}, f"--algo {algo}")
    errs, en = recount(res, X, y, K)
    gen = None
    if teacher_w is not None:
        gen = float(generalization_error(res.weights, teacher_w, n_test, s_test, K=K, tree=architecture.tree))
    meta = {"kind": "binary-solution", "arch": arch, "N": int(N), "K": int(K), "tree": architecture.tree,
            "alpha": float(alpha), "M": int(M), "n_weights": architecture.n_weights, "algo": algo,
            "seed": seed, "errors": errs, "energy": en, "converged": errs == 0, "steps": int(res.steps),
            "step_unit": res.step_unit, "seconds": float(res.seconds),
            "patterns": str(patterns) if patterns is not None else None, "teacher": teacher,
            "generalization_error": gen, "n_test": n_test if teacher else None,
            "options": {k: v for k, v in budgets.items() if v is not None}}
    tensors = {"weights": res.weights.to(torch.int8), "X": X.to(torch.int8), "y": y.to(torch.int8)}
    if teacher_w is not None:
        tensors["teacher"] = teacher_w.to(torch.int8)
    try:
        written = save_tensors(out, tensors, meta)
    except OSError as exc:
        fail(f"--out: cannot write {out}: {exc}")
    table = Table(title=f"binary solve: {algo}", show_header=False)
    table.add_column("quantity", style="bold")
    table.add_column("value")
    rows = [("algorithm", f"{algo}: {ALGORITHMS[algo]}"), ("architecture", shape),
            ("N", str(N)), ("K", str(K)), ("alpha", f"{alpha:.4g}"), ("M", str(M)),
            ("weights", str(architecture.n_weights)), ("errors", f"{errs} / {M}"), ("energy", str(en)),
            ("converged", "yes" if errs == 0 else "no"), ("steps", f"{res.steps} {res.step_unit}s"),
            ("seconds", f"{res.seconds:.2f}")]
    if gen is not None:
        se = math.sqrt(gen * (1 - gen) / n_test)
        rows.append(("generalization error", f"{gen:.4f} ± {se:.4f} ({n_test} test patterns)"))
    rows.append(("solution", str(written)))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(f"wrote {written}", soft_wrap=True, highlight=False)



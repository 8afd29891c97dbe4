"""``thermolearn experiments list``, ``reproduce``, ``report``, ``results export`` (thermolearn.experiments).

``reproduce`` is the only command that writes a results database, and only a thermolearn one
(or a new file); ``report``, ``results export`` and ``experiments list`` open it read-only and
never create one. Every option, output paths included, is checked before a sweep starts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import check_output_file, check_output_folder, choose, console, fail, group, option_error

DEFAULT_DB = Path("runs") / "thermolearn.sqlite"
DEFAULT_OUT = Path("runs") / "report"

experiments_app = group("Named experiments: list them.")
results_app = group("Stored results: export them.")


@experiments_app.command("list")
def list_experiments(
    fixed: bool = typer.Option(False, "--fixed", help="Also show the parameters that do not vary."),
):
    """Each experiment: name, description, parameter grid, expected run time (full / --quick)."""
    from ..experiments.registry import all_experiments, format_seconds

    table = Table(title="thermolearn experiments (thermolearn reproduce NAME [--quick])", show_lines=True)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("description")
    table.add_column("grid: full / --quick")
    table.add_column("time: full / --quick", justify="right", no_wrap=True)
    for exp in all_experiments():
        full, quick = exp.expected_seconds
        table.add_row(exp.name, exp.description,
                      f"{exp.describe_grid(False, fixed)}\n[dim]--quick:[/] {exp.describe_grid(True, fixed)}",
                      f"{format_seconds(full)} / {format_seconds(quick)}")
    console.print(table)
    console.print("Times are estimates for 2 worker processes of 1 thread each.")


def _read_store(db: Path):
    """The results database opened read-only, or a one-line error naming --db."""
    from ..errors import StoreError
    from ..experiments.store import open_store

    try:
        return open_store(db)
    except FileNotFoundError:
        fail(f"--db: no results database at {db} (thermolearn reproduce writes one)")
    except StoreError as exc:
        fail(f"--db: {exc}")


def _check_experiments(store, names) -> None:
    from ..experiments.store import check_experiments

    try:
        check_experiments(store, names)
    except ValueError as exc:
        option_error(exc, {"experiment": "--experiment"}, "--experiment")


def _check_writable_db(db: Path) -> None:
    """--db for a sweep: a new file in a writable folder (the default folder is created) or a
    thermolearn results database; never a folder, another program's database or a non-SQLite file."""
    from ..errors import StoreError
    from ..experiments.store import inspect

    if db == DEFAULT_DB and not db.parent.exists():
        check_output_folder(db.parent, "--db")
    else:
        check_output_file(db, "--db")
    try:
        inspect(db)
    except StoreError as exc:
        fail(f"--db: {exc}")


def reproduce(
    names: list[str] = typer.Argument(..., help="Experiment names, or 'all'."),
    quick: bool = typer.Option(False, "--quick", help="The small variants (minutes in all)."),
    workers: Optional[int] = typer.Option(None, help="Worker processes of the local Dask cluster (default 2)."),
    scheduler: Optional[str] = typer.Option(None, help="Address of an existing Dask scheduler, e.g. tcp://host:8786."),
    db: Path = typer.Option(DEFAULT_DB, help="SQLite results file; finished points in it are skipped. "
                                             "Only a thermolearn results file or a new file is accepted."),
    out: Path = typer.Option(DEFAULT_OUT, help="Folder of the report written after the sweep."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun points that failed before."),
    threads: int = typer.Option(1, help="Numerical threads per point (torch, OpenMP, numba)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
):
    """Run the named experiments on Dask (resumable), store the results in SQLite, write the report."""
    from ..errors import StoreError
    from ..experiments.registry import resolve
    from ..experiments.report import make_report
    from ..experiments.runner import run_experiments

    try:
        selected = resolve(names)
    except ValueError as exc:
        fail(f"NAMES: {exc}")
    if threads < 1:
        fail(f"--threads: expected a positive integer, got {threads}")
    if workers is not None and workers < 1:
        fail(f"--workers: expected a positive number of worker processes, got {workers}")
    if scheduler is not None and not scheduler.strip():
        fail("--scheduler: expected an address such as tcp://host:8786, got an empty text")
    _check_writable_db(db)
    check_output_folder(out, "--out")
    try:
        summary = run_experiments(selected, quick=quick, workers=workers, scheduler=scheduler, db=db,
                                  retry_failed=retry_failed, progress=progress, threads=threads,
                                  log=lambda m: console.print(m, soft_wrap=True, highlight=False, markup=False))
    except KeyboardInterrupt:
        console.print(f"\ninterrupted: the finished points are stored in {db}; "
                      "run the same command again to resume.", markup=False)
        raise typer.Exit(code=130) from None
    except ConnectionError as exc:
        fail(f"--scheduler: {exc}")
    except StoreError as exc:
        fail(f"--db: {exc}")
    console.print(f"{summary.done} points done and {summary.failed} failed now, "
                  f"{summary.skipped_done} done before ({summary.seconds:.0f} s)")
    files = make_report(db, out)                      # every experiment in the database
    console.print(f"report: {files.html} (also {files.markdown.name} and {len(files.plots)} PNG plots)",
                  markup=False)
    if summary.failed or summary.skipped_failed:
        console.print(f"[yellow]{summary.failed + summary.skipped_failed} points have failed[/]; "
                      "their errors are in the report; --retry-failed reruns them")
        raise typer.Exit(code=1)


def report(
    db: Path = typer.Option(DEFAULT_DB, help="SQLite results file (only read)."),
    out: Path = typer.Option(DEFAULT_OUT, help="Folder for index.html, report.md and the PNG plots."),
    name: Optional[list[str]] = typer.Option(None, "--experiment", help="Only these experiments."),
):
    """Write plots (PNG), a self-contained HTML page and Markdown from a results database."""
    from ..experiments.report import make_report

    with _read_store(db) as store:
        if name:
            _check_experiments(store, name)
    check_output_folder(out, "--out")
    files = make_report(db, out, names=name or None)
    console.print(f"wrote {files.html}, {files.markdown} and {len(files.plots)} PNG plots", markup=False)


@results_app.command("export")
def export(
    db: Path = typer.Option(DEFAULT_DB, help="SQLite results file (only read)."),
    fmt: str = typer.Option("csv", "--format", help="Output format: csv."),
    output: Optional[Path] = typer.Option(None, help="Output file (default: standard output)."),
    experiment: Optional[str] = typer.Option(None, help="Only this experiment."),
):
    """Export the records: one CSV row per record, with experiment, point, seed and parameters."""
    choose(fmt, ["csv"], "--format")
    with _read_store(db) as store:
        if experiment is not None:
            _check_experiments(store, [experiment])
        if output is not None:
            check_output_file(output, "--output")
            if output.exists() and output.resolve() == db.resolve():
                fail(f"--output: {output} is the results database itself; give another file")
        text = store.export_csv(output, experiment=experiment)
    if output is None:
        sys.stdout.write(text)
    else:
        console.print(f"wrote {output}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the experiment commands to the ``thermolearn`` app."""
    app.add_typer(experiments_app, name="experiments")
    app.add_typer(results_app, name="results")
    app.command("reproduce")(reproduce)
    app.command("report")(report)

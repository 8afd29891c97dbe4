"""What every command group shares: the consoles, one-line errors, output-path checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

# soft_wrap: a line is never broken at the terminal width, so what a command prints (and what a
# test reads) does not depend on the terminal or on the length of a path.
console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def group(help: str) -> typer.Typer:
    """A Typer command group with the house settings: plain (unboxed) usage errors, no
    pretty tracebacks, help when called without a command."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None,
                       pretty_exceptions_enable=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on one line to standard error and exit (2: bad input)."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code=code)


def option_error(exc: Exception, names: dict[str, str], default: str) -> NoReturn:
    """fail() with a library error whose ``name: ...`` prefix is turned into the option's name."""
    text = str(exc)
    head, sep, rest = text.partition(":")
    if sep and head in names:
        fail(f"{names[head]}:{rest}")
    fail(f"{default}: {text}")


def choose(value: str, valid, option: str) -> str:
    """``value`` when it is one of ``valid``; otherwise fail, listing the valid names."""
    if value not in valid:
        fail(f"{option}: unknown name {value!r}; expected one of {', '.join(valid)}")
    return value


def check_output_file(path: Path, option: str) -> Path:
    """Fail now, before any work, when ``path`` cannot be written as a file: a folder, a missing
    or read-only parent folder. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        fail(f"{option}: {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        fail(f"{option}: cannot write {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(f"{option}: cannot write {path}: permission denied")
    return path


def check_output_folder(path: Path, option: str) -> Path:
    """Fail now when ``path`` cannot be a folder of outputs (a file, or under a folder that
    cannot be written). The folder itself may not exist yet; it is created later."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        fail(f"{option}: {path} is a file; give a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        fail(f"{option}: cannot write into {path}: {probe} is not a writable folder")
    return path

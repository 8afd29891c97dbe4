"""The ``thermolearn`` command line: one small module per subpackage, each a thin shell over
the library (no algorithm lives here).

    thermolearn rbm ...           cli/rbm.py          thermolearn.ebm
    thermolearn binary ...        cli/binary.py       thermolearn.binary
    thermolearn landscape ...     cli/landscape.py    thermolearn.landscape
    thermolearn experiments ...   cli/experiments.py  thermolearn.experiments
    (reproduce, report, results)

A command exits with 0 when its work ran, 2 with a one-line ``error: ...`` naming the option for
bad input (checked before the work starts), 1 when the work itself failed.
"""

from __future__ import annotations

from typing import Optional

import typer

from . import binary, experiments, landscape, rbm
from ._common import console, group

app = group("Statistical mechanics of neural-network learning.")
for _module in (rbm, binary, landscape, experiments):
    _module.register(app)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"thermolearn {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                                 help="Print the version and exit.")):
    """Statistical mechanics of neural-network learning."""


def main():  # pragma: no cover
    app()

"""``python -m thermolearn``: the command line."""

from .cli import main

main()

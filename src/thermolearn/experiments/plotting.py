"""Consistent looks for the experiments' plots: one colour and one marker per series, axis labels
with units, fit parameters spelled out. Plain dicts and strings (matplotlib is not imported).

    from ..plotting import styles, axis_label, fit_label

    look = styles(["sgd", "rsgd", "sa", "rsa"])           # one distinct style per series
    for name in look:
        ax.plot(x[name], y[name], label=name, **look[name])
    ax.set_xlabel(axis_label("load alpha"))
    ax.set_ylabel(axis_label("time to solve", "moves"))
    ax.plot(n, fit, label=fit_label("log10 moves = a + b N", a=1.93, b=0.0574))

The first :data:`CYCLE` entries have distinct colours and distinct markers; a series keeps its
style whatever the other series are only when the same ``names`` are given in the same order,
so pass the full list of series of a figure (both panels), e.g. sorted.
"""

from __future__ import annotations

from collections.abc import Iterable

# (colour, marker, line style): matplotlib's tab10 colours and two more, 12 different markers
CYCLE = (
    ("#1f77b4", "o", "-"), ("#ff7f0e", "s", "--"), ("#2ca02c", "^", "-."), ("#d62728", "D", ":"),
    ("#9467bd", "v", "-"), ("#8c564b", "P", "--"), ("#e377c2", "X", "-."), ("#7f7f7f", "*", ":"),
    ("#bcbd22", "<", "-"), ("#17becf", ">", "--"), ("#000000", "h", "-."), ("#aec7e8", "p", ":"),
)


def styles(names: Iterable[str]) -> dict[str, dict]:
    """{series name: dict(color=, marker=, linestyle=)} for the names in their order (duplicates
    once). Up to ``len(CYCLE)`` (12) series no colour and no marker repeats; beyond that the
    colours repeat with a shifted marker, so the (colour, marker) pair stays unique."""
    out: dict[str, dict] = {}
    n = len(CYCLE)
    for name in names:
        if name in out:
            continue
        i = len(out)
        color, _, linestyle = CYCLE[i % n]
        marker = CYCLE[(i + i // n) % n][1]
        out[name] = {"color": color, "marker": marker, "linestyle": linestyle}
    return out


def style(name: str, names: Iterable[str]) -> dict:
    """The style of one series among ``names`` (see :func:`styles`)."""
    names = list(names)
    if name not in names:
        raise ValueError(f"name: {name!r} is not one of the series {names}")
    return styles(names)[name]


def axis_label(quantity: str, unit: str | None = None) -> str:
    """'quantity (unit)', or the quantity alone for a dimensionless one."""
    return f"{quantity} ({unit})" if unit else quantity


def fit_label(formula: str, digits: int = 3, **params: float) -> str:
    """A legend entry that says what was fitted: 'fit log10 moves = a + b N: a = 1.93, b = 0.0574'."""
    values = ", ".join(f"{k} = {v:.{digits}g}" for k, v in params.items())
    return f"fit {formula}: {values}" if values else f"fit {formula}"

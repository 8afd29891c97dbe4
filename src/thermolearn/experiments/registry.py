"""Named experiments: a plain function from one parameter point to records, plus its grid.

An :class:`Experiment` knows what to compute and how to present it, nothing about parallelism or
storage (the runner does sweeps, Dask, SQLite and resumption; the report does plots and tables).

    from thermolearn.experiments import Experiment, Anchor, register

    def run(params):                       # params: one grid point plus its "seed"
        return [{"value": params["x"] * params["seed"]}]

    register(Experiment(
        name="my-sweep", description="value against x", run=run,
        grid={"x": [1, 2, 3]}, seeds=[0, 1],             # 3 x 2 = 6 runs
        quick_grid={"x": [1]}, quick_seeds=[0],
        expected_seconds=(60, 5),                          # full, quick
        anchors=[Anchor("value", 4.0, "x = 2, seed 2", source="A. Author (2024), Table 1")]))

A grid is a dict of lists (the cartesian product of its values) or a list of such dicts (the
union of their products, like scikit-learn's ParameterGrid). Values must be JSON scalars so that
a point has one canonical text form, its identity in the results database.

Built-in experiments live in one folder per library subpackage, one module each:
``experiments/<subpackage>/<experiment_name>.py`` (modules whose names start with ``_`` are
helpers). Every such module is imported on first use, so a new file there is a new experiment;
importing it must stay cheap (load torch inside ``run``, not at the top). More modules can be
named in the environment variable ``THERMOLEARN_EXPERIMENTS`` (comma-separated module names),
e.g. your own experiments.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

ENV_MODULES = "THERMOLEARN_EXPERIMENTS"

Grid = Union[dict, list]


@dataclass(frozen=True)
class Anchor:
    """A published number to show beside the measured one.

    metric : record key to compare (e.g. "ais_test_ll").
    value : the published number, or a (low, high) range.
    label : what it is, in words (say [unverified] when the number is recalled, not checked).
    source : where the number comes from, shown as given in the report: a paper, with its
        authors, year and the table or figure ("Salakhutdinov & Murray (2008), Table 2"), or a
        number measured by this project: "measured here: " and the command that printed it
        ("measured here: python benchmarks/rsa_scaling.py --seeds 0-11"). A ValueError naming
        ``source`` otherwise (no 4-digit year, no command).
    where : only records whose fields equal these values are compared (e.g. {"method": "cd"}).
    """

    metric: str
    value: Union[float, tuple]
    label: str
    source: str
    where: dict = field(default_factory=dict)

    def __post_init__(self):
        check_source(self.source)
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"metric: expected a record key, got {self.metric!r}")

    def matches(self, record: dict) -> bool:
        return all(record.get(k) == v for k, v in self.where.items())

    def value_text(self) -> str:
        if isinstance(self.value, (tuple, list)):
            lo, hi = sorted(self.value)
            return f"{lo:g} to {hi:g}"
        return f"{self.value:g}"


_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_MEASURED = "measured here"
_COMMAND = re.compile(r"`[^`]+`|\b(python3?|thermolearn|make|pytest)\s+\S")


def check_source(source) -> str:
    """``source`` when it cites a paper (a 4-digit year) or says "measured here" with a command.

    >>> check_source("Baldassi et al. (2016), PNAS 113, Fig. 3")
    'Baldassi et al. (2016), PNAS 113, Fig. 3'
    """
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source: expected a citation (authors, year, table or figure) or 'measured here: "
                         f"<command>', got {source!r}")
    if source.lower().startswith(_MEASURED):
        if not _COMMAND.search(source):
            raise ValueError(f"source: a number measured here names the command that printed it, e.g. "
                             f"'measured here: python benchmarks/x.py --seeds 0-9'; got {source!r}")
        return source
    if not _YEAR.search(source):
        raise ValueError(f"source: expected the paper's authors, year and table or figure (no 4-digit year "
                         f"found), or 'measured here: <command>'; got {source!r}")
    return source


@dataclass
class Experiment:
    """A named, declarative experiment (see the module docstring).

    run : function(params: dict) -> list[dict]; ``params`` is one grid point with "seed" added.
    grid, seeds : the full variant; quick_grid, quick_seeds : the ``--quick`` variant (default:
        the full ones).
    expected_seconds : (full, quick) wall-clock estimate of the whole variant on 2 workers.
    anchors : published values shown beside the measurements in the report.
    plot : optional function(records, fig) drawing on a matplotlib Figure; ``records`` are the
        flattened records (grid parameters, "seed" and the record's own fields).
    table : what the report's table shows: a list of record keys, or a dict {record key:
        header}, the header naming the quantity and its unit, e.g. {"exact_test_ll": "exact test
        log-lik. (nats)"}. Numeric keys are shown as mean ± sd over seeds per grid point; a grid
        parameter named here is shown as a column of its own (under its header) even when it does
        not vary. Stored as a dict (a list gives each key as its own header).
    hidden : not part of ``all`` (test and benchmark experiments).
    """

    name: str
    description: str
    run: Callable[[dict], list]
    grid: Grid
    seeds: list = field(default_factory=lambda: [0])
    quick_grid: Optional[Grid] = None
    quick_seeds: Optional[list] = None
    expected_seconds: tuple = (None, None)
    anchors: list = field(default_factory=list)
    plot: Optional[Callable] = None
    table: Union[list, dict] = field(default_factory=dict)
    hidden: bool = False

    def __post_init__(self):
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"name: expected a non-empty name without spaces, got {self.name!r}")
        if not callable(self.run):
            raise TypeError(f"run: expected a function params -> list of dicts, got {self.run!r}")
        self.table = table_headers(self.table)
        for quick in (False, True):
            expand(self.grid_for(quick))                      # validates the grids early
            for s in self.seeds_for(quick):
                if not isinstance(s, int) or isinstance(s, bool):
                    raise ValueError(f"{self.name}: seeds must be integers, got {s!r}")

    def grid_for(self, quick: bool) -> Grid:
        return self.quick_grid if quick and self.quick_grid is not None else self.grid

    def seeds_for(self, quick: bool) -> list:
        return list(self.quick_seeds if quick and self.quick_seeds is not None else self.seeds)

    def points(self, quick: bool = False) -> list[tuple[dict, int]]:
        """Every (parameter point, seed) of the variant, in a fixed order."""
        return [(p, s) for p in expand(self.grid_for(quick)) for s in self.seeds_for(quick)]

    def describe_grid(self, quick: bool = False, fixed: bool = False) -> str:
        """One line: the parameters that vary, the seeds and the number of runs; with ``fixed``
        also the parameters that do not vary. A parameter whose value follows from one shown
        before it (e.g. the method from the model name) is not shown."""
        points = expand(self.grid_for(quick))
        keys = list(dict.fromkeys(k for p in points for k in p))
        values = {k: list(dict.fromkeys(p.get(k) for p in points)) for k in keys}
        shown: list[str] = []
        for k in keys:
            if len(values[k]) > 1 and not any(follows(points, k, j) for j in shown):
                shown.append(k)
        seeds = self.seeds_for(quick)
        parts = [f"{k} ∈ {{{', '.join(map(str, values[k]))}}}" for k in shown]
        text = "; ".join(parts + [f"seeds {_seed_text(seeds)}"]) + f" ({len(points) * len(seeds)} runs)"
        if fixed:
            text += "; fixed " + ", ".join(f"{k}={values[k][0]}" for k in keys if len(values[k]) == 1)
        return text


def table_headers(table) -> dict[str, str]:
    """``Experiment.table`` as {record key: header}: a list gives each key as its own header.

    >>> table_headers(["a", "b"])
    {'a': 'a', 'b': 'b'}
    >>> table_headers({"ll": "test log-lik. (nats)"})
    {'ll': 'test log-lik. (nats)'}
    """
    if table is None:
        return {}
    if isinstance(table, dict):
        items = list(table.items())
    elif isinstance(table, (list, tuple)):
        items = [(k, k) for k in table]
    else:
        raise TypeError(f"table: expected a list of record keys or a dict {{key: header}}, got "
                        f"{type(table).__name__}")
    out: dict[str, str] = {}
    for key, header in items:
        if not isinstance(key, str) or not key:
            raise ValueError(f"table: record keys must be non-empty strings, got {key!r}")
        if not isinstance(header, str) or not header.strip():
            raise ValueError(f"table[{key!r}]: the header must be a non-empty string, got {header!r}")
        if key in out:
            raise ValueError(f"table: the key {key!r} is given twice")
        out[key] = header
    return out


def follows(points, key, other) -> bool:
    """Whether the value of ``key`` is a function of the value of ``other`` over the points."""
    seen: dict = {}
    for p in points:
        if seen.setdefault(canonical({"v": p.get(other)}), p.get(key)) != p.get(key):
            return False
    return True


def _seed_text(seeds) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def expand(grid: Grid) -> list[dict]:
    """The points of a grid: dict of lists -> cartesian product; list of dicts -> union.

    >>> expand({"a": [1, 2], "b": ["x"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    grids = grid if isinstance(grid, list) else [grid]
    points = []
    for g in grids:
        if not isinstance(g, dict):
            raise TypeError(f"grid: expected a dict of lists or a list of them, got {type(g).__name__}")
        for key, values in g.items():
            if not isinstance(key, str) or key == "seed":
                raise ValueError(f"grid: keys must be strings other than 'seed', got {key!r}")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"grid[{key!r}]: expected a non-empty list of values, got {values!r}")
            for v in values:
                if not (v is None or isinstance(v, (bool, int, float, str))):
                    raise ValueError(f"grid[{key!r}]: values must be JSON scalars, got {v!r}")
        keys = list(g)
        for combo in itertools.product(*(g[k] for k in keys)):
            point = dict(zip(keys, combo))
            if point not in points:
                points.append(point)
    return points


def canonical(point: dict) -> str:
    """The canonical JSON text of a parameter point (sorted keys, no spaces): its identity."""
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


_REGISTRY: dict[str, Experiment] = {}
_loaded = False


def register(experiment: Experiment, replace: bool = False) -> Experiment:
    """Add an experiment to the registry (an error if the name is taken, unless ``replace``)."""
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment: expected an Experiment, got {type(experiment).__name__}")
    if experiment.name in _REGISTRY and not replace and _REGISTRY[experiment.name] is not experiment:
        raise ValueError(f"an experiment named {experiment.name!r} is already registered")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _load_modules() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    extra = [m.strip() for m in os.environ.get(ENV_MODULES, "").split(",") if m.strip()]
    for module in (*builtin_modules(), *extra):
        importlib.import_module(module)


def builtin_modules() -> list[str]:
    """The built-in experiment modules, ``thermolearn.experiments.<subpackage>.<name>``, sorted."""
    here = Path(__file__).parent
    found = []
    for sub in sorted(p for p in here.iterdir() if (p / "__init__.py").is_file()):
        for info in pkgutil.iter_modules([str(sub)]):
            if not info.name.startswith("_") and not info.ispkg:
                found.append(f"{__package__}.{sub.name}.{info.name}")
    return sorted(found)


def get(name: str) -> Experiment:
    """The registered experiment ``name``; a ValueError lists the known names otherwise."""
    _load_modules()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValueError(f"unknown experiment {name!r}; expected one of: {known}")
    return _REGISTRY[name]


def all_experiments(include_hidden: bool = False) -> list[Experiment]:
    """Registered experiments: the built-in ones by subpackage and name, then the others in
    registration order (hidden ones only when asked)."""
    _load_modules()
    rank = {module: i for i, module in enumerate(builtin_modules())}
    exps = sorted(_REGISTRY.values(), key=lambda e: rank.get(getattr(e.run, "__module__", None), len(rank)))
    return [e for e in exps if include_hidden or not e.hidden]


def resolve(names) -> list[Experiment]:
    """Experiments for command-line names; ``all`` means every visible one. No duplicates; an
    unknown name is a ValueError listing the valid ones."""
    out: list[Experiment] = []
    for name in names:
        if name != "all":
            try:
                get(name)
            except ValueError as exc:
                raise ValueError(f"{exc}, or 'all'") from None
        for exp in (all_experiments() if name == "all" else [get(name)]):
            if exp not in out:
                out.append(exp)
    return out


def format_seconds(seconds: Any) -> str:
    """Human-readable duration: 45 s, 12 min, 3.5 h; '?' when unknown."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

"""Results of experiment sweeps in one SQLite file (WAL mode).

One row per (experiment, parameter point, seed), the point as canonical JSON. A row is written
in one statement, i.e. one transaction, when its result arrives: a process killed at any moment
(even by SIGKILL) leaves every finished row intact and no partial one. The UNIQUE constraint
means a point is never stored twice; a ``done`` row is never overwritten, a ``failed`` row is
replaced by the result of a retry (``attempts`` counts the tries).

Each row carries its status (done/failed), its records (a JSON list of dicts), the error and
traceback of a failure, the seconds the point took, start and finish times (UTC, ISO 8601),
the variant (full/quick), and where it ran: host, device, package version, git commit (when the
package is a git checkout) and the versions of python, torch, numpy and dask.

The file can be read while a sweep writes to it (``thermolearn report`` during a run).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .registry import canonical

SCHEMA_VERSION = 1
ENV_KEYS = ("host", "device", "package_version", "git_commit", "python", "torch", "numpy", "dask")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id              INTEGER PRIMARY KEY,
    experiment      TEXT NOT NULL,
    point           TEXT NOT NULL,          -- canonical JSON of the parameters (seed excluded)
    seed            INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    records         TEXT,                   -- JSON list of dicts (done)
    error           TEXT,                   -- "Type: message" (failed)
    traceback       TEXT,
    seconds         REAL,
    started_at      TEXT,
    finished_at     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 1,
    variant         TEXT,
    host            TEXT,
    device          TEXT,
    package_version TEXT,
    git_commit      TEXT,
    python          TEXT,
    torch           TEXT,
    numpy           TEXT,
    dask            TEXT,
    UNIQUE (experiment, point, seed)
);
"""

_COLUMNS = ("experiment", "point", "seed", "status", "records", "error", "traceback", "seconds",
            "started_at", "finished_at", "variant") + ENV_KEYS

# Insert, or replace a failed row by a new result; a done row is left as it is.
_UPSERT = (
    f"INSERT INTO results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (experiment, point, seed) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[3:])
    + ", attempts = results.attempts + 1 WHERE results.status = 'failed'"
)


@dataclass
class PointResult:
    """The outcome of one (experiment, point, seed), as the runner hands it to the store."""

    experiment: str
    point: dict
    seed: int
    status: str                       # "done" or "failed"
    records: Optional[list] = None
    error: Optional[str] = None
    traceback: Optional[str] = None
    seconds: Optional[float] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    variant: Optional[str] = None
    env: dict = field(default_factory=dict)
    attempts: int = 1


class Store:
    """A results database. ``Store(path)`` creates the file (and its folder) when missing."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")   # a committed row survives power loss too
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ValueError(f"{self.path}: results database of schema {version}, newer than this "
                             f"thermolearn ({SCHEMA_VERSION}); upgrade thermolearn")
        with self._conn:
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def journal_mode(self) -> str:
        return self._conn.execute("PRAGMA journal_mode").fetchone()[0]

    # -- writing ------------------------------------------------------------------------------

    def put(self, r: PointResult) -> bool:
        """Store one result in its own transaction; False when the point was already done."""
        if r.status not in ("done", "failed"):
            raise ValueError(f"status: expected 'done' or 'failed', got {r.status!r}")
        values = (r.experiment, canonical(r.point), int(r.seed), r.status,
                  json.dumps(r.records) if r.records is not None else None,
                  r.error, r.traceback, r.seconds, r.started_at, r.finished_at, r.variant,
                  *(None if r.env.get(k) is None else str(r.env[k]) for k in ENV_KEYS))
        cur = self._conn.execute(_UPSERT, values)     # one statement: atomic, autocommitted
        return cur.rowcount == 1

    # -- reading ------------------------------------------------------------------------------

    def statuses(self, experiment: str) -> dict[tuple[str, int], str]:
        """{(canonical point, seed): status} of the experiment's stored rows."""
        rows = self._conn.execute("SELECT point, seed, status FROM results WHERE experiment = ?",
                                  (experiment,))
        return {(p, s): st for p, s, st in rows}

    def experiments(self) -> list[str]:
        """Names of the experiments with rows, in the order they were first stored."""
        rows = self._conn.execute("SELECT experiment, MIN(id) FROM results GROUP BY experiment ORDER BY 2")
        return [r[0] for r in rows]

    def results(self, experiment: Optional[str] = None, status: Optional[str] = None) -> list[PointResult]:
        """Stored rows as :class:`PointResult` (records decoded), in insertion order."""
        query = f"SELECT {', '.join(_COLUMNS)}, attempts FROM results"
        where, args = [], []
        if experiment is not None:
            where.append("experiment = ?")
            args.append(experiment)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if where:
            query += " WHERE " + " AND ".join(where)
        out = []
        for row in self._conn.execute(query + " ORDER BY id", args):
            d = dict(zip(_COLUMNS + ("attempts",), row))
            out.append(PointResult(
                experiment=d["experiment"], point=json.loads(d["point"]), seed=d["seed"],
                status=d["status"], records=json.loads(d["records"]) if d["records"] else None,
                error=d["error"], traceback=d["traceback"], seconds=d["seconds"],
                started_at=d["started_at"], finished_at=d["finished_at"], variant=d["variant"],
                env={k: d[k] for k in ENV_KEYS}, attempts=d["attempts"]))
        return out

    def records(self, experiment: Optional[str] = None) -> list[dict]:
        """Flattened records of the done rows (see :func:`flatten`)."""
        return [rec for r in self.results(experiment, status="done") for rec in flatten(r)]

    def export_csv(self, out=None, experiment: Optional[str] = None) -> str:
        """Write the flattened records as CSV to ``out`` (a path or a text file); return the text
        when ``out`` is None. One CSV row per record; columns are the union over all records."""
        records = self.records(experiment)
        columns: list[str] = []
        for rec in records:
            columns.extend(k for k in rec if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for rec in records:
            writer.writerow({k: _cell(v) for k, v in rec.items()})
        text = buf.getvalue()
        if out is None:
            return text
        if hasattr(out, "write"):
            out.write(text)
        else:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(text)
        return text


def flatten(r: PointResult) -> list[dict]:
    """One dict per record: experiment, point (JSON), seed, the parameters, the record's index
    and fields, then the row's seconds, package version and git commit. The parameters take
    precedence over record fields of the same name."""
    base = {"experiment": r.experiment, "point": canonical(r.point), "seed": r.seed, **r.point}
    meta = {"point_seconds": r.seconds, "package_version": r.env.get("package_version"),
            "git_commit": r.env.get("git_commit")}
    out = []
    for i, rec in enumerate(r.records or []):
        row = dict(base, record=i)
        row.update((k, v) for k, v in rec.items() if k not in row)
        row.update((k, v) for k, v in meta.items() if k not in row)
        out.append(row)
    return out


def _cell(v):
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def open_store(path) -> Store:
    """Open an existing results database (FileNotFoundError when missing; no file is created)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no results database (run `thermolearn reproduce` first)")
    return Store(path)


def split_points(store: Store, experiment: str, points: Iterable[tuple[dict, int]], retry_failed: bool):
    """Split points into (to run, done already, failed and skipped)."""
    stored = store.statuses(experiment)
    todo, done, failed = [], [], []
    for point, seed in points:
        status = stored.get((canonical(point), seed))
        if status == "done":
            done.append((point, seed))
        elif status == "failed" and not retry_failed:
            failed.append((point, seed))
        else:
            todo.append((point, seed))
    return todo, done, failed

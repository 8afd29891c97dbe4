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

A results database is marked as thermolearn's by SQLite's ``application_id`` header field
(:data:`APPLICATION_ID`, written before anything else). Nothing here writes to a file that is
not SQLite or that is another program's SQLite database (a :class:`~thermolearn.errors.StoreError`
instead), and readers (:func:`open_store`) open the file read-only (``mode=ro``) and never
create one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import StoreError
from .registry import canonical

SCHEMA_VERSION = 1
APPLICATION_ID = 0x544C524E          # "TLRN": PRAGMA application_id of a thermolearn results database
_SQLITE_MAGIC = b"SQLite format 3\x00"
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


# SQLite's unix file layer holds full path names of at most 512 bytes, and the rollback journal
# beside a database is named with the suffix "-journal"
MAX_PATH_BYTES = 512 - len("-journal")


def inspect(path) -> str:
    """What ``path`` is, read from its 100-byte SQLite header without opening it as a database:
    ``"missing"``, ``"empty"`` (no bytes, or an SQLite file with no tables) or ``"results"`` (a
    thermolearn results database). A StoreError for anything else: a folder, a file that is not
    SQLite, another program's SQLite database, a results database of a newer schema."""
    path = Path(path)
    length = len(os.fsencode(path.resolve()))
    if length > MAX_PATH_BYTES:
        raise StoreError(f"{path}: its full path is {length} bytes long; SQLite opens databases whose "
                         f"path is at most {MAX_PATH_BYTES} bytes (512 with the suffix of its journal "
                         "file): give a shorter path")
    if not path.exists():
        return "missing"
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a results database")
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not header:
        return "empty"
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path} is not an SQLite database (file is not a database); "
                         "give a thermolearn results file or a new file name")
    application_id = int.from_bytes(header[68:72], "big", signed=True)
    version = int.from_bytes(header[60:64], "big", signed=True)
    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: results database of schema {version}, newer than this "
                             f"thermolearn ({SCHEMA_VERSION}); upgrade thermolearn")
        return "results"
    tables = _tables(path)
    if application_id == 0 and not tables:
        return "empty"
    what = f"tables: {', '.join(tables[:6])}{', ...' if len(tables) > 6 else ''}" if tables else "no tables"
    raise StoreError(f"{path} is another program's SQLite database ({what}; no thermolearn marker); "
                     "thermolearn leaves it alone: give a new file name")


def _tables(path: Path) -> list[str]:
    """Names of the tables of an SQLite file, read through a read-only connection."""
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable SQLite database ({exc})") from exc


def _read_only_uri(path: Path) -> str:
    """``mode=ro``; also ``immutable=1`` when no connection has the file open (no ``-wal`` file
    beside it), so that reading creates no ``-wal`` / ``-shm`` files next to a database that no
    one is writing. While a sweep writes (its ``-wal`` exists) the reader shares its WAL."""
    path = Path(path).resolve()
    idle = not Path(f"{path}-wal").exists()
    return path.as_uri() + ("?mode=ro&immutable=1" if idle else "?mode=ro")


class Store:
    """A results database.

    ``Store(path)`` opens it for writing: a missing file (and its folder) or an empty one is
    created as a results database; a file that is not SQLite, or another program's database,
    is a StoreError and is not touched. ``Store(path, readonly=True)`` (see :func:`open_store`)
    opens an existing results database read-only (``mode=ro``): FileNotFoundError when the
    file is missing, StoreError when it is not a results database; nothing is ever created.
    """

    def __init__(self, path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        kind = inspect(self.path)
        if readonly:
            if kind == "missing":
                raise FileNotFoundError(f"{self.path}: no results database (run `thermolearn reproduce` first)")
            if kind == "empty":
                raise StoreError(f"{self.path} is empty, not a results database")
            self._conn = self._connect(_read_only_uri(self.path), uri=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect(self.path)
        if kind != "results":
            # mark the file first, in rollback-journal mode, so that the marker is in the file's
            # header (where inspect() reads it) before any row exists
            self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")   # a committed row survives power loss too
        with self._conn:
            self._conn.executescript(_SCHEMA)

    def _connect(self, target, uri: bool = False) -> sqlite3.Connection:
        try:
            return sqlite3.connect(target, timeout=60.0, isolation_level=None, uri=uri)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc

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
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only")
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
        if experiment is not None:
            check_experiments(self, [experiment])
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
    """Open an existing results database read-only: FileNotFoundError when it is missing,
    StoreError when it is not a thermolearn results database; nothing is created or written."""
    return Store(path, readonly=True)


def check_experiments(store: Store, names) -> list[str]:
    """``names`` when every one has rows in the store; a ValueError listing the stored ones."""
    stored = store.experiments()
    unknown = [n for n in names if n not in stored]
    if unknown:
        raise ValueError(f"experiment: {', '.join(map(repr, unknown))} not in {store.path}; stored: "
                         f"{', '.join(stored) or 'none'}")
    return list(names)


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

"""The experiment commands (experiments list, reproduce, report, results export): every bad input
is one line ``error: --option: ...`` with exit code 2 and no traceback, checked before any work,
and writes nothing anywhere; a file that is not SQLite or another program's database keeps its
bytes; read commands never write. Each case runs at 60, 80 and 132 columns, from a short and
from a very long working folder."""

import csv
import io
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thermolearn.cli import _common, app
from thermolearn.experiments import _selftest  # noqa: F401 - registers the selftest experiments
from thermolearn.experiments.store import APPLICATION_ID, PointResult, Store

cli = CliRunner()


def _read_only_folders_are_writable() -> bool:
    """True for root with its usual capabilities: then a read-only folder cannot be tested."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o555)
        try:
            return os.access(tmp, os.W_OK)
        finally:
            os.chmod(tmp, 0o755)


BYPASSES_PERMISSIONS = _read_only_folders_are_writable()


@pytest.fixture(params=[60, 80, 132], ids=lambda w: f"{w}cols")
def columns(request, monkeypatch):
    """A terminal of that width for both consoles of the command line."""
    monkeypatch.setenv("COLUMNS", str(request.param))
    for console in (_common.console, _common.err_console):
        monkeypatch.setattr(console, "_width", request.param)
    return request.param


@pytest.fixture(params=["short", "long"])
def base(request, tmp_path, monkeypatch, columns):
    """The working folder of a command (also its current folder, so defaults land in it too)."""
    # "long": about 400 characters in all (SQLite opens paths up to 504 bytes), at least 40 more
    extra = max(40, 400 - len(str(tmp_path)))
    folder = tmp_path if request.param == "short" else tmp_path / ("long-" + "x" * (extra // 2)) / ("y" * (extra // 2))
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    return folder


def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder`` with the bytes of the files."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def results_db(path: Path) -> Path:
    with Store(path) as store:
        for x in (1, 2):
            store.put(PointResult("e", {"x": x, "s": "a,b"}, 7, "done", records=[{"v": x, "kind": "a"}, {"v": -x}]))
        store.put(PointResult("e", {"x": 3, "s": ""}, 7, "failed", error="boom"))
        store.put(PointResult("f", {"x": 1}, 0, "done", records=[{"v": 0.5}]))
    return path


def foreign_db(path: Path) -> Path:
    """Another program's SQLite database: a table of its own, no thermolearn marker."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
    conn.close()
    return path


def not_sqlite(path: Path) -> Path:
    path.write_bytes(b"name,value\nada,1\n" * 20)
    return path


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict:
    """The files of every case, made once: {name: bytes}."""
    folder = tmp_path_factory.mktemp("templates")
    made = [results_db(folder / "r.sqlite"), foreign_db(folder / "other.sqlite"), not_sqlite(folder / "data.csv")]
    return {p.name: p.read_bytes() for p in made}


@pytest.fixture
def files(base, templates) -> dict:
    """A results database, another program's database, a CSV file, a 2-byte file and a folder."""
    for name, data in templates.items():
        (base / name).write_bytes(data)
    (base / "tiny.txt").write_text("hi")
    (base / "folder").mkdir()
    return {"db": base / "r.sqlite", "foreign": base / "other.sqlite", "text": base / "data.csv",
            "short": base / "tiny.txt", "dir": base / "folder"}


# (case id, command line from the files, option named, a text the message must contain)
CASES = [
    ("report-not-sqlite", lambda f: ["report", "--db", f["text"], "--out", "rep"], "--db", "not an SQLite database"),
    ("report-short-file", lambda f: ["report", "--db", f["short"], "--out", "rep"], "--db", "not an SQLite database"),
    ("report-foreign", lambda f: ["report", "--db", f["foreign"], "--out", "rep"], "--db", "another program's"),
    ("report-missing", lambda f: ["report", "--db", "none.sqlite", "--out", "rep"], "--db", "no results database"),
    ("report-folder-db", lambda f: ["report", "--db", f["dir"], "--out", "rep"], "--db", "is a folder"),
    ("report-unknown-experiment", lambda f: ["report", "--db", f["db"], "--out", "rep", "--experiment", "nope"],
     "--experiment", "'nope' not in"),
    ("report-out-is-a-file", lambda f: ["report", "--db", f["db"], "--out", f["text"]], "--out", "is a file"),
    ("report-out-under-a-file", lambda f: ["report", "--db", f["db"], "--out", f["text"] / "sub"], "--out",
     "not a writable folder"),
    ("export-not-sqlite", lambda f: ["results", "export", "--db", f["text"]], "--db", "not an SQLite database"),
    ("export-foreign", lambda f: ["results", "export", "--db", f["foreign"], "--output", "x.csv"], "--db",
     "another program's"),
    ("export-missing", lambda f: ["results", "export", "--db", "none.sqlite", "--output", "x.csv"], "--db",
     "no results database"),
    ("export-unknown-experiment", lambda f: ["results", "export", "--db", f["db"], "--experiment", "nope"],
     "--experiment", "stored: e, f"),
    ("export-output-folder", lambda f: ["results", "export", "--db", f["db"], "--output", f["dir"]], "--output",
     "is a folder"),
    ("export-output-missing-parent", lambda f: ["results", "export", "--db", f["db"], "--output", "no/such/x.csv"],
     "--output", "does not exist"),
    ("export-output-is-the-db", lambda f: ["results", "export", "--db", f["db"], "--output", f["db"]], "--output",
     "the results database itself"),
    ("export-format", lambda f: ["results", "export", "--db", f["db"], "--format", "json"], "--format", "csv"),
    ("reproduce-unknown-name", lambda f: ["reproduce", "nope", "--db", "new.sqlite", "--out", "rep"], "NAMES",
     "selftest-sleep"),
    ("reproduce-not-sqlite", lambda f: ["reproduce", "selftest-sleep", "--quick", "--db", f["text"], "--out", "rep"],
     "--db", "not an SQLite database"),
    ("reproduce-foreign", lambda f: ["reproduce", "selftest-sleep", "--quick", "--db", f["foreign"], "--out", "rep"],
     "--db", "another program's"),
    ("reproduce-db-folder", lambda f: ["reproduce", "selftest-sleep", "--quick", "--db", f["dir"], "--out", "rep"],
     "--db", "is a folder"),
    ("reproduce-db-missing-parent",
     lambda f: ["reproduce", "selftest-sleep", "--quick", "--db", "no/such/r.sqlite", "--out", "rep"],
     "--db", "does not exist"),
    ("reproduce-out-is-a-file",
     lambda f: ["reproduce", "selftest-sleep", "--quick", "--db", "new.sqlite", "--out", f["text"]],
     "--out", "is a file"),
    ("reproduce-threads", lambda f: ["reproduce", "selftest-sleep", "--threads", "0", "--db", "new.sqlite"],
     "--threads", "positive"),
    ("reproduce-workers", lambda f: ["reproduce", "selftest-sleep", "--workers", "0", "--db", "new.sqlite"],
     "--workers", "positive"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_option_and_writes_nothing(case, base, files):
    _id, make_args, option, text = case
    before = snapshot(base)
    r = cli.invoke(app, [str(a) for a in make_args(files)])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {option}: "), r.output
    assert text in errors[0], r.output
    assert snapshot(base) == before        # nothing created, nothing changed, foreign bytes kept
    with sqlite3.connect(files["foreign"]) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
    conn.close()


def test_database_path_too_long_for_sqlite_is_one_line_error(base, files):
    """SQLite opens paths of at most 504 bytes (512 with its journal's suffix): said, not tracebacked."""
    deep = base.joinpath(*["z" * 200] * 3)
    deep.mkdir(parents=True)
    (deep / "r.sqlite").write_bytes(files["db"].read_bytes())
    before = snapshot(base)
    for args in (["reproduce", "selftest-sleep", "--quick", "--db", deep / "new.sqlite", "--out", "rep"],
                 ["results", "export", "--db", deep / "r.sqlite"],
                 ["report", "--db", deep / "r.sqlite", "--out", "rep"]):
        r = cli.invoke(app, [str(a) for a in args])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: --db: ") and "give a shorter path" in errors[0]
    assert snapshot(base) == before


@pytest.mark.skipif(BYPASSES_PERMISSIONS, reason="this user writes into read-only folders (root)")
@pytest.mark.parametrize("command", ["reproduce", "report", "export"])
def test_read_only_folders_are_refused_before_the_work(command, base, files):
    locked = base / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        args, option = {
            "reproduce": (["reproduce", "selftest-sleep", "--quick", "--db", locked / "r.sqlite", "--out", "rep"],
                          "--db"),
            "report": (["report", "--db", files["db"], "--out", locked / "rep"], "--out"),
            "export": (["results", "export", "--db", files["db"], "--output", locked / "x.csv"], "--output"),
        }[command]
        before = snapshot(base)
        r = cli.invoke(app, [str(a) for a in args])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert f"error: {option}: " in r.output and ("permission denied" in r.output or "writable" in r.output)
        assert snapshot(base) == before
    finally:
        locked.chmod(0o755)


def test_read_commands_never_write_their_database(base, files):
    db_bytes = files["db"].read_bytes()
    r = cli.invoke(app, ["report", "--db", str(files["db"]), "--out", "rep", "--experiment", "f"])
    assert r.exit_code == 0, r.output
    assert (base / "rep" / "index.html").is_file() and "wrote" in r.output
    html = (base / "rep" / "index.html").read_text()
    assert "<h2 id='f'>" in html and "<h2 id='e'>" not in html
    r = cli.invoke(app, ["results", "export", "--db", str(files["db"]), "--experiment", "f"])
    assert r.exit_code == 0, r.output
    assert list(csv.DictReader(io.StringIO(r.stdout)))[0]["v"] == "0.5"
    assert files["db"].read_bytes() == db_bytes
    with sqlite3.connect(files["db"]) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


def test_csv_export_one_row_per_record(tmp_path):
    db = results_db(tmp_path / "r.sqlite")
    out = tmp_path / "out.csv"
    r = cli.invoke(app, ["results", "export", "--db", str(db), "--format", "csv", "--output", str(out),
                         "--experiment", "e"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4
    assert list(rows[0])[:6] == ["experiment", "point", "seed", "s", "x", "record"]   # parameters sorted
    assert rows[0]["s"] == "a,b" and rows[1]["v"] == "-1" and rows[1]["kind"] == "" and rows[3]["seed"] == "7"
    r = cli.invoke(app, ["results", "export", "--db", str(db)])
    assert r.exit_code == 0 and len(list(csv.DictReader(io.StringIO(r.stdout)))) == 5


def test_list_shows_every_experiment_at_any_width(columns):
    r = cli.invoke(app, ["experiments", "list"])
    assert r.exit_code == 0, r.output
    for text in ("rbm-small-exact", "rbm-mnist-likelihood", "--quick"):
        assert text in r.output
    assert "selftest-sleep" not in r.output          # hidden

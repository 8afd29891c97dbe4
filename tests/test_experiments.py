"""Experiments: registry, SQLite store, Dask runner (real loopback cluster), kill -9 and resume,
report, and one real quick RBM point (the commands: test_experiments_cli.py)."""

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import torch
from typer.testing import CliRunner

from thermolearn.cli import app
from thermolearn.experiments import _selftest
from thermolearn.experiments.registry import Anchor, Experiment, all_experiments, expand, get, register, resolve
from thermolearn.experiments.report import make_report
from thermolearn.experiments.runner import execute, plain_records, run_experiments
from thermolearn.experiments.store import PointResult, Store, split_points

cli = CliRunner()
THREAD_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


@pytest.fixture(scope="module")
def scheduler():
    """A real Dask scheduler and two worker processes on loopback."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def restore_threads():
    """execute() limits the threads of the process it runs in; put them back afterwards."""
    threads, env = torch.get_num_threads(), dict(os.environ)
    numba = sys.modules.get("numba")
    numba_threads = numba.get_num_threads() if numba else None
    yield
    torch.set_num_threads(threads)
    if numba_threads:
        numba.set_num_threads(numba_threads)
    os.environ.clear()
    os.environ.update(env)


def _exp(name, grid, seeds=(0, 1), **kw):
    return register(Experiment(name=name, description=f"test {name}", run=_selftest.value, grid=grid,
                               seeds=list(seeds), hidden=True, **kw), replace=True)


def _without_pid(records):
    return [{k: v for k, v in r.items() if k not in ("pid", "torch_threads")} for r in records]


# -- registry -----------------------------------------------------------------------------------

def test_grid_expansion_and_registry():
    assert expand({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert expand([{"a": [1], "b": [0]}, {"a": [2, 3]}, {"a": [1], "b": [0]}]) == [
        {"a": 1, "b": 0}, {"a": 2}, {"a": 3}]                     # union, duplicates once
    for bad in ({"a": []}, {"a": 1}, {"seed": [1]}, {"a": [[1, 2]]}):
        with pytest.raises(ValueError):
            expand(bad)
    exp = _exp("t-grid", {"x": [1, 2, 3]}, seeds=[0, 1], quick_grid={"x": [1]}, quick_seeds=[5])
    assert exp.points() == [({"x": x}, s) for x in (1, 2, 3) for s in (0, 1)]
    assert exp.points(quick=True) == [({"x": 1}, 5)]
    assert "x ∈ {1, 2, 3}" in exp.describe_grid() and "(6 runs)" in exp.describe_grid()
    assert get("t-grid") is exp
    with pytest.raises(ValueError, match="already registered"):
        register(Experiment(name="t-grid", description="", run=_selftest.value, grid={"x": [1]}))
    with pytest.raises(ValueError, match="unknown experiment 'nope'.*rbm-small-exact"):
        get("nope")
    names = [e.name for e in resolve(["all"])]
    assert "t-grid" not in names
    # built-in experiments are found by their modules, listed by subpackage and module name
    from thermolearn.experiments.registry import builtin_modules
    modules = [e.run.__module__ for e in resolve(["all"])]
    assert modules == sorted(modules) and set(modules) <= set(builtin_modules())
    assert "thermolearn.experiments.ebm.rbm_small_exact" in builtin_modules()
    assert {"rbm-small-exact", "rbm-mnist-likelihood"} <= {e.name for e in all_experiments()}
    # a parameter that follows from another is not listed separately
    assert get("rbm-mnist-likelihood").describe_grid(quick=True).startswith("model ∈ {cd1-64")


# -- store --------------------------------------------------------------------------------------

def test_store_unique_rows_and_skips(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        assert store.journal_mode == "wal"
        done = PointResult("e", {"b": 1, "a": 0.5}, 0, "done", records=[{"v": 1}], seconds=0.1,
                           env={"package_version": "9", "torch": "t"})
        assert store.put(done)
        # the same point again (keys in another order: same canonical JSON) is not stored twice
        assert not store.put(PointResult("e", {"a": 0.5, "b": 1}, 0, "done", records=[{"v": 2}]))
        assert not store.put(PointResult("e", {"a": 0.5, "b": 1}, 0, "failed", error="X: late"))
        assert store.put(PointResult("e", {"a": 0.5, "b": 1}, 1, "failed", error="E: boom", traceback="tb"))
        rows = store.results("e")
        assert [(r.seed, r.status, r.records) for r in rows] == [(0, "done", [{"v": 1}]), (1, "failed", None)]
        assert rows[0].env["package_version"] == "9" and rows[1].error == "E: boom"
        points = [({"a": 0.5, "b": 1}, s) for s in (0, 1, 2)]
        todo, skipped_done, skipped_failed = split_points(store, "e", points, retry_failed=False)
        assert (len(todo), len(skipped_done), len(skipped_failed)) == (1, 1, 1)
        assert len(split_points(store, "e", points, retry_failed=True)[0]) == 2
        # a retry replaces the failed row (same row, attempts counted)
        assert store.put(PointResult("e", {"a": 0.5, "b": 1}, 1, "done", records=[{"v": 3}]))
        r = store.results("e")[1]
        assert (r.status, r.records, r.error, r.attempts) == ("done", [{"v": 3}], None, 2)
    with sqlite3.connect(db) as conn:                       # the UNIQUE constraint itself
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO results (experiment, point, seed, status) VALUES "
                         "('e', '{\"a\":0.5,\"b\":1}', 0, 'done')")


def test_execute_records_errors_and_converts_values(restore_threads):
    out = execute(lambda p: [{"a": np.float32(1.5), "b": torch.tensor(2), "c": np.arange(2)}], {"x": 1}, 3)
    assert out["status"] == "done" and out["records"] == [{"a": 1.5, "b": 2, "c": [0, 1]}]
    assert out["env"]["torch"] == torch.__version__
    assert out["seconds"] >= 0
    bad = execute(lambda p: 1 / 0, {}, 0)
    assert bad["status"] == "failed" and bad["error"].startswith("ZeroDivisionError")
    assert "1 / 0" in bad["traceback"]
    assert execute(lambda p: "text", {}, 0)["error"].startswith("TypeError: an experiment must return")
    assert plain_records({"a": 1}) == [{"a": 1}]


# -- runner on a real Dask cluster ----------------------------------------------------------------

def test_sweep_on_loopback_scheduler_failures_and_retry(scheduler, tmp_path):
    marker = tmp_path / "marker"
    exp = _exp("t-fail", [{"x": [1, 2, 3], "torch": [True]}, {"x": [4], "fail_unless": [str(marker)]}])
    db = tmp_path / "r.sqlite"
    s = run_experiments([exp.name], scheduler=scheduler, db=db, progress=False, log=None)
    assert (s.total, s.done, s.failed) == (8, 6, 2)
    with Store(db) as store:
        rows = store.results(exp.name)
        failed = [r for r in rows if r.status == "failed"]
        assert len(rows) == 8 and len(failed) == 2
        assert all("on purpose" in r.error and "RuntimeError" in r.traceback for r in failed)
        done = [r for r in rows if r.status == "done"]
        assert all(r.records[0]["pid"] != os.getpid() for r in done)   # ran on the workers
        assert all(r.records[0]["torch_threads"] == 1 for r in done)
        assert all(r.env["dask"] and r.env["python"] and r.env["device"].startswith("cpu") for r in done)
        expected = {(r.point["x"], r.seed): _selftest.deterministic_value(r.point["x"], r.seed) for r in done}
        assert all(r.records[0]["value"] == expected[(r.point["x"], r.seed)] for r in done)
    s = run_experiments([exp.name], scheduler=scheduler, db=db, progress=False, log=None)
    assert (s.done, s.failed, s.skipped_done, s.skipped_failed) == (0, 0, 6, 2)
    marker.touch()
    s = run_experiments([exp.name], scheduler=scheduler, db=db, retry_failed=True, progress=False, log=None)
    assert (s.done, s.failed, s.skipped_done) == (2, 0, 6)
    with Store(db) as store:
        rows = store.results(exp.name)
        assert len(rows) == 8 and all(r.status == "done" for r in rows)
        assert sorted(r.attempts for r in rows) == [1] * 6 + [2] * 2


def test_kill_minus_nine_then_resume_through_scheduler(scheduler, tmp_path):
    """A sweep process killed by SIGKILL midway leaves its finished rows and no worker behind;
    the same command (through --scheduler) resumes with every point stored once, and the values
    equal those of a clean run (the selftest function evaluated here, without Dask)."""
    db, out = tmp_path / "k.sqlite", tmp_path / "report"
    env = dict(os.environ, THERMOLEARN_EXPERIMENTS="thermolearn.experiments._selftest", **THREAD_ENV)
    cmd = [sys.executable, "-c", "from thermolearn.cli import app; app()", "reproduce", "selftest-sleep",
           "--db", str(db), "--out", str(out), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    points = _selftest.SLEEP.points()
    rows_at_kill, t0 = 0, time.time()
    try:
        while time.time() - t0 < 120 and proc.poll() is None:
            time.sleep(0.02)
            if db.exists():
                try:
                    with sqlite3.connect(db) as conn:
                        rows_at_kill = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:     # the file is being created
                    continue
            if rows_at_kill >= 2:
                break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    _gone, alive = psutil.wait_procs(children, timeout=30)     # the workers leave with the driver
    for p in alive:
        p.kill()
    assert children and not alive, "worker processes outlived the killed driver"
    assert 2 <= rows_at_kill < len(points), "the sweep was not killed midway"

    r = cli.invoke(app, ["reproduce", "selftest-sleep", "--scheduler", scheduler, "--db", str(db),
                         "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert f"{len(points)} points" in r.output and "done already" in r.output
    with sqlite3.connect(db) as conn:
        counts = conn.execute("SELECT COUNT(*) FROM results GROUP BY experiment, point, seed").fetchall()
    conn.close()
    assert len(counts) == len(points) and {c for (c,) in counts} == {1}
    with Store(db) as resumed:
        assert all(r.status == "done" for r in resumed.results())
        got = {(json.dumps(r.point, sort_keys=True), r.seed): _without_pid(r.records) for r in resumed.results()}
    want = {(json.dumps(p, sort_keys=True), s): _without_pid(_selftest.value({**p, "sleep": 0.0, "seed": s}))
            for p, s in points}
    assert got == want and len(got) == len(points)
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html and "Feller (1968)" in html


# -- report and export ----------------------------------------------------------------------------

def _fake_rbm_results(store):
    """Stored rows shaped like the RBM experiments' records (no training: the report only)."""
    ll = {"ais_test_ll": -87.0, "ais_test_ll_lower": -87.5, "ais_test_ll_upper": -86.5, "raise_test_ll": -88.0,
          "ais_test_ll_same_examples": -87.2, "tap2_test_ll": -85.0, "tap3_test_ll": -85.5, "train_seconds": 1.0}
    for model, method, k in (("cd25-500", "cd", 25), ("pcd-500", "pcd", 1)):
        point = {"model": model, "data": "mnist", "hidden": 500, "method": method, "k": k}
        store.put(PointResult("rbm-mnist-likelihood", point, 0, "done", records=[dict(ll)]))
    err = {"exact_test_ll": -160.0, "ais_test_ll_error": 0.1, "raise_test_ll_error": -0.2,
           "tap2_test_ll_error": 1.0, "tap3_test_ll_error": 1.5, "train_seconds": 2.0}
    for seed in (0, 1):
        store.put(PointResult("rbm-small-exact", {"data": "mnist", "hidden": 20, "method": "pcd"}, seed,
                              "done", records=[dict(err, exact_test_ll=-160.0 - seed)]))


def test_report_png_html_markdown_with_sources(tmp_path):
    db = tmp_path / "r.sqlite"
    _exp("t-report", {"x": [1, 2]}, anchors=[Anchor("value", 0.5, "half", source="Doe & Roe (1999), eq. 7",
                                                    where={"kind": "a"})],
         plot=_selftest.plot_value, table=["value"])
    _exp("t-badplot", {"x": [1]}, plot=lambda records, fig: 1 / 0)
    with Store(db) as store:
        for name, xs in (("t-report", (1, 2)), ("t-badplot", (1,))):
            for x in xs:
                for seed in (0, 1):
                    store.put(PointResult(name, {"x": x}, seed, "done", records=_selftest.value({"x": x, "seed": seed}),
                                          env={"git_commit": "abc123", "device": "cpu (test)"}))
        store.put(PointResult("t-report", {"x": 3}, 0, "failed", error="RuntimeError: boom"))
        store.put(PointResult("unregistered", {"y": 1}, 0, "done", records=[{"z": 1.0}]))
        _fake_rbm_results(store)
    files = make_report(db, tmp_path / "rep")
    assert {p.name for p in files.plots} == {"t-report.png", "rbm-mnist-likelihood.png", "rbm-small-exact.png"}
    for p in files.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    html = files.html.read_text()
    md = files.markdown.read_text()
    assert html.count("data:image/png;base64,") == 3 and "<img" in html and 'src="rep' not in html
    for text in ("Doe &amp; Roe (1999), eq. 7", "RuntimeError: boom", "abc123", "The plot failed: ZeroDivisionError",
                 "-86.34", "Salakhutdinov &amp; Murray (2008)", "[unverified", "-165 to -150", "unregistered"):
        assert text in html, text
    for text in ("Doe & Roe (1999), eq. 7", "![t-report](t-report.png)", "| x | kind | value | seeds |",
                 "| CD25, 500 hidden units", "-87.00", "k=3): the full variant measures it: run without --quick",
                 "-160.50 ± 0.71 (n=2)"):
        assert text in md, text


def test_store_refuses_foreign_and_non_sqlite_files_and_reads_read_only(tmp_path):
    from thermolearn.errors import StoreError
    from thermolearn.experiments.store import APPLICATION_ID, inspect, open_store

    text = tmp_path / "notes.sqlite"
    text.write_bytes(b"not a database at all\n" * 10)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    for path, message in ((text, "not an SQLite database"), (other, "another program's SQLite database")):
        before = path.read_bytes()
        for readonly in (False, True):
            with pytest.raises(StoreError, match=message):
                Store(path, readonly=readonly)
        assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["notes.sqlite", "other.sqlite"]
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    # an empty file becomes a results database, marked in its header from the first write on
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert inspect(empty) == "empty"
    with Store(empty) as store:
        assert inspect(empty) == "results"
        assert int.from_bytes(empty.read_bytes()[68:72], "big") == APPLICATION_ID
        store.put(PointResult("e", {"x": 1}, 0, "done", records=[{"v": 1}]))
        with open_store(empty) as reader:                 # while the writer is open (WAL shared)
            assert reader.experiments() == ["e"]
    data = empty.read_bytes()
    with open_store(empty) as reader:
        assert reader.results()[0].records == [{"v": 1}]
        with pytest.raises(StoreError, match="read-only"):
            reader.put(PointResult("e", {"x": 2}, 0, "done", records=[]))
        with pytest.raises(ValueError, match="experiment: 'nope' not in .*stored: e"):
            reader.export_csv(experiment="nope")
    assert empty.read_bytes() == data and not (tmp_path / "empty.sqlite-wal").exists()


# -- the real RBM experiment, one quick point, no Dask ------------------------------------------

def test_rbm_small_exact_quick_point(restore_threads):
    from thermolearn.experiments.ebm import rbm_small_exact
    from thermolearn.experiments.runner import limit_threads

    point, seed = next((p, s) for p, s in rbm_small_exact.EXPERIMENT.points(quick=True)
                       if p["method"] == "pcd" and s == 0)
    limit_threads(1)
    t0 = time.perf_counter()
    (rec,) = rbm_small_exact.run({**point, "seed": seed})
    assert time.perf_counter() - t0 < 60
    assert -40 < rec["exact_test_ll"] < -10
    assert abs(rec["ais_test_ll_error"]) < 6 * rec["ais_stderr"] + 0.05
    assert abs(rec["raise_test_ll_error"]) < 1.0 and abs(rec["tap2_test_ll_error"]) < 5.0
    json.dumps(plain_records([rec]))


def test_listing_experiments_and_a_point_without_torch_do_not_load_torch():
    code = ("import sys; from thermolearn.experiments.registry import all_experiments; "
            "names = [e.name for e in all_experiments()]; "
            "from thermolearn.experiments import _selftest; from thermolearn.experiments.runner import execute; "
            "out = execute(_selftest.value, {'x': 1}, 0); assert out['status'] == 'done', out; "
            "print(len(names), 'torch' in sys.modules, out['env']['torch'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    count, loaded, version = out.split()
    assert int(count) >= 7 and loaded == "False" and version == torch.__version__


def test_table_headers_from_a_dict_and_compact_numbers(tmp_path):
    from thermolearn.experiments.registry import table_headers
    from thermolearn.experiments.report import fmt, mean_sd

    assert table_headers(["a", "b"]) == {"a": "a", "b": "b"}
    for bad in ({"a": ""}, {"": "x"}, ["a", "a"], "a"):
        with pytest.raises((ValueError, TypeError), match="table"):
            table_headers(bad)
    assert [fmt(x) for x in (1234567.0, -86.3412, 0.070712, 3e-5, 0.0, 12, 3 * 10**7)] == \
        ["1.23e6", "-86.34", "0.0707", "3.00e-5", "0", "12", "3.00e7"]
    assert [mean_sd(m, sd) for m, sd in ((0.0879, 0.092), (-160.5, 0.707), (4.02, 1.98), (-17.76, 0.066),
                                          (1234.4, 12.3), (2.0, 0.0))] == \
        ["0.088 ± 0.092", "-160.50 ± 0.71", "4.0 ± 2.0", "-17.76 ± 0.066", "1234 ± 12", "2.00 ± 0"]
    _exp("t-headers", {"x": [1, 2], "sleep": [0.0]}, seeds=[0, 1],
         table={"sleep": "pause (s)", "value": "value v (units)", "kind": "record kind"})
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for x in (1, 2):
            for seed in (0, 1):
                store.put(PointResult("t-headers", {"x": x, "sleep": 0.0}, seed, "done",
                                      records=_selftest.value({"x": x, "sleep": 0.0, "seed": seed})))
    md = make_report(db, tmp_path / "rep").markdown.read_text()
    # x varies: shown under its own name; sleep does not vary but the table names it
    assert "| x | pause (s) | record kind | value v (units) | seeds |" in md
    v = [_selftest.deterministic_value(1, s) for s in (0, 1)]
    assert f"| 1 | 0 | a | {mean_sd(float(np.mean(v)), float(np.std(v, ddof=1)))} | 2 |" in md


def test_plot_styles_are_distinct_and_stable():
    from thermolearn.experiments.plotting import CYCLE, axis_label, fit_label, style, styles

    names = [f"s{i}" for i in range(len(CYCLE))]
    look = styles(names + ["s0"])
    assert list(look) == names
    assert len({s["color"] for s in look.values()}) == len(CYCLE)
    assert len({s["marker"] for s in look.values()}) == len(CYCLE)
    many = styles([f"t{i}" for i in range(3 * len(CYCLE))])
    assert len({(s["color"], s["marker"]) for s in many.values()}) == 3 * len(CYCLE)
    assert style("rsgd", ["sgd", "rsgd"]) == styles(["sgd", "rsgd"])["rsgd"] != style("sgd", ["sgd", "rsgd"])
    with pytest.raises(ValueError, match="name"):
        style("sa", ["sgd"])
    assert axis_label("time", "s") == "time (s)" and axis_label("alpha") == "alpha"
    assert fit_label("y = a + b N", a=1.9312, b=0.05741) == "fit y = a + b N: a = 1.93, b = 0.0574"


def test_anchor_sources_name_a_paper_or_the_measuring_command():
    ok = ["Salakhutdinov & Murray (2008), Table 2", "measured here: python benchmarks/rsa_scaling.py --seeds 0-11",
          "Measured here with `thermolearn reproduce perceptron-capacity`"]
    for source in ok:
        assert Anchor("v", 1.0, "label", source=source).source == source      # shown as given
    bad = ["", "measured for the spec", "notes/replicas.md, 'fBP'", "measured here", "a textbook", None]
    for source in bad:
        with pytest.raises(ValueError, match="^source: "):
            Anchor("v", 1.0, "label", source=source)
    # every registered experiment's anchors pass (they are checked when created)
    assert all(isinstance(a, Anchor) for e in all_experiments(include_hidden=True) for a in e.anchors)

"""Summary of a deep-mnist-flatness sweep: final test error and local energy per trainer.

    thermolearn reproduce deep-mnist-flatness --db runs/deep.sqlite     # the sweep (resumable)
    python benchmarks/deep_flatness_summary.py runs/deep.sqlite

Reads the finished points of the experiment from the results database and prints, per model,
trainer and budget, the mean and standard deviation over seeds of the last checkpoint's test
error (the center for replicated SGD and elastic averaging), the ensemble's test error
(replicated SGD), the training error on the fixed subset, the local energy (training error after
multiplicative weight noise of size sigma) and its rise over the unperturbed error, and the mean
squared replica-center distance per parameter.
"""

from __future__ import annotations

import argparse
import json
import sqlite3

import numpy as np


def _ms(values) -> str:
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return "-"
    return f"{100 * v.mean():.2f}±{100 * v.std(ddof=1 if v.size > 1 else 0):.2f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("db")
    args = p.parse_args()
    rows = sqlite3.connect(args.db).execute(
        "select point, seed, records from results where experiment = 'deep-mnist-flatness' "
        "and status = 'done'").fetchall()
    groups: dict = {}
    for point, _seed, records in rows:
        pt, last = json.loads(point), json.loads(records)[-1]
        groups.setdefault((pt["data"], pt["model"], pt["trainer"], pt["budget"]), []).append(last)
    sig = ["0.1", "0.3", "0.5"]
    print("percent, mean±sd over seeds, at the end of training (local_<s>: training error after "
          "multiplicative noise sigma = s; rise: local_0.5 minus the noise-free training error)")
    print(f"{'data':6} {'model':4} {'trainer':12} {'budget':>6} {'n':>2} {'test':>11} {'ensemble':>11} "
          f"{'train':>11} " + " ".join(f"{'local_' + s:>11}" for s in sig) + f" {'rise_0.5':>11} {'distance':>9}")
    for (data, model, trainer, budget), recs in sorted(groups.items()):
        rise = [r["local_error_0.5"] - r["local_error_0"] for r in recs]
        dist = [r["distance"] for r in recs if r["distance"] is not None]
        print(f"{data:6} {model:4} {trainer:12} {budget:6d} {len(recs):2d} "
              f"{_ms(r['test_error'] for r in recs):>11} {_ms(r['ensemble_test_error'] for r in recs):>11} "
              f"{_ms(r['train_error'] for r in recs):>11} "
              + " ".join(f"{_ms(r['local_error_' + s] for r in recs):>11}" for s in sig)
              + f" {_ms(rise):>11} {np.mean(dist) if dist else float('nan'):9.2e}")


if __name__ == "__main__":
    main()

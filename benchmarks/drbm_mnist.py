"""MNIST test error of the classification RBM trained generatively, discriminatively and by the
hybrid objective (Larochelle & Bengio 2008), with early stopping on the last 10,000 training images.

    python benchmarks/drbm_mnist.py                              # the paper's settings (days on 2 cores)
    python benchmarks/drbm_mnist.py --objectives discriminative --hidden-discriminative 500 \
        --lr-discriminative 0.5 --batch-size 10 --epochs 60 --threads 1 --out drbm.jsonl
    python benchmarks/drbm_mnist.py --report drbm.jsonl          # the table of the runs in the file

Batches of 10 with 10 times the paper's online learning rate take, to first order, the same step
per example as the paper's online updates, several times faster on a CPU.

Defaults are the settings the experiment ``drbm-mnist`` uses for its full variant (the paper's
hidden sizes and learning rates, [unverified]); ``--hidden-*``, ``--lr-*``, ``--epochs`` and
``--patience`` shrink a run to the time at hand. Every epoch appends one JSON line (training
loss, validation and test error) to ``--out``, so a run that is stopped still says where it
stood; a finished run appends a ``"result"`` line, and running again with the same settings
skips it (resumable per run). The published test errors are printed beside the measured ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from thermolearn.experiments.ebm.drbm_mnist import FULL_GRID, OBJECTIVE_NAMES, PUBLISHED, measure

PAPER_SETTINGS = {g["objective"][0]: {k: v[0] for k, v in g.items()} for g in FULL_GRID}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objectives", default="generative,discriminative,hybrid",
                    help="comma-separated subset of generative, discriminative, hybrid")
    for o, s in PAPER_SETTINGS.items():
        ap.add_argument(f"--hidden-{o}", type=int, default=s["hidden"], help=f"hidden units ({s['hidden']})")
        ap.add_argument(f"--lr-{o}", type=float, default=s["lr"], help=f"learning rate ({s['lr']})")
    ap.add_argument("--alpha", type=float, default=PAPER_SETTINGS["hybrid"]["alpha"], help="hybrid weight")
    ap.add_argument("--epochs", type=int, default=200, help="epoch cap (200)")
    ap.add_argument("--patience", type=int, default=10, help="epochs without a better validation error (10)")
    ap.add_argument("--batch-size", type=int, default=PAPER_SETTINGS["discriminative"]["batch_size"],
                    help="rows per update (1: online, as the full variant)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="JSON lines, appended to (and read to resume)")
    ap.add_argument("--report", type=Path, nargs="*", default=None,
                    help="only print the table of the runs in these JSON-lines files")
    args = ap.parse_args(argv)
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    bad = [o for o in objectives if o not in PAPER_SETTINGS]
    if bad:
        ap.error(f"--objectives: expected generative, discriminative or hybrid, got {', '.join(bad)}")
    args.objectives = objectives
    return args


def point(args, objective) -> dict:
    return {"data": "mnist", "objective": objective, "hidden": getattr(args, f"hidden_{objective}"),
            "lr": getattr(args, f"lr_{objective}"), "alpha": args.alpha if objective == "hybrid" else 0.0,
            "epochs": args.epochs, "patience": args.patience, "batch_size": args.batch_size, "seed": args.seed}


def read_lines(paths):
    rows = []
    for path in paths:
        if path is not None and Path(path).is_file():
            rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows


def report(rows) -> None:
    """Finished runs, and the last epoch of unfinished ones (the error at the best validation epoch)."""
    print(f"{'objective':24s} {'hidden':>6s} {'lr':>7s} {'epochs':>6s} {'kept':>5s} {'valid %':>8s} "
          f"{'test %':>7s} {'published %':>12s}")
    done = {json.dumps(r["point"], sort_keys=True) for r in rows if r["kind"] == "result"}
    for r in rows:
        p = r["point"]
        key = json.dumps(p, sort_keys=True)
        if r["kind"] == "result":
            epochs, kept, valid, test, note = r["epochs_run"], r["best_epoch"], r["valid_error"], r["test_error"], ""
        elif r["kind"] == "best" and key not in done and r is _last_best(rows, key):
            epochs, kept, valid, test, note = r["step"], r["best_epoch"], r["valid_error"], r["test_error"], \
                "  (unfinished: best epoch so far)"
        else:
            continue
        print(f"{OBJECTIVE_NAMES[p['objective']]:24s} {p['hidden']:6d} {p['lr']:7g} {epochs:6d} {kept:5d} "
              f"{100 * valid:8.2f} {100 * test:7.2f} {100 * PUBLISHED[p['objective']]:12.2f}{note}")
    print("published: Larochelle & Bengio (2008), ICML, Table 1 [unverified]")


def _last_best(rows, key):
    best = [r for r in rows if r["kind"] == "best" and json.dumps(r["point"], sort_keys=True) == key]
    return best[-1] if best else None


def main(argv=None) -> int:
    args = parse(argv)
    if args.report is not None:
        report(read_lines(args.report))
        return 0
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    rows = read_lines([args.out])
    done = {json.dumps(r["point"], sort_keys=True) for r in rows if r["kind"] == "result"}
    out = None if args.out is None else open(args.out, "a", buffering=1)

    def emit(row):
        print(json.dumps(row), flush=True)
        if out is not None:
            out.write(json.dumps(row) + "\n")

    results = [r for r in rows if r["kind"] == "result"]
    for objective in args.objectives:
        p = point(args, objective)
        if json.dumps(p, sort_keys=True) in done:
            print(f"# {objective}: already in {args.out}, skipped", file=sys.stderr)
            continue
        state = {"valid": float("inf")}

        def on_epoch(record, p=p, state=state):
            emit({"kind": "epoch", "point": p, **record})
            if record["valid_error"] < state["valid"]:     # the epoch train_class_rbm will keep
                state.update(valid=record["valid_error"], epoch=record["step"], test=record["test_error"])
            emit({"kind": "best", "point": p, "step": record["step"], "best_epoch": state["epoch"],
                  "valid_error": state["valid"], "test_error": state["test"]})

        t0 = time.perf_counter()
        r = measure(p, on_epoch=on_epoch)
        row = {"kind": "result", "point": p, **r, "wall_seconds": time.perf_counter() - t0}
        emit(row)
        results.append(row)
    if out is not None:
        out.close()
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

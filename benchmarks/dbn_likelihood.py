"""Run the points of the dbn-rg-flow experiment in this process and print its figures.

    python benchmarks/dbn_likelihood.py --quick               # digits, well under a minute
    python benchmarks/dbn_likelihood.py --out dbn-mnist        # MNIST 784-500-2000 and 784-16-16

Prints, per model, the test bound (AIS ± s.e., exact where feasible), the exact DBN test
log-likelihood where feasible, the first RBM's test log-likelihood and the per-layer free
energies per unit (train / held-out ± s.e.); writes the records (records.json) and the
experiment's figure (dbn-rg-flow.png) into --out. No Dask, no results database: the same
``run`` and ``plot`` as ``thermolearn reproduce dbn-rg-flow``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the digits variant")
    ap.add_argument("--out", type=Path, default=Path("dbn-rg-flow-out"), help="folder for records.json and the PNG")
    ap.add_argument("--model", action="append", help="only these models (repeatable)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter of every point (e.g. --set epochs=20,10 --set ais_betas=5000); "
                         "the records then carry the value used")
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure from --out/records.json")
    args = ap.parse_args(argv)

    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from thermolearn.experiments.ebm import dbn_rg_flow as exp

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    records = json.loads((args.out / "records.json").read_text()) if args.plot_only else []
    for point, seed in [] if args.plot_only else exp.EXPERIMENT.points(quick=args.quick):
        if args.model and point["model"] not in args.model:
            continue
        point = {**point, **dict(_override(kv) for kv in args.set)}
        t0 = time.perf_counter()
        (rec,) = exp.run({**point, "seed": seed})
        rec = {**point, "seed": seed, **rec, "point_seconds": time.perf_counter() - t0}
        records.append(rec)
        (args.out / "records.json").write_text(json.dumps(records))
        _print(rec)
    for rec in records if args.plot_only else []:
        _print(rec)
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    exp.plot(records, fig)
    fig.savefig(args.out / "dbn-rg-flow.png", dpi=110)
    print(f"wrote {args.out / 'records.json'} and {args.out / 'dbn-rg-flow.png'}")


def _override(text):
    key, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def _print(r):
    def f(key, digits=2):
        return "n/a" if key not in r else f"{r[key]:.{digits}f}"

    print(f"== {r['model']} ({r['data']}, {r['sizes']}, {r['method']}-{r['k']}, epochs {r['epochs']}, "
          f"seed {r['seed']}): train {r['train_seconds']:.0f} s, evaluation {r['eval_seconds']:.0f} s")
    print(f"   test bound, AIS: {f('bound_ais_test')} ± {f('bound_ais_test_stderr', 3)} "
          f"(samples {f('bound_ais_test_sample_stderr', 3)}, log Z {f('log_z_top_ais_stderr', 3)})")
    print(f"   test bound, exact: {f('bound_exact_test')}; exact DBN test LL: {f('log_p_exact_test')}; "
          f"gap {f('bound_gap_test', 3)}; AIS - exact bound {f('bound_ais_error', 3)}")
    print(f"   RBM 1 alone, test LL: {f('rbm1_test_ll')}; bound - RBM 1: {f('bound_minus_rbm1')}")
    for k in range(1, r["layers"] + 1):
        print(f"   layer {k}: F per unit train {f(f'free_energy_train_per_unit_{k}', 4)} "
              f"± {f(f'free_energy_train_per_unit_sem_{k}', 4)}, held-out {f(f'free_energy_test_per_unit_{k}', 4)} "
              f"± {f(f'free_energy_test_per_unit_sem_{k}', 4)}; F train {f(f'free_energy_train_{k}')}, "
              f"held-out {f(f'free_energy_test_{k}')}; log Z {f(f'log_z_{k}')}; "
              f"LL train {f(f'log_likelihood_train_{k}')}, held-out {f(f'log_likelihood_test_{k}')}")


if __name__ == "__main__":
    main()

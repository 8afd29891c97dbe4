"""Time to solution against N: replicated simulated annealing against independent annealing.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/rsa_scaling.py            # a few minutes, 1 core
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/rsa_scaling.py --Ns 51 101 --seeds 2

Binary perceptron, random labels, fixed load alpha (default 0.5). For every N and problem seed
the same problem is solved by

* replicated: y = 5 coupled replicas, gamma = 1 growing by 1 + rate/N per accepted move;
* independent: the same 5 replicas with gamma = 0 (5 plain SA runs in parallel, stopped when
  any solves),

both with beta = 1 growing by 1 + rate/N per accepted move (rate 0.01), restarted from fresh
weights after ``patience`` (1000) sweeps of N * y proposals without a new lowest energy, until a
solution or ``budget`` (1e8) proposals in all (then the point is a failure). Default: N = 51..601,
12 problem seeds. The protocol, the records and the fits are those
of the registered experiment "rsa-scaling" (src/thermolearn/experiments/rsa_scaling.py).

Printed: one line per run, the table per (method, N) -- seeds solved, median proposals and
seconds to solution (failures count as infinite), geometric mean over the solved -- and, per
method, the least-squares fits of the median proposals,

    log t = a + b log N  (polynomial)        log t = a + c N  (exponential),

with the root-mean-square residuals and the better of the two, over all N and over N >= 151
(small N carry start-up effects), and the local slopes between consecutive N. ``--json FILE``
also writes the records.
"""

from __future__ import annotations

import argparse
import json
import math
import time


def main():
    from thermolearn.experiments.binary.rsa_scaling import (
        FULL_NS,
        METHODS,
        PROTOCOL,
        fits_by_method,
        run,
        summarize,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--Ns", type=int, nargs="+", default=FULL_NS)
    p.add_argument("--seeds", type=int, default=12, help="problem seeds 0..seeds-1 per N")
    p.add_argument("--alpha", type=float, default=PROTOCOL["alpha"])
    p.add_argument("--replicas", type=int, default=PROTOCOL["replicas"])
    p.add_argument("--beta", type=float, default=PROTOCOL["beta"])
    p.add_argument("--gamma", type=float, default=PROTOCOL["gamma"], help="initial coupling (replicated)")
    p.add_argument("--rate", type=float, default=PROTOCOL["rate"],
                   help="beta and gamma grow by 1 + rate/N per accepted move")
    p.add_argument("--patience", type=int, default=PROTOCOL["patience"],
                   help="sweeps without a new lowest energy before a restart")
    p.add_argument("--budget", type=int, default=PROTOCOL["budget"], help="proposals per point, all attempts")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--fit-min-N", type=int, default=151, help="second set of fits on N >= this only")
    p.add_argument("--json", default=None, help="write the records to this file")
    args = p.parse_args()

    print(f"perceptron, alpha={args.alpha}, y={args.replicas}, beta0={args.beta}, gamma0={args.gamma} "
          f"(replicated) / 0 (independent), rate={args.rate}/N per accepted move, patience="
          f"{args.patience} sweeps, budget={args.budget:.3g} proposals per point", flush=True)
    records = []
    t_start = time.perf_counter()
    for N in args.Ns:
        for seed in range(args.seeds):
            for method in args.methods:
                params = {"N": N, "method": method, "alpha": args.alpha, "replicas": args.replicas,
                          "beta": args.beta, "gamma": args.gamma, "rate": args.rate,
                          "patience": args.patience, "budget": args.budget, "seed": seed}
                rec = {**params, **run(params)[0]}
                records.append(rec)
                print(f"  N={N:4d} M={rec['M']:4d} seed={seed} {method:<11} "
                      f"{'solved' if rec['solved'] else 'FAILED'} moves={rec['moves']:.3e} "
                      f"attempts={rec['attempts']:3d} {rec['seconds']:6.2f} s", flush=True)
    total = time.perf_counter() - t_start

    summary = summarize(records)
    print(f"\n{'method':<12} {'N':>5} {'solved':>7} {'median moves':>13} {'median s':>9} {'geomean solved':>15}")
    for s in summary:
        print(f"{s['method']:<12} {s['N']:>5} {s['solved']:>3}/{s['seeds']:<3} {s['median_moves']:>13.3e} "
              f"{s['median_seconds']:>9.3g} {s['geomean_moves_solved']:>15.3e}")
    failures = [r for r in records if not r["solved"]]
    print(f"\nfailures (budget {args.budget:.3g} proposals spent): {len(failures)}"
          + "".join(f"\n  {r['method']} N={r['N']} seed={r['seed']} lowest energy {r['energy']}"
                    for r in failures))
    for min_N in (0, args.fit_min_N):
        print(f"\nfits of the median proposals, {'all N' if min_N == 0 else f'N >= {min_N}'} "
              f"(natural logs; infinite medians are left out):")
        for method, f in fits_by_method(summary, min_N).items():
            if method not in args.methods:
                continue
            (ap, b, rp), (ae, c, re) = f["poly"], f["exp"]
            print(f"  {method:<12} points={f['n']}  polynomial: log t = {ap:.2f} + {b:.2f} log N (rms {rp:.3f})"
                  f"   exponential: log t = {ae:.2f} + {c:.4f} N (rms {re:.3f})   better: {f['better']}")
    # local slopes between consecutive finite medians: d log t / d log N and d log t / d N
    print("\nlocal slopes between consecutive N (d log t / d log N ; d log t / d N):")
    for method in args.methods:
        rows = [s for s in summary if s["method"] == method and math.isfinite(s["median_moves"])]
        ratio = [(r0["N"], r1["N"], math.log(r1["median_moves"] / r0["median_moves"]))
                 for r0, r1 in zip(rows, rows[1:])]
        parts = [f"{n0}-{n1}: {lr / math.log(n1 / n0):.2f} ; {lr / (n1 - n0):.4f}" for n0, n1, lr in ratio]
        print(f"  {method:<12} " + ",  ".join(parts))
    print(f"\ntotal {total:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                       for r in records], fh, indent=1)


if __name__ == "__main__":
    main()

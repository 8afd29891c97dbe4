"""Hopfield capacity study: where retrieval collapses, at each size and temperature.

    python benchmarks/hopfield_capacity.py [--N 250 500 1000 2000] [--T 0 0.1 0.2 0.3 0.4]
        [--noise 0] [--seeds 3] [--alphas ...] [--targets 50] [--sweeps 100] [--json out.json]
        [--png out.png]

Runs the points of the ``hopfield-capacity`` experiment (its ``run`` function, so the same
protocol: P = round(alpha N) random patterns, up to ``targets`` of them as starts with a fraction
``noise`` of the spins flipped; T = 0 asynchronous dynamics to a fixed point, T > 0 Glauber
sweeps with the overlap averaged over the last half; retrieved when the overlap exceeds 0.9 m_0(T),
m_0 = tanh(m_0 / T)). Prints, per (N, T, noise), the fraction retrieved at each alpha and the
load alpha_50 where it first falls below one half (linear interpolation), beside the
replica-symmetric capacity alpha_M(T) solved by thermolearn.ebm.hopfield.rs_capacity (Amit,
Gutfreund & Sompolinsky 1985, 1987 [unverified]: alpha_c ~ 0.138 at T = 0).

    python benchmarks/hopfield_capacity.py --mixture [--N 1000 4000] [--seeds 4]

instead follows the symmetric 3-mixture sign(xi1 + xi2 + xi3) of P = 3 patterns under 100 Glauber
sweeps at T = 0.1 ... 0.6 (``seeds`` runs each) and prints the mean of the sorted final
|overlaps|: (0.5, 0.5, 0.5) while the mixture holds, (1, 0, 0) once it has fallen to a pattern.
The mean-field stability limit of the symmetric 3-mixture is T ~ 0.46 (Amit, Gutfreund &
Sompolinsky 1985, PRA 32, 1007).
"""

from __future__ import annotations

import argparse
import json
import time


def main():
    from thermolearn.experiments.ebm import hopfield_capacity as hc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, nargs="+", default=[250, 500, 1000, 2000])
    p.add_argument("--T", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4])
    p.add_argument("--noise", type=float, nargs="+", default=[0.0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--alphas", type=float, nargs="+", default=hc.FULL_ALPHAS)
    p.add_argument("--targets", type=int, default=50)
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--json", default=None, help="write the records here")
    p.add_argument("--png", default=None, help="draw the experiment's figure here")
    p.add_argument("--mixture", action="store_true", help="the 3-mixture study instead")
    args = p.parse_args()
    if args.mixture:
        return mixture(args.N if args.N != [250, 500, 1000, 2000] else [1000, 4000], args.seeds)

    records = []
    t0 = time.perf_counter()
    for N in args.N:
        for T in args.T:
            for noise in args.noise:
                for alpha in args.alphas:
                    for seed in range(args.seeds):
                        params = {"N": N, "alpha": alpha, "T": T, "noise": noise, "targets": args.targets,
                                  "max_iter": args.max_iter, "sweeps": args.sweeps, "seed": seed}
                        (rec,) = hc.run(params)
                        records.append({**params, **rec})
    seconds = time.perf_counter() - t0

    print(f"seeds 0..{args.seeds - 1}, {args.targets} targets per network, {args.sweeps} Glauber sweeps (T > 0); "
          f"{seconds:.0f} s in all")
    ret = hc.curves(records, "retrieved")
    ovl = hc.curves(records, "overlap")
    cap = {r["T"]: r["rs_alpha_m"] for r in records}
    print("fraction retrieved (mean final overlap) at alpha = " + " ".join(f"{a:g}" for a in args.alphas))
    print(f"{'N':>5} {'T':>4} {'noise':>5} {'alpha_50':>9} {'RS alpha_M':>10}   per alpha")
    for (N, T, noise), (xs, ys) in ret.items():
        a50 = hc.collapse_load(xs, ys)
        cells = " ".join(f"{y:.2f}({m:.2f})" for y, m in zip(ys, ovl[(N, T, noise)][1]))
        a50_text = f"{a50:.3f}" if a50 is not None else (f"<{xs[0]:g}" if ys[0] < 0.5 else f">{xs[-1]:g}")
        print(f"{N:>5} {T:>4g} {noise:>5g} {a50_text:>9} {cap[T]:>10.4f}   {cells}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(18, 5.5))
        hc.plot(records, fig)
        fig.tight_layout()
        fig.savefig(args.png, dpi=90)


def mixture(sizes, seeds: int) -> None:
    from thermolearn.ebm import Hopfield

    print(f"3-mixture of P = 3 patterns, 100 Glauber sweeps, {seeds} runs per (N, T): mean sorted |overlaps|")
    for N in sizes:
        net = Hopfield.random(N, 3, seed=0)
        start = net.mixture_state((0, 1, 2)).repeat(seeds, 1)
        for T in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
            r = net.glauber(start, beta=1.0 / T, sweeps=100, seed=1)
            m = r.overlaps.abs().sort(1, descending=True).values.mean(0)
            fell = int((r.overlaps.abs().max(1).values > 0.8).sum())
            print(f"N = {N:>5}  T = {T:.1f}  |m| = ({m[0]:.3f}, {m[1]:.3f}, {m[2]:.3f})  "
                  f"fell to a pattern: {fell}/{seeds}")


if __name__ == "__main__":
    main()

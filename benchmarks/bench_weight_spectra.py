"""Weight spectra of whole models: thermolearn.landscape.weight_spectra against WeightWatcher.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_weight_spectra.py [--repeats 3] [--bootstrap 100]

Two models, built here with fixed seeds: an MLP 784-1000-1000-500-10 and a small CNN
(Conv2d 1->32 5x5, Conv2d 32->64 5x5, Linear 1024->256, Linear 256->10, MNIST-shaped). Each is
analysed twice: at PyTorch's default initialisation ("init", Marchenko-Pastur-like spectra) and
with every weight replaced by Student-t entries with 3 degrees of freedom ("heavy", heavy-tailed
spectra, where the power-law alpha is meant to be read).

Timing: WeightWatcher 0.7.7's ``analyze(mp_fit=True, randomize=False, plot=False)`` (defaults
otherwise: pooled convolution slices, its own power-law fitter) against
``weight_spectra(module, bootstrap=0)`` (Marchenko-Pastur fit, spike count, power-law fit with
xmin selection, stable rank, spectral norm), both on the same model, interleaved, ``--repeats``
times each; the medians and their ratio (WW seconds / thermolearn seconds) are printed. The
bootstrap that thermolearn adds (``--bootstrap`` replicates, xmin reselected in each) is timed
separately and is not part of the ratio, since WeightWatcher has no counterpart.

Agreement: per layer, thermolearn's alpha with its bootstrap interval, WeightWatcher's alpha,
|difference|, whether WW's alpha lies inside the interval, both xmins (in thermolearn's units:
eigenvalues of W^T W / N; WW's are rescaled by the ratio of the two lambda_max), thermolearn's
alpha refitted at WW's xmin (which separates a different xmin choice from a different estimator),
and both spike counts. Where they differ: thermolearn's KS distance counts both sides of each
step of the empirical CDF and its tails have at least 10 eigenvalues; WW's KS distance takes one
side and allows shorter tails, and below 20 eigenvalues it switches to a bias-corrected estimator
with a penalised xmin choice; its spike count uses its own Tracy-Widom margin and a kernel-density
MP fit on a rescaled ESD.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import statistics
import time


def build_models():
    import torch
    from torch import nn

    from thermolearn.deep import reset_parameters
    from thermolearn.landscape import mlp

    models = {"MLP 784-1000-1000-500-10": mlp([784, 1000, 1000, 500, 10], seed=0)}
    cnn = nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10))
    models["CNN conv32-conv64-256-10"] = reset_parameters(cnn, seed=1)
    out = {}
    g = torch.Generator().manual_seed(2)
    for name, model in models.items():
        out[(name, "init")] = model
        heavy = copy.deepcopy(model)
        with torch.no_grad():
            for m in heavy.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    # Student-t(3) = z / sqrt(chi^2_3 / 3), from our generator (no global RNG)
                    z = torch.randn((4, *m.weight.shape), generator=g, dtype=torch.float64)
                    t = z[0] / torch.sqrt(z[1:].pow(2).sum(0) / 3.0)
                    m.weight.copy_((0.02 * t).to(m.weight.dtype))
        out[(name, "heavy")] = heavy
    return out


def ww_analyze(model):
    import weightwatcher

    watcher = weightwatcher.WeightWatcher(model=model)
    with contextlib.redirect_stdout(io.StringIO()):          # WW prints notes for small layers
        return watcher.analyze(mp_fit=True, randomize=False, plot=False)


def tl_analyze(model, bootstrap=0, seed=0):
    from thermolearn.landscape.spectra import weight_spectra

    return weight_spectra(model, bootstrap=bootstrap, seed=seed)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each analysis per model")
    p.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates for thermolearn's intervals")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args()

    import torch

    from thermolearn.landscape.spectra import power_law_fit

    torch.set_num_threads(args.threads)
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    import weightwatcher

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); weightwatcher {weightwatcher.__version__}; "
          f"repeats {args.repeats}, bootstrap {args.bootstrap}")
    models = build_models()
    total_ww = total_tl = 0.0
    for (name, weights), model in models.items():
        ww_analyze(model)                                     # warm-up of both (imports, first SVD)
        tl_analyze(model)
        t_ww, t_tl = [], []
        for _ in range(args.repeats):
            s, details = timed(ww_analyze, model)
            t_ww.append(s)
            s, _ = timed(tl_analyze, model)
            t_tl.append(s)
        boot_s, specs = timed(tl_analyze, model, bootstrap=args.bootstrap, seed=0)
        mw, mt = statistics.median(t_ww), statistics.median(t_tl)
        total_ww += mw
        total_tl += mt
        print(f"\n{name}, {weights} weights: WW {mw:.3f} s, thermolearn {mt:.3f} s (bootstrap 0), "
              f"ratio WW/thermolearn {mw / mt:.2f}; thermolearn with bootstrap {args.bootstrap}: {boot_s:.2f} s")
        rows = {str(r["longname"]): r for _, r in details.iterrows()}
        print(f"{'layer':>6} {'N x M x mats':>16} {'alpha':>7} {'95% CI':>15} {'WW alpha':>9} {'|diff|':>7} "
              f"{'in CI':>5} {'xmin':>10} {'WW xmin':>10} {'alpha@WWxmin':>12} {'spikes':>6} {'WW spikes':>9}")
        for spec in specs:
            r = rows.get(spec.name)
            if r is None:
                print(f"{spec.name:>6} {'':>16} {spec.alpha:7.3f}   (not analysed by WW)")
                continue
            ww_alpha = float(r["alpha"])
            scale = float(r["lambda_max"]) / spec.lambda_max              # WW's units / ours
            ww_xmin = float(r["xmin"]) / scale
            inside = spec.alpha_ci_low <= ww_alpha <= spec.alpha_ci_high
            try:
                at_ww = power_law_fit(spec.eigenvalues[spec.eigenvalues > 0], xmin=ww_xmin * (1 - 1e-9),
                                      min_tail=2).alpha
            except ValueError:
                at_ww = float("nan")
            dims = f"{spec.N}x{spec.M}x{spec.n_matrices}"
            ci = f"[{spec.alpha_ci_low:.2f}, {spec.alpha_ci_high:.2f}]"
            print(f"{spec.name:>6} {dims:>16} {spec.alpha:7.3f} {ci:>15} {ww_alpha:9.3f} "
                  f"{abs(spec.alpha - ww_alpha):7.3f} {'yes' if inside else 'no':>5} {spec.xmin:10.4g} "
                  f"{ww_xmin:10.4g} {at_ww:12.3f} {spec.spikes:6d} {int(r['num_spikes']):9d}")
    print(f"\nall models: WW {total_ww:.3f} s, thermolearn {total_tl:.3f} s, ratio WW/thermolearn "
          f"{total_ww / total_tl:.2f} (medians of {args.repeats} interleaved runs, bootstrap 0)")


if __name__ == "__main__":
    main()

"""What the RBM experiments share: load the data, train one RBM, evaluate it by every estimator.

A parameter point names everything the run depends on:

    data            "mnist" (Salakhutdinov & Murray 2008 stochastic binarization, seed 0) or
                    "digits" (scikit-learn 8x8 digits, threshold-binarized, seed-0 split)
    hidden          number of hidden units
    method, k       trainer (cd, pcd, tap2, tap3) and its Gibbs / fixed-point sweeps per update
    probabilities   optional, default False: train on the pixel intensities read as probabilities
                    (the test set stays binarized)
    epochs, batch_size, lr
                    lr decaying linearly to 0 over the epochs, momentum 0.5, weight decay 1e-4
    ais_chains, ais_betas, raise_examples, raise_chains
                    evaluation: forward AIS (chains, "sm08" or a number of betas), reverse AIS
                    on the first raise_examples test examples (raise_chains chains each) with
                    the same ladder, TAP2/TAP3 from 100 training rows
    seed            initialisation, shuffling and sampling (the data binarization keeps seed 0)

The visible biases start at the logit of the training pixel means (Hinton's practical guide).
"""

from __future__ import annotations

import functools

DATA_SEED = 0


@functools.lru_cache(maxsize=4)
def dataset(name: str, probabilities: bool = False):
    """The named dataset, loaded once per process; with ``probabilities`` the pixel intensities
    in [0, 1] instead of the binarized pixels (same split)."""
    from ...data import load_digits, load_mnist

    if name == "mnist":
        return load_mnist(binarize=None if probabilities else "stochastic", seed=DATA_SEED)
    if name == "digits":
        return load_digits(binarize=None if probabilities else "threshold", seed=DATA_SEED)
    raise ValueError(f"data: expected 'mnist' or 'digits', got {name!r}")


def train_and_evaluate(p: dict, checkpoint=None, progress: bool = False) -> dict:
    """Train the RBM of point ``p`` and return one flat record (see evaluate_rbm for the keys)."""
    from ...ebm import RBM, base_rate_bias, evaluate_rbm, train
    from ...schedules import LinearDecay

    ds = dataset(p["data"])
    rbm = RBM(ds.train.shape[1], p["hidden"], seed=p["seed"])
    rbm.visible_bias.copy_(base_rate_bias(ds.train))
    probabilities = bool(p.get("probabilities", False))
    train_rows = dataset(p["data"], probabilities=True).train if probabilities else ds.train
    result = train(rbm, train_rows, method=p["method"], k=p["k"], epochs=p["epochs"], probabilities=probabilities,
                 batch_size=p["batch_size"], lr=LinearDecay(p["lr"], p["epochs"]), momentum=0.5,
                 weight_decay=1e-4, validation=ds.test[:2000], seed=p["seed"], checkpoint=checkpoint,
                 progress=progress)
    res = evaluate_rbm(rbm, ds.train, ds.test, n_chains=p["ais_chains"], n_betas=p["ais_betas"],
                       raise_examples=p["raise_examples"], raise_chains=p["raise_chains"],
                       raise_betas=p["ais_betas"], raise_splits=("test",), tap_orders=(2, 3),
                       seed=p["seed"], progress=progress)
    res["eval_seconds"] = res.pop("seconds")
    last = result.last
    res.update(train_seconds=sum(r["seconds"] for r in result.history),
               final_free_energy_train=last.get("free_energy_train"),
               final_free_energy_valid=last.get("free_energy_valid"),
               final_reconstruction_error=last.get("reconstruction_error"))
    return res

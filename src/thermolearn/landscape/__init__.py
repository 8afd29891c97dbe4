"""Landscape diagnostics of neural networks (torch throughout, CPU or GPU).

* Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017):
  :func:`signal_propagation` (q*, c*, chi_1 and the depth scales of a random network),
  :func:`critical_sigma_w2`, :func:`phase_diagram`, :func:`simulate_random_network` (the same
  measured on a finite network), :func:`critical_init`; :func:`manifold_propagation` (length and
  curvature of a great circle pushed through a random network).
* Hessians of any model, loss and data: :func:`hessian_vector_product`,
  :func:`hessian_eigenvalues` (Lanczos), :func:`hessian_trace` (Hutchinson, Hutch++),
  :func:`hessian_density` (stochastic Lanczos quadrature), :func:`gauss_newton_split` and
  :func:`class_decomposition` (Papyan's class structure of the Gauss-Newton matrix).
* Weight spectra (random matrix theory): :func:`weight_spectra`, :func:`marchenko_pastur_fit`,
  :func:`power_law_fit`.
* Random landscapes: :class:`PSpinGlass`, :func:`pspin_descent`, :func:`find_critical_points`.
* Jamming of the hinge loss: :func:`fit_hinge`, :func:`jamming_scan`.
* MLP model files for the command line: :func:`mlp`, :func:`save_mlp`, :func:`load_mlp`,
  :func:`train_classifier`.

Names are imported lazily so that ``import thermolearn.landscape`` stays cheap.
"""

from .._lazy import lazy_exports

_WHERE = {
    "mlp": "models", "save_mlp": "models", "load_mlp": "models", "train_classifier": "models",
    "ClassifierTraining": "models",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

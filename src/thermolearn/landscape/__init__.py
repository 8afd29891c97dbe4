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
    "signal_propagation": "meanfield", "SignalPropagation": "meanfield", "critical_sigma_w2": "meanfield",
    "phase_diagram": "meanfield", "PhaseDiagram": "meanfield", "simulate_random_network": "meanfield",
    "RandomNetworkSimulation": "meanfield", "critical_init": "meanfield",
    "manifold_propagation": "expressivity", "ManifoldPropagation": "expressivity",
    "hessian_vector_product": "hessian", "hessian_eigenvalues": "hessian", "block_eigenvalues": "hessian",
    "hessian_trace": "hessian", "hessian_density": "hessian", "gauss_newton_split": "hessian",
    "class_decomposition": "hessian", "HessianOperator": "hessian", "GaussNewtonSplit": "hessian",
    "ClassDecomposition": "hessian",
    "HessianEigenvalues": "lanczos", "HessianTrace": "lanczos", "SpectralDensity": "lanczos",
    "lanczos_eigenvalues": "lanczos", "stochastic_trace": "lanczos", "lanczos_quadrature": "lanczos",
    "weight_spectra": "spectra", "LayerSpectrum": "spectra", "marchenko_pastur_fit": "spectra", "MPFit": "spectra",
    "power_law_fit": "spectra", "PowerLawFit": "spectra", "mp_density": "spectra",
    "PSpinGlass": "pspin", "pspin_descent": "pspin", "PSpinDescent": "pspin", "pspin_critical_points": "pspin",
    "PSpinCriticalPoint": "pspin", "pspin_threshold_energy": "pspin",
    "find_critical_points": "critical", "CriticalPoint": "critical", "critical_point_index": "critical",
    "mlp": "models", "save_mlp": "models", "load_mlp": "models", "train_classifier": "models",
    "ClassifierTraining": "models",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

"""Named experiments of thermolearn.ebm, one module each (found by the registry)."""

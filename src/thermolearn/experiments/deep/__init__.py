"""Named experiments of thermolearn.deep, one module each (found by the registry)."""

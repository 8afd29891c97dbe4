"""Named experiments of thermolearn.landscape, one module each (found by the registry)."""

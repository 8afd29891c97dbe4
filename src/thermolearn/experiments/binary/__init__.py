"""Named experiments of thermolearn.binary, one module each (found by the registry)."""

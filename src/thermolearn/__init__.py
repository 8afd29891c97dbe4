"""thermolearn: statistical mechanics of neural-network learning."""

__version__ = "0.1.0"

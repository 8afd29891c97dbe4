"""Lazy package exports: names imported from their submodule on first use (keeps imports cheap)."""

from importlib import import_module


def lazy_exports(package: str, where: dict[str, str]):
    """(__all__, __getattr__, __dir__) for a package whose names live in the given submodules."""
    names = sorted(where)

    def __getattr__(name):
        if name in where:
            return getattr(import_module(f".{where[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return names, __getattr__, __dir__

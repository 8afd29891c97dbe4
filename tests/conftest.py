import pytest


def pytest_collection_modifyitems(config, items):
    """Tests in the files tests/test_*cli*.py carry the ``cli`` marker (``pytest -m cli``)."""
    for item in items:
        name = item.path.name
        if name.startswith("test_") and "cli" in name:
            item.add_marker(pytest.mark.cli)

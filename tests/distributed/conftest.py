import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "torchrun: starts a real 2-rank torchrun job (gloo on 127.0.0.1, about 5-15 s each)",
    )

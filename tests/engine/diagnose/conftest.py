"""Fixtures of the diagnosis tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def quiet_transformers() -> None:
    """transformers' warnings about the tiny random configs (a test module asks for it with
    `pytestmark = pytest.mark.usefixtures("quiet_transformers")`)."""
    from transformers.utils import logging

    logging.set_verbosity_error()

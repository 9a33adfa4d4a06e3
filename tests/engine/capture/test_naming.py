"""Which frames are the user's: torch's and every part of the inspector's are not."""

from __future__ import annotations

import inspect

import torch

import inspector
import inspector.tui
from inspector.engine.capture.naming import is_library_file
from inspector.engine.diagnose import locate


def test_every_part_of_the_inspector_is_library_code() -> None:
    for module in (inspector, inspector.tui, locate):
        assert is_library_file(inspect.getfile(module)), module
    assert is_library_file(inspect.getfile(torch.nn.Linear))
    assert not is_library_file(__file__)


def test_a_call_made_through_the_inspector_names_the_users_line() -> None:
    model = torch.nn.Linear(3, 2)
    t = inspector.trace(model, torch.ones(1, 3))  # trace() itself calls the model
    site = t.calls[0].call_site
    assert site is not None and site.file == __file__, site

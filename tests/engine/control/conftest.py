"""Every Debugger a test here starts is ended with the test: a pass left paused keeps its
hooks on the model, its thread alive and the Ctrl+C guard installed (correctly: Ctrl+C is
what would release it), which later tests would see."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inspector.engine.control.debugger import Debugger, Finished


@pytest.fixture(autouse=True)
def _debuggers_ended(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    started: list[Debugger] = []
    start = Debugger.start

    def tracked(self: Debugger):  # type: ignore[no-untyped-def]
        started.append(self)
        return start(self)

    monkeypatch.setattr(Debugger, "start", tracked)
    yield
    for d in started:
        if d.stepper is not None and not isinstance(d.last, Finished):
            d.quit(abort=True)
        d.join(10)

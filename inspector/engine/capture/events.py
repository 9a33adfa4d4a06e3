"""What passes between the recorder and whoever listens to it (the stepper), and the two
signals the inspector raises: Stop (the debugger quit) and InspectorWarning (it turned off)."""

from __future__ import annotations

from typing import Protocol

from inspector.engine.records import Call, exception_text


class InspectorWarning(UserWarning):
    """Raised as a warning when the inspector turns itself off; the user's run goes on."""


class Listener(Protocol):
    """Receives each call as it starts and ends (the stepper pauses here)."""

    def call_started(self, call: Call) -> None: ...

    def call_finished(self, call: Call) -> None: ...


class GradientListener(Protocol):
    """A listener that also hears each call whose gradient arrived in the backward pass."""

    def gradient_ready(self, call: Call) -> None: ...


class Stop(BaseException):
    """Raised by a listener to end the forward pass now (the user quit the debugger)."""


def stopped(fault: BaseException) -> str:
    """The one warning the inspector gives when a fault turns it off."""
    return (
        f"torch-inspector stopped recording after an internal error "
        f"({exception_text(fault)}); the model runs on unchanged"
    )

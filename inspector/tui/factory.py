"""The one way to build the app: every launcher, the tests and the benchmarks call make_app."""

from __future__ import annotations

from inspector.tui.app import InspectorApp
from inspector.tui.controller import Controller
from inspector.tui.terminal import DEBUG, Frontend


def make_app(
    controller: Controller | None = None, *, title: str = "", frontend: Frontend = DEBUG
) -> InspectorApp:
    """The inspector app over `controller` (None: no program behind it, events are injected).

    Args:
        controller: what the app drives; its `start` is called once the app is mounted,
            with the thread-safe door for the program's events.
        title: shown in the header (the model's class, the script's path).
        frontend: how the app shares the terminal with the program (DEBUG, SCRIPT, SESSION
            from inspector.tui.terminal).
    """
    return InspectorApp(controller, title=title, frontend=frontend)

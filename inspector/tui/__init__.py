"""The terminal UI (Textual): thin widgets over inspector.render, driven by engine events."""

from inspector.tui.app import InspectorApp
from inspector.tui.launch import run_app

__all__ = ["InspectorApp", "run_app"]

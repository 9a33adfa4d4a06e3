"""The terminal UI (Textual): thin widgets over inspector.render, driven by engine events.

factory.make_app    the one way to build the app (launchers, tests, benchmarks)
app                 InspectorApp: state in reactives, watchers push it down to widgets
controller          the Controller protocol (what the app asks of the program) and its
                    implementations; EventRelay, the engine's door into the app
messages            engine events as messages, PassEnd (a finished pass as values)
keys                the key table: BINDINGS, footer, command palette and `?` from it
terminal            Frontend (debug, script, session) and sharing the terminal
calltree, detail, contrib, panels, screens     the widgets and dialogs
launch, script, threaded                       debug(), run SCRIPT, set_trace()/attach()
"""

import os

# Textual repaints at most TEXTUAL_FPS times a second (60 unless set). A debugger answers each
# key with one repaint, so waiting for the next frame was most of a step's latency (p95 ~60
# ms at 60, ~35 ms at 240: bench/step.py). Repaints happen only when something changed.
os.environ.setdefault("TEXTUAL_FPS", "240")

from inspector.tui.app import InspectorApp
from inspector.tui.factory import make_app
from inspector.tui.launch import run_app

__all__ = ["InspectorApp", "make_app", "run_app"]

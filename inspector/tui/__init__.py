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
# key with a repaint, and a step takes two: the status line, painted as soon as the pause
# arrives, then the tree and the call's detail, whose widgets update a moment later and wait
# for the next frame. Waiting for frames was most of a step's latency (bench/step.py, p95:
# ~60 ms at 60, ~35 ms at 240; headless median 8.6 ms at 240, 4.9 ms at 1000; in tmux 17 and
# 12 ms). Repaints happen only when something changed: an idle app paints nothing, and a
# pass running free repaints no more often at 1000 than at 240.
os.environ.setdefault("TEXTUAL_FPS", "1000")

from inspector.tui.app import InspectorApp
from inspector.tui.factory import make_app
from inspector.tui.launch import run_app

__all__ = ["InspectorApp", "make_app", "run_app"]

"""breakpoint() and set_trace() inside a script that `run` runs: they stop in its stepper."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inspector.engine.control.script import ScriptFinished, ScriptRun, running_script_stepper
from inspector.engine.control.stepper import Pause

SCRIPT = """\
import sys
import torch
import inspector
model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
model(torch.ones(1, 2))
{stop}
model(torch.ones(1, 2))
model(torch.ones(1, 2))
"""


@pytest.mark.parametrize("stop", ["breakpoint()", "inspector.set_trace()"])
def test_a_stop_in_the_script_pauses_once_at_the_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    monkeypatch.delenv("PYTHONBREAKPOINT", raising=False)
    script = tmp_path / "s.py"
    script.write_text(SCRIPT.format(stop=stop))
    pauses: list[Pause] = []

    def on_event(event: Pause | ScriptFinished) -> None:
        if isinstance(event, Pause):
            pauses.append(event)
            run.stepper.command("into" if len(pauses) == 1 else "continue")

    run = ScriptRun(str(script), post_mortem=True, on_event=on_event)
    finished = run.run_here()
    assert finished.exit_code == 0, finished.traceback
    # the stop at the next call (pass 2's root), then one step into its first child
    assert [(p.reason, p.call.path, p.pass_index) for p in pauses] == [
        ("breakpoint()", "model", 1),
        ("step", "model.0", 1),
    ]
    assert sys.breakpointhook is sys.__breakpointhook__
    assert running_script_stepper() is None


def test_a_hook_the_user_set_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONBREAKPOINT", raising=False)
    seen: list[str] = []
    monkeypatch.setattr(sys, "breakpointhook", lambda: seen.append("user's"))
    script = tmp_path / "s.py"
    script.write_text(SCRIPT.format(stop="breakpoint()"))
    run = ScriptRun(str(script), post_mortem=True, on_event=lambda event: None)
    assert run.run_here().exit_code == 0
    assert seen == ["user's"]

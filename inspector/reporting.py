"""The non-interactive report: trace a model, print the call table and the findings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from inspector.engine import Trace, trace
from inspector.engine.control.breakpoints import Breakpoint, as_breakpoint, path_matches
from inspector.engine.control.stepper import Pause
from inspector.engine.records import Call
from inspector.render import ContributionBars, DiagnosisPanel, TraceTable, count

PIPED_WIDTH = 120  # columns for output that reaches no terminal (a log, CI), COLUMNS unset


def text_console(stderr: bool = False) -> Console:
    """A console for the text report. Written to a terminal it takes the terminal's width;
    piped (`| tee log`, `> out.txt`) it takes the width of the terminal the command was
    started from, or PIPED_WIDTH when there is none, rather than rich's 80. COLUMNS, when
    set, decides."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if "COLUMNS" not in os.environ and not _is_terminal(stream):
        width = _terminal_width() or PIPED_WIDTH
    return Console(stderr=stderr, width=width)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _terminal_width() -> int | None:
    for fd in (2, 1, 0):
        try:
            if os.isatty(fd):
                return os.get_terminal_size(fd).columns or None
        except OSError:
            continue
    return None


def summary_line(t: Trace) -> Text:
    """`SeedCNN · 3 calls · 265k params · failed: RuntimeError · 1 finding`."""
    root = t.calls[0] if t.calls else None
    parts = [root.type if root is not None else "(no module calls)"]
    parts.append(f"{len(t.calls)} calls")
    if root is not None:
        parts.append(f"{count(root.params)} params")
    text = Text(" · ".join(parts), style="bold")
    if t.error is not None:
        text.append(" · failed: ", style="bold")
        text.append(type(t.error).__name__, style="bold red")
    else:
        text.append(" · ok", style="bold green")
    errors = sum(1 for f in t.findings if f.kind == "error")
    warnings = len(t.findings) - errors
    if t.findings:
        text.append(f" · {errors} error(s), {warnings} warning(s)")
    return text


def report_renderables(t: Trace) -> Iterator[RenderableType]:
    """What the report prints, in order: the summary, the table, each finding."""
    yield summary_line(t)
    for note in t.notes:
        yield Text(f"note: {note}", style="dim")
    yield TraceTable(t.calls)
    for finding in t.findings:
        yield DiagnosisPanel(finding)
    if not t.findings:
        yield Text("No findings.", style="green")


def print_trace(t: Trace, console: Console | None = None) -> None:
    console = console or text_console()
    for renderable in report_renderables(t):
        console.print(renderable)


def contribution_section(
    model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], layer: str, k: int = 10
) -> ContributionBars:
    """The top-k units of `layer` toward the predicted class (gradient x activation)."""
    from inspector.engine.contrib import contributions

    c = contributions(model, *args, layer=layer, **kwargs)
    terms = [(t.index[0], t.value, t.share) for t in c.top(k)]
    return ContributionBars(
        f"contributions of {layer} to {c.target} (gradient x activation, sample 0)", terms
    )


def print_report(
    model: Any,
    *args: Any,
    console: Console | None = None,
    contributions: str | None = None,
    **kwargs: Any,
) -> Trace:
    """Trace `model(*args, **kwargs)` and print it; returns the Trace.

    Args:
        contributions: a layer path: also print its top-10 units toward the predicted class.
    """
    t = trace(model, *args, **kwargs)
    console = console or text_console()
    print_trace(t, console)
    if contributions is not None and t.error is None:
        model_kwargs = {k: v for k, v in kwargs.items() if k not in ("loss_fn", "target", "stats")}
        console.print(contribution_section(model, args, model_kwargs, contributions))
    return t


def log_stop(console: Console, pause: Pause) -> None:
    """One stop, as text: where and why (under torchrun: which rank), a failure explained."""
    from inspector.engine.distributed import rank_label

    where = f"{pause.where} (pass {pause.pass_index + 1})"
    label = rank_label()  # under torchrun every line says which rank wrote it
    console.print(Text(f"torch-inspector{label}: {pause.reason}: {where}", style="bold"))
    if pause.diagnosis is not None:
        console.print(DiagnosisPanel(pause.diagnosis))


def run_headless(
    path: str,
    argv: Iterable[str] = (),
    *,
    breakpoints: Iterable[Breakpoint | str] = (),
    gradients: bool = False,
    console: Console | None = None,
) -> int:
    """`run SCRIPT` with no terminal to draw on (stderr redirected, CI): the script runs in
    this thread as it would alone, and each stop (a breakpoint, a failure) is written to
    stderr as text, a failure with its explanation. Returns the script's exit code."""
    from inspector.engine.control.script import ScriptFinished, ScriptRun, hang_view
    from inspector.engine.distributed import rank_prefixed

    console = console or text_console(stderr=True)

    def on_event(event: Pause | ScriptFinished) -> None:
        if not isinstance(event, Pause):
            return
        log_stop(console, event)
        run.stepper.command("continue")  # nobody is there to press a key

    run = ScriptRun(path, argv, breakpoints=breakpoints, post_mortem=True, gradients=gradients,
                    on_event=on_event)  # fmt: skip
    with hang_view(run, lambda text: sys.stderr.write(rank_prefixed(text))):
        finished = run.run_here()
    if finished.traceback:
        sys.stderr.write(rank_prefixed(finished.traceback))
    warn_unmatched(breakpoints, finished.calls)
    return finished.exit_code


def unmatched_patterns(breakpoints: Iterable[Breakpoint | str], calls: Iterable[Call]) -> list[str]:
    """The `--break` patterns no module call matched (the last pass's calls): a typo, or a
    name from another model. Nothing when no module ran at all."""
    calls = list(calls)
    if not calls:
        return []
    patterns = dict.fromkeys(as_breakpoint(b).pattern for b in breakpoints)
    return [
        pattern
        for pattern in patterns
        if pattern != "*" and not any(path_matches(call, pattern) for call in calls)
    ]


def warn_unmatched(breakpoints: Iterable[Breakpoint | str], calls: Iterable[Call]) -> None:
    """At the end of `run`: say which breakpoints never had a module to stop at."""
    for pattern in unmatched_patterns(breakpoints, calls):
        print(f"torch-inspector: breakpoint {pattern!r} matched no module", file=sys.stderr)

"""Jupyter and IPython displays: a Trace, a Call, a Diagnosis, a list of findings, check()
results, Contributions and the headless debugger's stops read as the report does.

`import inspector` inside IPython registers these with IPython's display formatters (the
engine's records stay free of rich); `%load_ext inspector.notebook` does the same by hand.
Each display is HTML drawn by the same rich renderables as the terminal report, with a plain
text version for terminals. Nothing here imports rich or IPython until something displays.

Without a terminal (a notebook) `inspector.debug()` cannot wait for keys: it says so on each
call, prints the report and names the headless debugger for stepping from code.
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

# Rich's own width for Jupyter: the report's wide layout (params, zero %) fits.
WIDTH = 115
PRE = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)

NO_TERMINAL = """\
inspector.debug: no terminal here, so nothing can wait for keys; the report of one pass follows.
To step module by module from code, use the headless debugger:
    from inspector.engine.control.debugger import Debugger
    d = Debugger(model, x)
    d.start()     # paused before the root call; d.step(), d.next(), d.cont() go on
    d.trace       # the whole record, once the pass has finished
The interactive debugger in a browser: python -m inspector serve FILE
(it needs the `web` extra: pip install 'torch-inspector[web]')."""


# -- what each object draws as ------------------------------------------------------------------


def _trace(t: Any) -> Iterator[RenderableType]:
    from inspector.reporting import report_renderables

    yield from report_renderables(t)


def _call(call: Any) -> Iterator[RenderableType]:
    from inspector.render import CallDetail

    yield CallDetail(call)


def _diagnosis(diag: Any) -> Iterator[RenderableType]:
    from inspector.render import DiagnosisPanel

    yield DiagnosisPanel(diag)


def _findings(findings: Any) -> Iterator[RenderableType]:
    from inspector.render import DiagnosisPanel

    for finding in findings:
        yield DiagnosisPanel(finding)


def _check_result(result: Any) -> Iterator[RenderableType]:
    """As `torch-inspector check` prints it: every finding, then the one-line summary."""
    from rich.text import Text

    yield from _findings(result)
    errors = len(result.errors)
    summary = f"check: {len(result.calls)} module calls checked, {errors} error(s), "
    summary += f"{len(result) - errors} warning(s)"
    if result.stopped:
        summary += f"; {result.stopped}"
    yield Text(summary, style="bold red" if errors else "bold green")


def _contributions(c: Any, k: int = 10) -> Iterator[RenderableType]:
    from inspector.render import ContributionBars

    words = {"grad_x_act": "gradient x activation", "linear": "exact linear terms"}
    how = words.get(c.method, c.method.replace("_", " "))
    note = f"completeness gap {c.gap:.2%}" if c.gap is not None else ""
    terms = [(t.index[0], t.value, t.share) for t in c.top(k)]
    title = f"contributions of {c.layer or '(root)'} to {c.target} ({how}, sample 0)"
    yield ContributionBars(title, terms, note)


def _pause(pause: Any) -> Iterator[RenderableType]:
    """A stop of the headless debugger: where, why, the call's tensors, the diagnosis."""
    from rich.text import Text

    from inspector.render import CallDetail, DiagnosisPanel

    total = len(pause.calls)
    yield Text(f"paused {pause.where} · {pause.reason} · call {pause.call.seq + 1} of {total}")
    yield CallDetail(pause.call)
    if pause.diagnosis is not None:
        yield DiagnosisPanel(pause.diagnosis)


def _finished(finished: Any) -> Iterator[RenderableType]:
    from rich.text import Text

    if finished.aborted:
        yield Text("the pass was aborted by the debugger", style="bold yellow")
    yield from _trace(finished.trace)


Draw = Callable[[Any], Iterator["RenderableType"]]

# (module, class name) -> how an instance draws. By name: registering imports nothing.
DISPLAYS: dict[tuple[str, str], Draw] = {
    ("inspector.engine.records.trace", "Trace"): _trace,
    ("inspector.engine.records.calls", "Call"): _call,
    ("inspector.engine.records.calls", "Diagnosis"): _diagnosis,
    ("inspector.engine.dryrun.check", "CheckResult"): _check_result,
    ("inspector.engine.contrib", "Contributions"): _contributions,
    ("inspector.engine.control.stepper", "Pause"): _pause,
    ("inspector.engine.control.debugger", "Finished"): _finished,
}


# -- rendering ---------------------------------------------------------------------------------


def _console(width: int) -> Any:
    from rich.console import Console

    return Console(
        file=io.StringIO(),
        record=True,
        width=width,
        force_terminal=True,
        force_jupyter=False,
        color_system="truecolor",
        legacy_windows=False,
    )


def to_html(renderables: Iterator[RenderableType], width: int = WIDTH) -> str:
    """The renderables as one `<pre>` block with inline styles (no stylesheet to load)."""
    console = _console(width)
    for renderable in renderables:
        console.print(renderable)
    return str(console.export_html(inline_styles=True, code_format=PRE))


def to_text(renderables: Iterator[RenderableType], width: int = WIDTH) -> str:
    console = _console(width)
    for renderable in renderables:
        console.print(renderable)
    return str(console.export_text(styles=False)).rstrip("\n")


def _is_findings(obj: object) -> bool:
    """A non-empty plain list of Diagnosis (trace.findings): other lists keep IPython's display."""
    from inspector.engine.records import Diagnosis

    return type(obj) is list and bool(obj) and all(isinstance(x, Diagnosis) for x in obj)


def _html(draw: Draw) -> Callable[[Any], str]:
    return lambda obj: to_html(draw(obj))


def _text(draw: Draw) -> Callable[[Any, Any, bool], None]:
    def printer(obj: Any, p: Any, cycle: bool) -> None:
        p.text(to_text(draw(obj)))

    return printer


# -- registration ------------------------------------------------------------------------------


def register(shell: Any = None) -> bool:
    """Register the displays with an IPython shell (the running one by default). Returns
    whether there was one."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        get = getattr(ipython, "get_ipython", None)
        shell = get() if get is not None else None
    formatter = getattr(shell, "display_formatter", None)
    if formatter is None:
        return False
    html = formatter.formatters["text/html"]
    plain = formatter.formatters["text/plain"]
    for (module, name), draw in DISPLAYS.items():
        html.for_type_by_name(module, name, _html(draw))
        if name != "Diagnosis":  # its str() is the whole explanation, readable in a list too
            plain.for_type_by_name(module, name, _text(draw))
    plain.for_type_by_name(
        "inspector.engine.records.calls", "Diagnosis", lambda d, p, cycle: p.text(str(d))
    )
    previous: Callable[[Any], str | None] | None = None  # another library's list display

    def findings_html(obj: object) -> str | None:
        if _is_findings(obj):
            return to_html(_findings(obj))
        return previous(obj) if previous is not None else None  # None: IPython's own

    previous = html.for_type(list, findings_html)
    return True


def load_ipython_extension(shell: Any) -> None:
    """`%load_ext inspector.notebook`."""
    register(shell)


def explained(debug: Callable[..., Any]) -> Callable[..., Any]:
    """`debug` that, where no terminal can take keys, first says what it does instead."""

    @functools.wraps(debug)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from inspector.terminal import interactive

        if not interactive():
            print(NO_TERMINAL, flush=True)
        return debug(*args, **kwargs)

    return wrapper

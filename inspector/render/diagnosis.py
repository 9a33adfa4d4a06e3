"""A finding as a panel: what failed, the source line in context, the op, the fix."""

from __future__ import annotations

import linecache

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from inspector.engine.records import Diagnosis, SourceLine
from inspector.render.text import shape

KIND_STYLE = {"error": ("✗", "bold red"), "warning": ("⚠", "bold yellow")}


def source_snippet(line: SourceLine, context: int = 2) -> RenderableType:
    """The failing line with `context` lines around it, highlighted, with line numbers; with
    no context, the line alone, its indentation dropped."""
    if context <= 0:
        text = line.text.strip() or linecache.getline(line.file, line.lineno).strip()
        return Text.assemble(("❱ ", "bold red"), (f"{line.lineno} ", "dim"), text)
    lo = max(1, line.lineno - context)
    lines = [linecache.getline(line.file, n) for n in range(lo, line.lineno + context + 1)]
    while lines and not lines[-1]:
        lines.pop()
    if not any(lines):
        return Text(f"  {line.text.strip()}")
    return Syntax(
        "".join(lines),
        "python",
        line_numbers=True,
        start_line=lo,
        highlight_lines={line.lineno},
        word_wrap=True,
        theme="ansi_dark",
        background_color="default",
    )


def location(line: SourceLine) -> str:
    return f"{line.file}:{line.lineno}" + (f" in {line.function}" if line.function else "")


class DiagnosisPanel:
    """One finding, in full. `context`: lines of source around the failing one.
    `fix_first`: the fix right under the summary and the line, before the op and the
    details (where the box may not fit on screen: the debugger's side pane)."""

    def __init__(self, diagnosis: Diagnosis, *, context: int = 2, fix_first: bool = False) -> None:
        self.diagnosis = diagnosis
        self.context = context
        self.fix_first = fix_first

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        d = self.diagnosis
        mark, style = KIND_STYLE.get(d.kind, ("•", "bold"))
        where = d.module or "(root)"
        title = Text.assemble((f"{mark} {d.kind}", style), " in ", (where, "bold"))
        if d.module_type:
            title.append(f" ({d.module_type})", style="cyan")
        parts: list[RenderableType] = [Text(d.summary, style="bold")]
        if d.line is not None:
            parts.append(Text(location(d.line), style="dim"))
            parts.append(source_snippet(d.line, self.context))
        fixes: list[RenderableType] = []
        if d.fixes:
            fixes.append(Text("fix", style="bold green"))
            for fix in d.fixes:
                fixes.append(Text(f"  → {fix}", style="green"))
        if self.fix_first:
            parts.extend(fixes)
        if d.op is not None:
            operands = ", ".join(shape(v) for v in d.op.operands)
            parts.append(Text.assemble(("op ", "dim"), (f"{d.op.name}({operands})", "magenta")))
        for detail in d.details:
            parts.append(Text(f"• {detail}"))
        if not self.fix_first:
            parts.extend(fixes)
        if d.exception and d.kind == "error":
            parts.append(Text(d.exception, style="dim", overflow="fold"))
        yield Panel(Group(*parts), title=title, title_align="left", border_style=style)

"""`python -m inspector` / `torch-inspector`: argument parsing, loading files, exit codes.

A FILE is a Python file that defines `build() -> (model, args)` (or `(model, args, kwargs)`)
and optionally `loss_fn` and `target`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inspector.targets import BuildError, Target, UsageError, load_file, target_from

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES = """\
exit status:
  0    no error: the model ran (report) or the dry run found no error (check)
  1    findings: the model failed or check found an error; also an error of the tool itself
  2    usage: bad arguments, no such file, or a FILE that cannot be built
  run  exits with the script's own status (130 when interrupted)
"""


def _json_out(destination: str, text: str) -> None:
    """`--json PATH` writes a file; `--json -` writes to standard output. Under torchrun each
    rank writes its own file: trace.json -> trace.rank1.json, or a `{rank}` placeholder."""
    if destination == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        from inspector.engine.distributed import launched_rank, per_rank_path

        Path(per_rank_path(destination, launched_rank())).write_text(text)


def _console(ns: argparse.Namespace) -> Any:
    """Where the human-readable output goes: stderr when stdout carries the JSON."""
    from inspector.reporting import text_console

    return text_console(stderr=getattr(ns, "json", None) == "-")


def cmd_report(ns: argparse.Namespace) -> int:
    from inspector.engine import trace
    from inspector.engine.capture.gradients import BackwardRequestError
    from inspector.reporting import print_trace

    tgt = load_file(ns.file)
    try:
        t = trace(
            tgt.model, *tgt.args, stats=not ns.shapes_only, backward=ns.backward or tgt.backward,
            **tgt.trace_kwargs(),
        )  # fmt: skip
    except BackwardRequestError as exc:  # backward with nothing to differentiate
        raise UsageError(f"{ns.file}: {exc}") from None
    console = _console(ns)
    print_trace(t, console)
    if ns.contributions and t.error is None:
        from inspector.reporting import contribution_section

        if ns.contributions not in dict(tgt.model.named_modules()):
            raise UsageError(
                f"--contributions: no module {ns.contributions!r} in {type(tgt.model).__name__}"
                " (a path as in the report's module column, e.g. `fc1` or `layer2.0.conv1`)"
            )
        section = contribution_section(tgt.model, tgt.args, tgt.kwargs, ns.contributions)
        console.print(section)
    if ns.json:
        _json_out(ns.json, t.to_json(indent=1))
    return EXIT_FINDINGS if t.error is not None else EXIT_OK


def cmd_check(ns: argparse.Namespace) -> int:
    from rich.text import Text

    from inspector.engine.api import check
    from inspector.engine.trace import Trace
    from inspector.render import DiagnosisPanel

    tgt = load_file(ns.file)
    loss = {"loss_fn": tgt.loss_fn, "target": tgt.target} if tgt.loss_fn is not None else {}
    result = check(tgt.model, *tgt.args, **loss, **tgt.kwargs)
    console = _console(ns)
    for finding in result:
        console.print(DiagnosisPanel(finding))
    errors = len(result.errors)
    summary = f"{ns.file}: {len(result.calls)} module calls checked, {errors} error(s), "
    summary += f"{len(result) - errors} warning(s)"
    if result.stopped:
        summary += f"; {result.stopped}"
    console.print(Text(summary, style="bold red" if errors else "bold green"))
    if ns.json:
        # The dry run's calls (shapes, no statistics) and its findings, as a trace file.
        _json_out(ns.json, Trace(list(result.calls), findings=list(result)).to_json(indent=1))
    return EXIT_FINDINGS if errors else EXIT_OK


def cmd_run(ns: argparse.Namespace) -> int:
    import inspector

    if ns.script is None:
        ns.parser.error("give the SCRIPT to run: torch-inspector run [options] SCRIPT [ARGS...]")
    if not Path(ns.script).is_file():
        raise UsageError(f"no such file: {ns.script}")
    from inspector.engine.control.breakpoints import parse_breakpoint

    try:
        breakpoints = [parse_breakpoint(b) for b in ns.breaks]
    except ValueError as exc:
        raise UsageError(f"--break: {exc}") from None
    from inspector.reporting import run_headless

    if not inspector.interactive():
        # No terminal to draw on (stderr redirected, CI): the script runs as it would alone,
        # and each stop and failure is written to stderr as text.
        return run_headless(ns.script, ns.args, breakpoints=breakpoints, gradients=ns.backward)
    from inspector.engine.distributed import launched_rank
    from inspector.tui.ranks import TerminalClaim, chosen_rank, log_path
    from inspector.tui.script import run_script

    rank, claim = launched_rank(), None
    if rank is not None:  # a rank of a torchrun job: the ranks share this terminal
        try:
            chosen = chosen_rank(ns.rank)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if chosen is not None and not 0 <= chosen < world:
            raise UsageError(f"--rank {chosen}: the job has ranks 0 to {world - 1}")
        if chosen is None:
            claim = TerminalClaim()  # the first rank to stop takes the terminal
        elif chosen != rank:
            with open(log_path(rank), "a", encoding="utf-8") as log:
                from rich.console import Console

                console = Console(file=log, width=120, no_color=True)
                return run_headless(ns.script, ns.args, breakpoints=breakpoints,
                                    gradients=ns.backward, console=console)  # fmt: skip
    try:
        return run_script(
            ns.script, ns.args, breakpoints=breakpoints, post_mortem=ns.post_mortem,
            gradients=ns.backward, claim=claim,
        )  # fmt: skip
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def cmd_serve(ns: argparse.Namespace) -> int:
    from inspector import web
    from inspector.engine.control.breakpoints import parse_breakpoint

    if ns.target is None:
        ns.parser.error("give what to serve: torch-inspector serve [options] demo|FILE|SCRIPT")
    try:
        for pattern in ns.breaks:
            parse_breakpoint(pattern)
    except ValueError as exc:
        raise UsageError(f"--break: {exc}") from None
    try:
        return web.serve(
            ns.target, ns.args, host=ns.host, port=ns.port, breaks=ns.breaks,
            backward=ns.backward, post_mortem=ns.post_mortem,
        )  # fmt: skip
    except web.ServeError as exc:
        raise UsageError(str(exc)) from None


def cmd_demo(ns: argparse.Namespace) -> int:
    from inspector.demo import FILENAME, build

    ns.file = FILENAME
    code = open_target(target_from(build, where="the demo"))
    return code if code == EXIT_INTERRUPTED else EXIT_OK  # the demo model fails on purpose


def open_target(tgt: Target) -> int:
    """Open the debugger on a target (the report when there is no terminal)."""
    import inspector

    try:
        inspector.debug(tgt.model, *tgt.args, backward=tgt.backward, **tgt.trace_kwargs())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:
        return EXIT_FINDINGS  # the model failed: the user has seen the explanation
    return EXIT_OK


def open_example(build: Callable[[], Any]) -> None:
    """What running an example file as a script does."""
    caller = sys._getframe(1).f_globals
    sys.exit(open_target(target_from(build, caller)))


def make_parser() -> argparse.ArgumentParser:
    from inspector import __version__

    parser = argparse.ArgumentParser(
        prog="torch-inspector",
        description="A terminal debugger for PyTorch models. In the debugger, `?` lists the "
        "keys; `q` closes it and the program goes on without stopping; Ctrl+C stops the "
        "program.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"torch-inspector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="open the debugger on the bundled broken CNN (without a terminal: its report)",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.set_defaults(func=cmd_demo)
    report = sub.add_parser(
        "report",
        help="trace FILE once and print the call table + findings",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("file", help="a Python file defining build() -> (model, args)")
    report.add_argument(
        "--json",
        metavar="PATH",
        help="also write the trace as JSON to PATH (`-`: to stdout, the report to stderr)",
    )
    report.add_argument("--shapes-only", action="store_true", help="skip tensor statistics")
    report.add_argument(
        "--backward",
        action="store_true",
        help="also run backward on FILE's loss and show gradients (vanishing, exploding, NaN)",
    )
    report.add_argument(
        "--contributions",
        metavar="LAYER",
        help="also show LAYER's top units toward the predicted class",
    )
    report.set_defaults(func=cmd_report)
    check = sub.add_parser(
        "check",
        help="dry-run FILE on fake tensors; exit 1 when a finding is an error (CI)",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", help="a Python file defining build() -> (model, args)")
    check.add_argument(
        "--json",
        metavar="PATH",
        help="also write the findings and the checked calls as JSON to PATH (`-`: to stdout)",
    )
    check.set_defaults(func=cmd_check)
    run = sub.add_parser(
        "run",
        help="run SCRIPT unchanged under the debugger (every module call hooked)",
        description="Run SCRIPT as __main__ with every module call hooked. With no terminal "
        "on stdin and stderr (stderr redirected, CI) nothing waits for keys: the script runs "
        "as usual and each stop and failure is written to stderr.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--break",
        dest="breaks",
        action="append",
        default=[],
        metavar="PATTERN",
        help="stop at modules matching PATTERN (path glob or type), optionally with a "
        "condition: 'fc2', 'Conv2d #3', '* if nan', 'decoder.* if grad-nan'; repeatable",
    )
    run.add_argument(
        "--backward",
        action="store_true",
        help="also record the script's backward passes: gradients, grad-* breakpoints",
    )
    run.add_argument(
        "--post-mortem",
        action="store_true",
        help="run free; open the debugger only if something fails",
    )
    run.add_argument(
        "--rank",
        type=int,
        default=None,
        metavar="N",
        help="under torchrun: the rank that gets the terminal (also INSPECTOR_RANK); the "
        "others run headless and log their stops to inspector-rankK.log. Default: the "
        "first rank that stops",
    )
    run.add_argument("script", nargs="?", help="the Python script to run as __main__")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    run.set_defaults(func=cmd_run, parser=run)
    serve = sub.add_parser(
        "serve",
        help="serve the debugger as a web page (needs the `web` extra); 127.0.0.1 by default",
        description="Serve the debugger as a web page, for a model on a remote machine.\n"
        "TARGET is `demo`, a FILE defining build() (opened paused before its first\n"
        "module), or any SCRIPT (run as `run` runs it). Each page that opens runs its own\n"
        "debugger; Ctrl+C stops the server (exit 0).\n"
        "Needs textual-serve: pip install 'torch-inspector[web]'.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anyone who can open the page can run "
        "TARGET's code)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default 8000; 0: a free one)"
    )
    serve.add_argument(
        "--break",
        dest="breaks",
        action="append",
        default=[],
        metavar="PATTERN",
        help="stop at modules matching PATTERN, as with run; repeatable",
    )
    serve.add_argument("--backward", action="store_true", help="also step through backward")
    serve.add_argument(
        "--post-mortem", action="store_true", help="SCRIPT: open only if something fails"
    )
    serve.add_argument("target", nargs="?", metavar="TARGET", help="demo, FILE or SCRIPT")
    serve.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    serve.set_defaults(func=cmd_serve, parser=serve)
    return parser


def _tolerant_output() -> None:
    """A stream that cannot encode the report's marks (LANG=C, PYTHONIOENCODING=ascii) shows
    `?` in their place instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "✓✗▶→·─╭".encode(encoding)
        except (UnicodeEncodeError, LookupError):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    ns = parser.parse_args(argv)
    _tolerant_output()
    try:
        return int(ns.func(ns))
    except UsageError as exc:
        print(f"torch-inspector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BuildError as exc:  # its traceback is printed: the user's own frames
        print(f"torch-inspector: {exc} failed to build", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(f"torch-inspector {ns.command}: an error inside torch-inspector (the traceback "
              "above); please report it", file=sys.stderr)  # fmt: skip
        return EXIT_FINDINGS


if __name__ == "__main__":
    sys.exit(main())

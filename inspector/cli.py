"""`python -m inspector` / `torch-inspector`: argument parsing, loading files, exit codes.

A FILE is a Python file that defines `build() -> (model, args)` (or `(model, args, kwargs)`)
and optionally `loss_fn` and `target`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class UsageError(Exception):
    """A problem with what the user asked for: printed without a traceback, exit code 2."""


@dataclass
class Target:
    """What a FILE's build() gives: the model, its inputs, and an optional loss."""

    model: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    loss_fn: Any = None
    target: Any = None
    backward: bool = False  # the FILE sets `backward = True`: show its gradients too

    def trace_kwargs(self) -> dict[str, Any]:
        extra = dict(self.kwargs)
        if self.loss_fn is not None:
            extra.update(loss_fn=self.loss_fn, target=self.target)
        return extra


def unpack_build(built: Any, where: str) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    if not isinstance(built, tuple) or len(built) not in (2, 3):
        raise UsageError(f"{where}: build() must return (model, args) or (model, args, kwargs)")
    model, args = built[0], built[1]
    kwargs = built[2] if len(built) == 3 else {}
    if not isinstance(args, tuple):
        args = (args,)
    return model, args, dict(kwargs)


def target_from(
    build: Callable[[], Any], namespace: dict[str, Any] | None = None, where: str = "build()"
) -> Target:
    model, args, kwargs = unpack_build(build(), where)
    namespace = namespace or {}
    loss_fn = namespace.get("loss_fn")
    target = namespace.get("target")
    if callable(target) and not hasattr(target, "shape"):
        target = target()  # a factory, so that building stays lazy
    return Target(model, args, kwargs, loss_fn, target, bool(namespace.get("backward", False)))


def load_file(path: str) -> Target:
    """Import FILE and call its build()."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"_inspector_target_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    build = getattr(module, "build", None)
    if not callable(build):
        raise UsageError(
            f"{path} defines no build() function; add one that returns (model, args), "
            "e.g. `def build(): return Net(), (torch.randn(4, 3, 32, 32),)`"
        )
    return target_from(build, vars(module), where=path)


def cmd_report(ns: argparse.Namespace) -> int:
    from inspector.engine import trace
    from inspector.engine.gradients import BackwardRequestError
    from inspector.report import print_trace

    tgt = load_file(ns.file)
    try:
        t = trace(
            tgt.model, *tgt.args, stats=not ns.shapes_only, backward=ns.backward or tgt.backward,
            **tgt.trace_kwargs(),
        )  # fmt: skip
    except BackwardRequestError as exc:  # backward with nothing to differentiate
        raise UsageError(f"{ns.file}: {exc}") from None
    print_trace(t)
    if ns.contributions and t.error is None:
        from rich.console import Console

        from inspector.report import contribution_section

        section = contribution_section(tgt.model, tgt.args, tgt.kwargs, ns.contributions)
        Console().print(section)
    if ns.json:
        Path(ns.json).write_text(t.to_json(indent=1))
    return EXIT_FINDINGS if t.error is not None else EXIT_OK


def cmd_check(ns: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.text import Text

    from inspector.engine.api import check
    from inspector.render import DiagnosisPanel

    tgt = load_file(ns.file)
    loss = {"loss_fn": tgt.loss_fn, "target": tgt.target} if tgt.loss_fn is not None else {}
    result = check(tgt.model, *tgt.args, **loss, **tgt.kwargs)
    console = Console()
    for finding in result:
        console.print(DiagnosisPanel(finding))
    errors = len(result.errors)
    summary = f"{ns.file}: {len(result.calls)} module calls checked, {errors} error(s), "
    summary += f"{len(result) - errors} warning(s)"
    console.print(Text(summary, style="bold red" if errors else "bold green"))
    return EXIT_FINDINGS if errors else EXIT_OK


def cmd_run(ns: argparse.Namespace) -> int:
    import inspector

    if not Path(ns.script).is_file():
        raise UsageError(f"no such file: {ns.script}")
    if not inspector.interactive():
        raise UsageError("run needs a terminal; for CI use `report FILE` or `check FILE`")
    from inspector.engine.stepper import parse_breakpoint
    from inspector.tui.script import run_script

    try:
        breakpoints = [parse_breakpoint(b) for b in ns.breaks]
    except ValueError as exc:
        raise UsageError(f"--break: {exc}") from None
    try:
        return run_script(
            ns.script, ns.args, breakpoints=breakpoints, post_mortem=ns.post_mortem,
            gradients=ns.backward,
        )  # fmt: skip
    except KeyboardInterrupt:
        return 130


def cmd_demo(ns: argparse.Namespace) -> int:
    ns.file = str(EXAMPLES / "seed_cnn.py")
    if not Path(ns.file).is_file():
        raise UsageError("the bundled examples are not installed next to the package")
    code = open_target(load_file(ns.file))
    return code if code == 130 else EXIT_OK  # the demo model fails on purpose


def open_target(tgt: Target) -> int:
    """Open the debugger on a target (the report when there is no terminal)."""
    import inspector

    try:
        inspector.debug(tgt.model, *tgt.args, backward=tgt.backward, **tgt.trace_kwargs())
    except KeyboardInterrupt:
        return 130
    except Exception:
        return EXIT_FINDINGS  # the model failed: the user has seen the explanation
    return EXIT_OK


def open_example(build: Callable[[], Any]) -> None:
    """What running an example file as a script does."""
    caller = sys._getframe(1).f_globals
    sys.exit(open_target(target_from(build, caller)))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torch-inspector",
        description="A terminal debugger for PyTorch models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="open the inspector on the bundled broken CNN")
    demo.set_defaults(func=cmd_demo)
    report = sub.add_parser("report", help="trace FILE once and print the call table + findings")
    report.add_argument("file", help="a Python file defining build() -> (model, args)")
    report.add_argument("--json", metavar="PATH", help="also write the trace as JSON to PATH")
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
        "check", help="dry-run FILE on fake tensors; exit 1 when a finding is an error (CI)"
    )
    check.add_argument("file", help="a Python file defining build() -> (model, args)")
    check.set_defaults(func=cmd_check)
    run = sub.add_parser(
        "run", help="run SCRIPT unchanged under the debugger (every module call hooked)"
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
    run.add_argument("script", help="the Python script to run as __main__")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    ns = parser.parse_args(argv)
    try:
        return int(ns.func(ns))
    except UsageError as exc:
        print(f"torch-inspector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # the user's file raised while loading or building
        traceback.print_exc()
        what = getattr(ns, "file", "the target")
        print(f"torch-inspector: {what} failed to build", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

"""`python -m inspector serve`: the debugger as a web page (textual-serve), for remote machines.

The server runs no model itself. Each browser page that connects gets its own process,
`python -m inspector.web TARGET ...`, which opens the debugger on the target exactly as the
terminal does, with Textual's web driver instead of a terminal. The server binds 127.0.0.1
unless told otherwise: whoever can open the page can run the target's code.

A TARGET is `demo`, a FILE that defines `build()` (opened as `demo` is: paused before the
first module), or any other script, run as `run SCRIPT` runs it.
"""

from __future__ import annotations

import argparse
import ast
import shlex
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The server subclasses textual-serve's Server (its app factory and startup hook): keep to
# the version tested, as the `web` extra does.
TEXTUAL_SERVE = "textual-serve>=1.1.3,<1.2"
INSTALL_HINT = (
    "serve needs textual-serve, which is not installed; install the `web` extra: "
    f"pip install 'torch-inspector[web]' (or: pip install '{TEXTUAL_SERVE}')"
)
LOOPBACK = "127.0.0.1"


class ServeError(Exception):
    """What the user asked for cannot be served: the message says why and what to do."""


def defines_build(path: Path) -> bool:
    """Whether FILE binds `build` at top level (a def, an import, an assignment), read
    without running it."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return False  # a script that cannot be parsed fails in its own process, with its error
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = [node.name]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.asname or alias.name for alias in node.names]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        else:
            continue
        if "build" in names:
            return True
    return False


def child_command(
    target: str,
    args: Sequence[str] = (),
    *,
    breaks: Sequence[str] = (),
    backward: bool = False,
    post_mortem: bool = False,
) -> str:
    """The shell command each page runs (textual-serve starts it through the shell)."""
    argv = [sys.executable, "-m", "inspector.web"]
    for pattern in breaks:
        argv += ["--break", pattern]
    if backward:
        argv.append("--backward")
    if post_mortem:
        argv.append("--post-mortem")
    argv += [target, *args]
    return shlex.join(argv)


def resolve_target(target: str) -> str:
    """`demo`, or the path of an existing file made absolute (the page's process may start
    from anywhere)."""
    if target == "demo":
        return target
    path = Path(target)
    if not path.is_file():
        raise ServeError(f"no such file: {target} (give `demo`, a FILE with build(), or a script)")
    return str(path.resolve())


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 takes a free one. Bound here, so the address printed is
    the one served, with no window in which another process could take the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    target: str,
    args: Sequence[str] = (),
    *,
    host: str = LOOPBACK,
    port: int = 8000,
    breaks: Sequence[str] = (),
    backward: bool = False,
    post_mortem: bool = False,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve the debugger on `target` until Ctrl+C (or SIGTERM); returns the exit code.

    Raises:
        ServeError: textual-serve is missing, the target does not exist, or the address
            cannot be bound.
    """
    try:
        from textual_serve.server import Server
    except ImportError:
        raise ServeError(INSTALL_HINT) from None
    from aiohttp import web

    target = resolve_target(target)
    command = child_command(target, args, breaks=breaks, backward=backward,
                            post_mortem=post_mortem)  # fmt: skip
    sock = bind(host, port)
    url = url_of(sock)
    say = announce or (lambda line: print(line, flush=True))
    name = "the demo" if target == "demo" else Path(target).name

    class InspectorServer(Server):
        async def on_startup(self, app: Any) -> None:
            say(f"torch-inspector: serving the debugger on {name} at {url}")
            say("  each page that opens runs its own debugger; Ctrl+C stops the server")
            if host in (LOOPBACK, "localhost", "::1"):
                say(f"  from another machine: ssh -L {url.rsplit(':', 1)[1]}:{host}:"
                    f"{url.rsplit(':', 1)[1]} THIS_HOST, then open {url}")  # fmt: skip

    server = InspectorServer(command, host=host, title=f"torch-inspector · {name}")
    server.public_url = url  # the page's websocket address is built from it
    server.initialize_logging()
    try:
        # aiohttp turns SIGINT and SIGTERM into a graceful exit: each page's process is told
        # to quit as its connection closes.
        web.run_app(server._make_app(), sock=sock, print=None, handle_signals=True, access_log=None)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


# -- the process behind one page ------------------------------------------------------------


def _child_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inspector.web")
    parser.add_argument("--break", dest="breaks", action="append", default=[])
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--post-mortem", action="store_true")
    parser.add_argument("target")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def run_page(argv: Sequence[str]) -> int:
    """Open the debugger on the target in this process, drawn through Textual's web driver
    (textual-serve sets TEXTUAL_DRIVER). Standard output is the driver's channel to the page:
    whatever the target prints goes to stderr, which the server shows."""
    from inspector.targets import BuildError, Target, UsageError, load_file, target_from

    ns = _child_parser().parse_args(argv)
    sys.stdout = sys.stderr  # the driver writes to sys.__stdout__
    try:
        if ns.target != "demo" and not defines_build(Path(ns.target)):
            from inspector.tui.script import run_script

            return run_script(ns.target, ns.args, breakpoints=ns.breaks,
                              post_mortem=ns.post_mortem, gradients=ns.backward)  # fmt: skip
        tgt: Target
        if ns.target == "demo":
            from inspector.demo import build

            tgt = target_from(build, where="the demo")
        else:
            tgt = load_file(ns.target)
        from inspector.tui import run_app

        run_app(
            tgt.model, tgt.args, tgt.kwargs, loss_fn=tgt.loss_fn, target=tgt.target,
            breakpoints=ns.breaks, backward=ns.backward or tgt.backward,
        )  # fmt: skip
    except UsageError as exc:
        print(f"torch-inspector serve: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:  # its traceback is printed: the user's own frames
        print(f"torch-inspector serve: {exc} failed to build", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(run_page(sys.argv[1:]))

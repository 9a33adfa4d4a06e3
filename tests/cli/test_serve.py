"""`serve`: the debugger as a web page, driven in headless Chromium through the DevTools
protocol. What the page's terminal is sent is replayed onto a screen grid and read as a
person would read the page: the module tree, a key press that steps, the diagnosis."""

from __future__ import annotations

import asyncio
import base64
import codecs
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from inspector.cli import main
from inspector.web import child_command, defines_build

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 45.0  # the whole browser session; each wait below has its own, shorter limit
CHROMIUM = next(
    (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))), None
)
# Every name resolves to nothing except the loopback server: the page's web fonts fail fast.
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def test_missing_target_and_bad_break_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "no/such/file.py"]) == 2
    assert "no such file: no/such/file.py" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--break", "fc1 if what", "demo"]) == 2
    assert "--break" in capsys.readouterr().err


def test_without_textual_serve_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert main(["serve", "--port", "0", "demo"]) == 2
    assert "pip install 'torch-inspector[web]'" in capsys.readouterr().err


class Screen:
    """The terminal the page draws: Textual writes runs of text at absolute positions."""

    # CSI sequences (cursor moves, colours, mode queries like `[?2026$p`), OSC strings
    # (`]22;default` + BEL), two-byte escapes, and the line controls.
    CONTROL = re.compile(
        r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]"
        r"|\x1b[=>78]|[\r\n\x07]"
    )

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], str] = {}
        self.row = self.col = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> None:
        text = self.decoder.decode(data)
        pos = 0
        for m in self.CONTROL.finditer(text):
            self._write(text[pos : m.start()])
            pos = m.end()
            if m.group(2) == "H":  # cursor position, 1-based
                row, _, col = (m.group(1) or "1;1").partition(";")
                self.row, self.col = int(row or 1) - 1, int(col or 1) - 1
            elif m.group(0) == "\n":
                self.row, self.col = self.row + 1, 0
            elif m.group(0) == "\r":
                self.col = 0
        self._write(text[pos:])

    def _write(self, text: str) -> None:
        for ch in text:
            self.cells[self.row, self.col] = ch
            self.col += 1

    def text(self) -> str:
        rows: dict[int, list[tuple[int, str]]] = {}
        for (r, c), ch in self.cells.items():
            rows.setdefault(r, []).append((c, ch))
        return "\n".join("".join(ch for _, ch in sorted(rows[r])).rstrip() for r in sorted(rows))


class DevTools:
    """A minimal DevTools-protocol client over aiohttp's websocket (aiohttp comes with
    textual-serve)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.screen = Screen()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=15)
            self._event(msg)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def _event(self, msg: dict[str, Any]) -> None:
        if msg.get("method") == "Network.webSocketFrameReceived":
            frame = msg["params"]["response"]
            if frame.get("opcode") == 2:  # binary: the app's terminal output
                self.screen.feed(base64.b64decode(frame["payloadData"]))

    async def wait_for(self, words: str, timeout: float) -> str:
        """Until `words` is on the screen; returns the screen."""
        end = time.monotonic() + timeout
        while words not in self.screen.text():
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{words!r} never appeared; the page shows:\n" + self.screen.text()
                )
            try:
                self._event(await self.ws.receive_json(timeout=left))
            except TimeoutError:
                continue
        return self.screen.text()

    async def press(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            params: dict[str, Any] = {"type": kind, "key": key}
            if kind == "keyDown":
                params["text"] = key
            await self.call("Input.dispatchKeyEvent", **params)


def _read_line(proc: subprocess.Popen[bytes], pattern: str, timeout: float) -> re.Match[str]:
    """The first line of proc's output that matches; fails with all it printed otherwise."""
    assert proc.stdout is not None
    seen, end = "", time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline().decode(errors="replace")
            if not line and proc.poll() is not None:
                break
            seen += line
            if m := re.search(pattern, line):
                return m
        elif proc.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; output:\n{seen}")


@contextmanager
def started(argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own group; the group is killed at the end, whatever happens."""
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_serves_the_page_on_loopback_and_stops_on_ctrl_c() -> None:
    """No browser needed: the address printed serves the page, and Ctrl+C ends the server."""
    pytest.importorskip("textual_serve", reason="the `web` extra (textual-serve) is not installed")
    argv = [sys.executable, "-m", "inspector", "serve", "--port", "0", "demo"]
    with started(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as server:
        url = _read_line(server, r"at (http://127\.0\.0\.1:\d+)", timeout=20).group(1)
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        # The page's terminal connects back to the same address.
        assert f'data-session-websocket-url="{url.replace("http", "ws", 1)}/ws"' in page
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=15) == 0


def test_a_file_with_build_opens_like_demo_and_a_script_runs_like_run(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("def train():\n    pass\n")
    assert defines_build(ROOT / "examples" / "seed_cnn.py")
    assert not defines_build(script)
    command = child_command(str(script), ["--lr", "0.1"], breaks=["fc1 if nan"])
    assert shlex.split(command)[1:] == [
        "-m", "inspector.web", "--break", "fc1 if nan", str(script), "--lr", "0.1",
    ]  # fmt: skip


@pytest.mark.timeout(90)
@pytest.mark.parametrize("target", ["demo", "examples/seed_cnn.py"])
def test_the_page_shows_the_tree_steps_on_a_key_and_shows_the_diagnosis(
    target: str, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium to drive: install Debian's `chromium` package (.ci/run does)")
    pytest.importorskip("textual_serve", reason="the `web` extra (textual-serve) is not installed")
    aiohttp = pytest.importorskip("aiohttp")

    server_argv = [sys.executable, "-m", "inspector", "serve", "--port", "0", target]
    with started(server_argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as server:
        url = _read_line(server, r"at (http://127\.0\.0\.1:\d+)", timeout=20).group(1)
        browser_argv = [
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={tmp_path / 'profile'}", NO_NETWORK, "--window-size=1400,900",
            "about:blank",
        ]  # fmt: skip
        with started(browser_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as browser:
            browser.stdout = browser.stderr  # DevTools announces itself on stderr
            devtools = _read_line(browser, r"DevTools listening on (ws://\S+)", timeout=20)
            port = re.search(r":(\d+)/", devtools.group(1)).group(1)  # type: ignore[union-attr]
            asyncio.run(asyncio.wait_for(_drive(aiohttp, port, url, tmp_path), DEADLINE))


async def _drive(aiohttp: Any, port: str, url: str, out: Path) -> None:
    """Open the page, read it, press keys as a person would; a screenshot is left in `out`."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in await response.json() if t["type"] == "page"]
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = DevTools(ws)
            await page.call("Network.enable")
            await page.call("Page.enable")
            await page.call("Page.navigate", url=url)
            # The module tree, paused before the root call.
            shown = await page.wait_for("paused before (root) (SeedCNN)", timeout=25)
            assert "SeedCNN" in shown
            await page.call(
                "Runtime.evaluate", expression="document.querySelector('textarea').focus()"
            )
            await page.press("s")  # step into: the first child
            shown = await page.wait_for("paused before conv1 (Conv2d)", timeout=10)
            assert "conv1" in shown
            await page.press("c")  # continue: the pass fails at the stray view
            await page.wait_for("cannot reshape (4, 3, 16, 16)", timeout=10)
            # the error box and the status line are painted in either order: wait for both
            shown = await page.wait_for("paused after (root) (SeedCNN) · error", timeout=10)
            assert "cannot reshape (4, 3, 16, 16)" in shown
            assert "x.flatten(1)" in shown  # the fix, in numbers
            shot = await page.call("Page.captureScreenshot", format="png")
            (out / "serve.png").write_bytes(base64.b64decode(shot["data"]))

"""A real headless Chromium for the tests, driven over the DevTools protocol.

Debian's ``chromium`` package provides the browser (``.ci/run`` installs it
when missing; nothing is downloaded at test time). :class:`Browser` starts
it with a fresh profile and a DevTools port chosen by Chromium itself
(``--remote-debugging-port=0``; the port is read from the profile's
``DevToolsActivePort`` file), opens one page target and speaks CDP to it
over a websocket (``websocket-client``): navigate, evaluate JavaScript,
dispatch keys, take screenshots. Waiting is always on a condition.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        if CHROMIUM is None:
            raise BrowserError("no chromium on PATH; install Debian's chromium package")
        self._profile = tempfile.mkdtemp(prefix="raftsim-chromium-")
        self._process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        port = self._wait_for(lambda: self._port(), "Chromium's DevTools port", 60)
        targets = self._wait_for(lambda: self._pages(port), "a page target", 60)
        self._socket = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=60,
                                                   suppress_origin=True)
        self.command("Page.enable")
        self.command("Runtime.enable")

    def _wait_for(self, probe, what: str, limit: float):
        deadline = time.monotonic() + limit  # a bound on a hung browser, not a timed assertion
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"chromium exited with {self._process.returncode} before {what} was ready")
            found = probe()
            if found:
                return found
            time.sleep(0.05)
        raise BrowserError(f"chromium did not offer {what} within {limit} s")

    def _port(self) -> int | None:
        active = Path(self._profile) / "DevToolsActivePort"
        try:
            first = active.read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first) if first.isdigit() else None

    @staticmethod
    def _pages(port: int) -> list:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
                return [t for t in json.load(reply) if t.get("type") == "page"]
        except OSError:
            return []

    def command(self, method: str, **params) -> dict:
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv())
            if reply.get("id") == ident:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, path: Path) -> None:
        self.command("Page.navigate", url=Path(path).resolve().as_uri())
        self.wait_until("document.readyState === 'complete' && document.body.dataset.time !== undefined")

    def evaluate(self, expression: str):
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait_until(self, expression: str, limit: float = 60) -> None:
        self._wait_for(lambda: self.evaluate(f"!!({expression})"), expression, limit)

    def press(self, key: str) -> None:
        text = " " if key == " " else key if len(key) == 1 else ""
        for kind in ("keyDown", "keyUp"):
            self.command("Input.dispatchKeyEvent", type=kind, key=key, text=text if kind == "keyDown" else "")

    def screenshot(self, path: Path) -> None:
        height = self.evaluate("document.documentElement.scrollHeight")
        width = self.evaluate("document.documentElement.scrollWidth")
        self.command("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        data = self.command("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        self.command("Emulation.clearDeviceMetricsOverride")

    def close(self) -> None:
        try:
            self._socket.close()
        finally:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

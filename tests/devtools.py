"""Headless Chromium driven over the DevTools protocol, for page tests that type into a form and
read what the page keeps. The protocol runs on two pipes (`--remote-debugging-pipe`: commands on
the browser's fd 3, replies on its fd 4, each message JSON ended by a NUL byte), so no port is
opened and no client package is needed."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WAIT_S = 30.0


class Page:
    """One tab: commands, JavaScript to evaluate, and the events it sent (e.g. Network.*)."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, params, session_id=self.session_id)

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str) -> None:
        """Until `expression` is true in the page."""
        deadline = time.monotonic() + WAIT_S
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {WAIT_S} s: {expression}")
            time.sleep(0.1)

    def reload(self) -> None:
        """Loads the page again (same tab, same sessionStorage) and waits until it is loaded."""
        self.evaluate("window.reloading = true")
        self.call("Page.reload")
        self.wait_for("!window.reloading && document.readyState === 'complete'")

    def type(self, text: str) -> None:
        """Types `text` into the focused element, then presses Enter."""
        self.call("Input.insertText", text=text)
        enter = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.call("Input.dispatchKeyEvent", type="keyDown", text="\r", **enter)
        self.call("Input.dispatchKeyEvent", type="keyUp", **enter)

    def screenshot(self, path: Path, *, width: int = 1280) -> None:
        """A PNG of the whole page at `width` CSS pixels, written to `path`."""
        self.call("Emulation.clearDeviceMetricsOverride")  # measure at the window's own size
        height = self.evaluate("document.documentElement.scrollHeight")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def requests(self) -> list[dict[str, Any]]:
        """Every request the page sent so far: url, method, headers."""
        return [
            event["params"]["request"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
        ]


class Browser:
    def __init__(self, process: subprocess.Popen[bytes], commands: int, replies: int) -> None:
        self.process = process
        self.commands = commands
        self.replies = replies
        self.pages: dict[str, Page] = {}
        self._buffer = b""
        self._next_id = 0

    def call(
        self, method: str, params: dict[str, Any], *, session_id: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session_id is not None:
            message["sessionId"] = session_id
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply["result"])
            page = self.pages.get(reply.get("sessionId", ""))
            if page is not None and "method" in reply:
                page.events.append(reply)

    def open(self, url: str) -> Page:
        """A new tab on `url`, loaded, recording its network requests."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = self.pages[session["sessionId"]] = Page(self, session["sessionId"])
        page.call("Network.enable")
        page.call("Page.enable")
        page.call("Page.navigate", url=url)
        page.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")
        return page

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                raise AssertionError(f"Chromium did not answer within {WAIT_S} s")
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                raise AssertionError(f"Chromium exited ({self.process.poll()})")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))


def _high(fd: int) -> int:
    """`fd` moved to 10 or above, out of the way of the 3 and 4 the browser reads and writes."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@contextmanager
def chromium(binary: str, profile: Path) -> Iterator[Browser]:
    """Headless Chromium with the protocol on pipes, killed when the block ends."""
    commands_read, commands_write = map(_high, os.pipe())
    replies_read, replies_write = map(_high, os.pipe())
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank",
    ]  # fmt: skip
    # bash puts the pipes on fds 3 and 4, then becomes Chromium.
    redirect = f"3<&{commands_read} 4>&{replies_write} {commands_read}<&- {replies_write}>&-"
    process = subprocess.Popen(
        ["bash", "-c", f'exec "$@" {redirect}', "chromium", binary, *flags],
        pass_fds=(commands_read, replies_write),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(commands_read)
    os.close(replies_write)
    try:
        yield Browser(process, commands_write, replies_read)
    finally:
        process.kill()
        process.wait()
        os.close(commands_write)
        os.close(replies_read)

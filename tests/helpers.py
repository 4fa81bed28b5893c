"""Small helpers shared by the integration tests."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m lookalike` child: this one, with the folder the tests
    import lookalike from first on PYTHONPATH (so a child of a test run from a source checkout
    runs that checkout's code, not another installed copy)."""
    import lookalike

    source = str(Path(lookalike.__file__).resolve().parents[1])
    paths = [source, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m lookalike ARGS` in a fresh process, as a user would run the command."""
    return subprocess.run(
        [sys.executable, "-m", "lookalike", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(COLUMNS="200"),
        check=False,
    )


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def top_path(result: dict[str, object]) -> str:
    matches = result["matches"]
    assert isinstance(matches, list) and matches, result
    return str(matches[0]["path"])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`lookalike serve` as a real process on a loopback port, for end-to-end tests."""

    def __init__(self, index: Path, *extra: str) -> None:
        import time
        import urllib.request

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = index.parent / f"server-{self.port}.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lookalike",
                    "serve",
                    "--index",
                    str(index),
                    "--port",
                    str(self.port),
                    *extra,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=cli_env(),
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def served_copy(index: Path, folder: Path, *extra: str) -> Iterator[str]:
    """A copy of ``index`` (its lock left behind) in ``folder``, served by a real
    `lookalike serve` process (with the options ``extra``) for as long as the block runs;
    yields its URL."""
    copy = folder / index.name
    shutil.copytree(index, copy, ignore=shutil.ignore_patterns("lock"))
    running = Server(copy, *extra)
    try:
        yield running.url
    finally:
        running.stop()


def committed_images(index: Path) -> int:
    """How many images the index's catalog has committed, read as another process would
    (read-only); -1 while there is no index or its catalog cannot be read yet."""
    catalog = index / "catalog.sqlite"
    if not (index / "manifest.json").exists() or not catalog.exists():
        return -1
    try:
        db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return -1


def multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file, and its content type."""
    boundary = "lookalike-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


#: Debian's chromium, driven by Playwright (nothing downloaded), and the flags it needs here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def wait_until(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll ``expression`` in ``page`` until it is true. Not ``page.wait_for_function``:
    Playwright evaluates its string with eval inside the page, which the page's CSP (rightly)
    forbids."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        page.wait_for_timeout(50)

"""Start a Streamlit app under ``streamlit run`` and stop it: for the browser tests and bench."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from noteloop.cli.admin import APP_SETTINGS

APP = Path(__file__).with_name("annotator_app.py")
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Headless Chromium as Debian ships it; no sandbox (containers), no network chatter.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def states_file(out_file: Path) -> Path:
    """Where the test app keeps the latest ``annotation`` state per fixture (the drafts)."""
    return out_file.with_name(f"{out_file.stem}-states.json")


@contextmanager
def serve_app(out_file: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run the test app on a free port; yields its URL once /_stcore/health answers.

    Every submitted result is appended to ``out_file`` (JSON list) by the app; the latest
    state the widget emitted for each fixture is kept in :func:`states_file`.
    """
    env = {
        "NOTELOOP_ANNOTATOR_OUT": str(out_file),
        "NOTELOOP_ANNOTATOR_STATES": str(states_file(out_file)),
    }
    with serve(APP, env, out_file.with_suffix(".log"), timeout) as url:
        yield url


@contextmanager
def serve(
    script: Path, env: dict[str, str], log_path: Path, timeout: float = 60.0
) -> Iterator[str]:
    """``streamlit run script`` on 127.0.0.1 and a free port, with ``env`` added to this
    process's environment; yields the URL once it is healthy, stops it afterwards."""
    port = free_port()
    env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    settings = {**APP_SETTINGS, "server.address": "127.0.0.1", "server.port": str(port),
                "server.fileWatcherType": "none"}
    options = [part for name, value in settings.items() for part in (f"--{name}", value)]
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), *options]
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s")

"""`noteloop serve`: the packaged app with its settings, started from any folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from noteloop.cli.admin import app_command
from noteloop.usecases.uploads import MAX_FILE_BYTES

NOTELOOP = Path(sys.executable).with_name("noteloop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_command_runs_the_packaged_app_with_its_settings():
    cmd = app_command("127.0.0.1", 8600)
    assert cmd[1:4] == ["-m", "streamlit", "run"]
    assert Path(cmd[4]) == Path(__file__).resolve().parents[1] / "noteloop" / "screen" / "app.py"
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8600"
    assert flags["--server.maxUploadSize"] == str(MAX_FILE_BYTES // 2**20)
    assert flags["--client.toolbarMode"] == "minimal"
    assert flags["--browser.gatherUsageStats"] == "false"


def test_serve_starts_the_app_from_a_folder_outside_the_checkout(tmp_path):
    port = free_port()
    db = tmp_path / "elsewhere.db"
    env = {**os.environ, "NOTELOOP_DB": "", "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(NOTELOOP), "serve", "--port", str(port), "--db", str(db)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_healthy(url, proc), (tmp_path / "serve.log").read_text()
        assert db.is_file()  # created (or migrated) before the app started
        assert f"noteloop on {url}" in (tmp_path / "serve.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.25)
    return False

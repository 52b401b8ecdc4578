"""`uploadsession serve` as a process: how it ends."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.processes import Azurite, Server
from tests.unit import tokens


def test_ctrl_c_stops_serve_with_exit_status_130(azurite: Azurite, tmp_path: Path) -> None:
    server = Server(
        {
            "UPLOADSESSION_STORAGE": azurite.connection_string,
            "AUTH_AUDIENCES": tokens.AUDIENCE,
        },
        tmp_path / "server.log",
        timers=False,
    ).start()
    assert server.proc is not None
    proc = server.proc
    try:
        assert httpx.get(server.base_url.rsplit("/", 1)[0] + "/health", timeout=30).status_code
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()

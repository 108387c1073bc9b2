"""`sales-cdc dashboard`: the Streamlit sales dashboard on 127.0.0.1, usage statistics off."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
DEFAULT_PORT = 8501


class DashboardError(RuntimeError):
    """The dashboard could not start."""


def streamlit_command(port: int) -> list[str]:
    """The `streamlit run` command line: loopback only, headless, no usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--client.toolbarMode=minimal",
    ]


def run_dashboard(port: int) -> int:
    """Replace this process with the Streamlit server (it stops on Ctrl-C / SIGTERM)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DashboardError(
                f"Port {port} on 127.0.0.1 is in use. Stop what listens there or choose another: "
                "sales-cdc dashboard --port <N>."
            ) from None
    print(f"Sales dashboard: http://127.0.0.1:{port}", flush=True)
    command = streamlit_command(port)
    os.execv(command[0], command)
    return 0  # not reached

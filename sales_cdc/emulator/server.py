"""The embedded AWS emulator: a moto server on 127.0.0.1."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from types import FrameType

from moto.server import ThreadedMotoServer

from sales_cdc.settings import DEFAULT_EMULATOR_PORT

HOST = "127.0.0.1"
log = logging.getLogger(__name__)


class EmulatorError(RuntimeError):
    """The emulator could not start."""


def _treat_loopback_as_secure_transport() -> None:
    """Evaluate `Bool aws:SecureTransport` in bucket policies as a TLS endpoint would.

    moto does not know the `Bool` operator and turns any statement whose condition it cannot
    evaluate into a deny, so the lake bucket's standard "deny when aws:SecureTransport is false"
    statement would deny every request. The emulator stands in for AWS's TLS endpoints and only
    listens on loopback, so its requests count as secure transport: such a statement does not
    apply. Every other statement keeps moto's own evaluation.
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted
    if getattr(original, "_sales_cdc_patched", False):
        return

    def is_action_permitted(self: IAMPolicyStatement, *args: object, **kwargs: object):
        condition = self._statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
        if secure is None:
            return original(self, *args, **kwargs)
        if str(secure).lower() != "true":
            return PermissionResult.NEUTRAL
        rest = {k: v for k, v in condition.items() if k != "Bool"}
        statement = {k: v for k, v in self._statement.items() if k != "Condition"}
        if rest:
            statement["Condition"] = rest
        return original(IAMPolicyStatement(statement), *args, **kwargs)

    is_action_permitted._sales_cdc_patched = True  # type: ignore[attr-defined]
    IAMPolicyStatement.is_action_permitted = is_action_permitted  # type: ignore[method-assign]


_GLUE_TABLE_LOCK = threading.Lock()


def _glue_update_table_checks_version_id() -> None:
    """Honour UpdateTable's VersionId as Glue does (optimistic locking of Iceberg commits).

    Glue updates a table "at" the VersionId given and answers ConcurrentModificationException
    when the table has moved on (docs: Glue API, UpdateTable, VersionId); Iceberg catalogs
    (pyiceberg's GlueCatalog) rely on it so that two concurrent commits never silently overwrite
    each other's metadata pointer. moto ignores the parameter: here a stale VersionId is refused
    and the check-and-update is atomic.
    """
    from moto.glue.exceptions import GlueClientError
    from moto.glue.responses import GlueResponse

    original = GlueResponse.update_table
    if getattr(original, "_sales_cdc_patched", False):
        return

    class ConcurrentModificationException(GlueClientError):
        def __init__(self, message: str) -> None:
            super().__init__("ConcurrentModificationException", message)

    def update_table(self: GlueResponse):  # type: ignore[no-untyped-def]
        version_id = self.parameters.get("VersionId")
        with _GLUE_TABLE_LOCK:
            if version_id is not None:
                table_input = self.parameters.get("TableInput") or {}
                table = self.glue_backend.get_table(
                    self.parameters.get("DatabaseName"), table_input.get("Name")
                )
                current = str(table._current_version)
                if str(version_id) != current:
                    raise ConcurrentModificationException(
                        f"Table {table_input.get('Name')} is at version {current}, "
                        f"not {version_id}: it was modified concurrently."
                    )
            return original(self)

    update_table._sales_cdc_patched = True  # type: ignore[attr-defined]
    GlueResponse.update_table = update_table  # type: ignore[method-assign]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EmulatorError(
                    f"Port {port} on {HOST} is already in use. Stop whatever listens there "
                    f"(`lsof -i :{port}`) or pick another port: sales-cdc emulator --port <N> "
                    "and export AWS_ENDPOINT_URL=http://127.0.0.1:<N>."
                ) from exc
            raise EmulatorError(f"Cannot bind {HOST}:{port}: {exc}") from exc


def wait_until_ready(endpoint: str, timeout: float = 30.0) -> None:
    """Poll the emulator until it answers, or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                return
        except (urllib.error.URLError, OSError) as exc:
            last_error = exc
            time.sleep(0.1)
    raise EmulatorError(
        f"The emulator at {endpoint} did not answer within {timeout:.0f}s: {last_error}"
    )


class Emulator:
    """A moto server bound to 127.0.0.1 only; use as a context manager or start()/stop()."""

    def __init__(self, port: int = DEFAULT_EMULATOR_PORT) -> None:
        self.port = port
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Emulator:
        _check_port_free(self.port)
        _treat_loopback_as_secure_transport()
        _glue_update_table_checks_version_id()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self._server.start()
        wait_until_ready(self.endpoint)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_emulator(port: int = DEFAULT_EMULATOR_PORT) -> None:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator = Emulator(port).start()
    print(f"sales-cdc emulator listening on {emulator.endpoint}", flush=True)
    print(f"  export AWS_ENDPOINT_URL={emulator.endpoint}", flush=True)
    try:
        stop.wait()
    finally:
        emulator.stop()
        print("sales-cdc emulator stopped", flush=True)

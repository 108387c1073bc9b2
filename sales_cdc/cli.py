"""The `sales-cdc` command: emulator, runtime, demo, query and dashboard."""

from __future__ import annotations

import argparse
import sys

from sales_cdc.settings import DEFAULT_EMULATOR_PORT, SettingsError


def _emulator(args: argparse.Namespace) -> int:
    from sales_cdc.emulator.server import run_emulator

    run_emulator(args.port)
    return 0


def _require_emulator() -> None:
    """Locally, one line naming the emulator and how to start it when nothing answers there."""
    from sales_cdc.settings import load_settings

    settings = load_settings()
    if settings.is_local:
        from sales_cdc.emulator.runtime import unreachable

        problem = unreachable(settings.endpoint_url or "")
        if problem:
            raise EndpointDown(problem)


class EndpointDown(RuntimeError):
    """The AWS endpoint the command needs does not answer."""


def _runtime(args: argparse.Namespace) -> int:
    from sales_cdc.emulator.runtime import run_runtime

    return run_runtime(args)


def _demo(args: argparse.Namespace) -> int:
    from sales_cdc.demo import run_demo

    return run_demo(
        emulator_port=args.emulator_port,
        ui_port=args.ui_port,
        state_dir=args.state_dir,
        dashboard_port=args.dashboard_port,
    )


def _dashboard(args: argparse.Namespace) -> int:
    from sales_cdc.dashboard import run_dashboard

    return run_dashboard(args.port)


def _query(args: argparse.Namespace) -> int:
    from sales_cdc.query_cli import run_query

    sql = sys.stdin.read() if args.sql == "-" else args.sql
    return run_query(
        sql, output=args.output, max_rows=args.max_rows, before_engine=_require_emulator
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sales-cdc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser(
        "emulator", help="run the embedded AWS emulator (moto server) on 127.0.0.1"
    )
    emulator.add_argument(
        "--port", type=int, default=DEFAULT_EMULATOR_PORT, help="port (default %(default)s)"
    )
    emulator.set_defaults(func=_emulator)

    runtime = commands.add_parser(
        "runtime", help="run the pipe and firehose data plane against the emulator (local only)"
    )
    from sales_cdc.emulator.runtime import add_arguments as add_runtime_arguments

    add_runtime_arguments(runtime)
    runtime.set_defaults(func=_runtime)

    demo = commands.add_parser(
        "demo", help="start emulator, runtime, provisioning and the Dagster UI (Ctrl-C stops all)"
    )
    demo.add_argument("--emulator-port", type=int, default=DEFAULT_EMULATOR_PORT)
    demo.add_argument("--ui-port", type=int, default=3000)
    demo.add_argument(
        "--dashboard-port", type=int, default=8501, help="sales dashboard (a free one if taken)"
    )
    demo.add_argument(
        "--state-dir",
        default=".demo",
        help="Dagster home and process logs, wiped at start (default %(default)s)",
    )
    demo.set_defaults(func=_demo)

    query = commands.add_parser(
        "query",
        help="run one read-only Athena query against the lake (DuckDB locally, Athena in aws)",
    )
    query.add_argument(
        "sql",
        help='one SELECT / WITH / VALUES / SHOW / DESCRIBE statement, e.g. "SELECT * FROM '
        'orders_current", or - for stdin; anything else is refused',
    )
    query.add_argument("--output", choices=("table", "csv", "json"), default="table")
    query.add_argument(
        "--max-rows",
        type=int,
        default=50,
        help="rows fetched and printed in every output format (default %(default)s)",
    )
    query.set_defaults(func=_query)

    dashboard = commands.add_parser(
        "dashboard",
        help="the sales dashboard (Streamlit) on 127.0.0.1, reading the lake through the "
        "QueryEngine",
    )
    dashboard.add_argument("--port", type=int, default=8501, help="port (default %(default)s)")
    dashboard.set_defaults(func=_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"sales-cdc: configuration error: {exc}", file=sys.stderr)
        return 2
    except EndpointDown as exc:
        print(f"sales-cdc {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI reports, the traceback is not for users
        from sales_cdc.dashboard import DashboardError
        from sales_cdc.emulator.server import EmulatorError

        if isinstance(exc, EmulatorError | DashboardError):
            print(f"sales-cdc: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())

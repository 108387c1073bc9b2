"""The dashboard's layout, run headless with Streamlit's AppTest over the test lake."""

import datetime as dt
import socket

import pytest
from streamlit.testing.v1 import AppTest

from sales_cdc.dashboard import APP, streamlit_command
from sales_cdc.resources.aws import AwsResource
from sales_cdc_tests.dashboard.conftest import DAY, NEXT_DAY, PREFIX

SECTIONS = [
    "Sales performance",
    "Order funnel",
    "Products and categories",
    "Customer behaviour",
    "Pipeline health",
]


@pytest.fixture
def app(lake: AwsResource, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("SALES_CDC_ENV", "local")
    monkeypatch.setenv("SALES_CDC_PREFIX", PREFIX)
    monkeypatch.setenv("AWS_ENDPOINT_URL", lake.endpoint_url)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return AppTest.from_file(str(APP), default_timeout=120)


def text(app: AppTest) -> str:
    parts = [
        e.value for kind in ("title", "header", "subheader", "caption") for e in getattr(app, kind)
    ]
    parts += [e.body for e in app.info] + [e.body for e in app.warning]
    parts += [f"{m.label}={m.value}" for m in app.metric]
    return "\n".join(str(p) for p in parts)


def test_every_section_renders_with_data_for_the_chosen_days(app: AppTest) -> None:
    app.run()
    assert not app.exception
    app.sidebar.date_input[0].set_value(
        (dt.date.fromisoformat(DAY), dt.date.fromisoformat(NEXT_DAY))
    )
    app.run()
    assert not app.exception, app.exception
    shown = text(app)
    for section in SECTIONS:
        assert section in shown
    assert [h.value for h in app.main.header] == SECTIONS
    # every chart has data: no empty state, and the per-currency charts side by side
    assert not app.info, [i.body for i in app.info]
    charts = app.get("vega_lite_chart")
    # daily + hourly (2 currencies each), funnel, rates, top by revenue + by units + categories
    # (2 currencies each), 3 customer dimensions, repeat customers
    assert len(charts) == 2 + 2 + 1 + 1 + 2 + 2 + 2 + 3 + 1
    assert all(c.proto.datasets and c.proto.datasets[0].data.data for c in charts)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics[f"Net revenue on {NEXT_DAY} · USD"] == "40.00"
    assert metrics[f"Net revenue on {NEXT_DAY} · EUR"] == "0.00"
    assert metrics[f"Orders on {NEXT_DAY}"] == "1"
    assert metrics["Failed records waiting in errors/"] == "0 objects"
    # without DAGSTER_HOME the health section says what to set
    assert any("DAGSTER_HOME" in w.body for w in app.warning)

    # one currency chosen: only its charts
    app.sidebar.multiselect[0].set_value(["USD"])
    app.run()
    assert not app.exception
    assert f"Net revenue on {NEXT_DAY} · EUR" not in {m.label for m in app.metric}


def test_days_without_data_show_what_to_do(app: AppTest) -> None:
    app.run()
    assert not app.exception
    app.sidebar.date_input[0].set_value((dt.date(2026, 1, 1), dt.date(2026, 1, 2)))
    app.run()
    assert not app.exception
    assert any("has no rows for the chosen order days" in i.body for i in app.info)
    assert not app.get("vega_lite_chart")


def test_streamlit_runs_on_loopback_without_usage_statistics() -> None:
    command = streamlit_command(8765)
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)]
    assert {
        "--server.address=127.0.0.1",
        "--server.port=8765",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
    } <= set(command)


def test_a_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from sales_cdc.cli import main

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 1
    assert f"Port {port} on 127.0.0.1 is in use" in capsys.readouterr().err

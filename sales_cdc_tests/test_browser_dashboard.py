"""The sales dashboard in a real browser: `sales-cdc demo` started as a user starts it, the
dashboard it prints opened in headless Chromium; every chart renders with data, numbers show on
hover, and a figure on the page equals the same figure from `sales-cdc query`."""

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sales_cdc.stack import REPO_ROOT
from sales_cdc_tests.test_browser_demo import (  # noqa: F401 - fixtures used by name
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    VIEWPORT,
    DemoProcess,
    demo,
    sync_playwright,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1080)]

DEADLINE_S = 900  # the whole test, demo start included (the first aggregates take minutes)
SECTIONS = [
    "Sales performance",
    "Order funnel",
    "Products and categories",
    "Customer behaviour",
    "Pipeline health",
]
EMPTY_STATES = ("No data in", "has no rows for the chosen order days")


def _dashboard_url(running: DemoProcess, timeout: float) -> str:
    """The address the demo prints once the dashboard answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running.track()
        found = re.search(r"Dashboard:\s+(http://127\.0\.0\.1:\d+)", running.log_path.read_text())
        if found:
            return found.group(1)
        if running.process is not None and running.process.poll() is not None:
            pytest.fail(
                f"sales-cdc demo exited before the dashboard started:\n{running.log_tail()}"
            )
        time.sleep(1)
    pytest.fail(f"the demo printed no dashboard address in {timeout:.0f}s:\n{running.log_tail()}")


def _query(running: DemoProcess, sql: str) -> list[dict]:
    """Rows of `sales-cdc query --output json` against the demo's emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALES_CDC_", "AWS_"))}
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{running.emulator_port}"
    done = subprocess.run(
        [sys.executable, "-m", "sales_cdc.cli", "query", "--output", "json", sql],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _metrics(page) -> dict[str, str]:
    found = {}
    for metric in page.get_by_test_id("stMetric").all():
        label = metric.get_by_test_id("stMetricLabel").inner_text().strip()
        found[label] = metric.get_by_test_id("stMetricValue").inner_text().strip()
    return found


def _screenshot(page, directory: Path, name: str) -> None:
    for folder in {directory, SCREENSHOTS}:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _wait_for_every_chart(page, start: float, running: DemoProcess, shots: Path) -> int:
    """Wait until no section shows an empty state; the number of charts then on the page."""
    while True:
        page.get_by_text("Pipeline health", exact=True).first.wait_for(timeout=120_000)
        page.wait_for_timeout(3000)
        body = page.inner_text("body")
        charts = page.get_by_test_id("stVegaLiteChart").count()
        if not any(text in body for text in EMPTY_STATES) and charts:
            return charts
        if time.monotonic() - start > DEADLINE_S - 60:
            _screenshot(page, shots, "dashboard-timeout")
            pytest.fail(
                f"the dashboard still shows empty states after {DEADLINE_S - 60}s:\n"
                f"{body[:3000]}\n{running.log_tail()}"
            )
        running.track()
        page.wait_for_timeout(10_000)


def test_dashboard_in_the_browser(sync_playwright, demo: DemoProcess, tmp_path: Path) -> None:  # noqa: F811
    start = time.monotonic()
    demo.wait_for_ui(240)
    url = _dashboard_url(demo, 180)
    shots = tmp_path / "screenshots"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("Sales dashboard", exact=True).first.wait_for(timeout=120_000)
            charts = _wait_for_every_chart(page, start, demo, shots)
            for section in SECTIONS:
                page.get_by_role("heading", name=section).first.wait_for()

            # every chart drew something: a canvas or svg of real size in each chart element
            currencies = {label.rsplit(" · ", 1)[1] for label in _metrics(page) if " · " in label}
            # per currency: daily, hourly, top by revenue, top by units, categories; plus the
            # funnel, the rates, three customer dimensions and the repeat customers
            assert currencies and charts == 5 * len(currencies) + 6, (charts, currencies)
            for chart in page.get_by_test_id("stVegaLiteChart").all():
                chart.scroll_into_view_if_needed()
                drawn = chart.locator("canvas, svg.marks").first
                drawn.wait_for()
                box = drawn.bounding_box()
                assert box and box["width"] > 50 and box["height"] > 50, box

            # numbers on hover: the funnel's bars show their counts in a tooltip
            funnel = page.get_by_test_id("stVegaLiteChart").nth(2 * len(currencies))
            funnel.scroll_into_view_if_needed()
            box = funnel.locator("canvas, svg.marks").first.bounding_box()
            tooltip = page.locator("#vg-tooltip-element")
            for fraction in (0.08, 0.12, 0.2, 0.3):
                # the first bar (PLACED) starts at the left edge of the plot, near the top
                page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * fraction)
                page.wait_for_timeout(500)
                if tooltip.is_visible() and re.search(r"\d", tooltip.inner_text()):
                    break
            assert tooltip.is_visible() and "orders" in tooltip.inner_text(), tooltip.inner_text()

            # the health section reads the demo's Dagster instance
            page.get_by_text("Last check results").first.wait_for()
            assert "passed" in page.inner_text("body")

            # a figure on the page equals `sales-cdc query` (the page refreshes itself, the
            # pipeline keeps writing: compare once the page and the query agree on a state)
            today = dt.datetime.now(dt.UTC).date().isoformat()
            currency = sorted(currencies)[0]
            label = f"Net revenue on {today} · {currency}"
            sql = (
                "SELECT CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue "  # noqa: S608
                f"FROM daily_sales_by_category WHERE order_date = '{today}' "
                f"AND currency = '{currency}'"
            )
            seen = []
            for _ in range(8):
                before = _metrics(page).get(label)
                (row,) = _query(demo, sql)
                queried = f"{float(row['net_revenue'] or 0):,.2f}"
                after = _metrics(page).get(label)
                seen.append((before, queried, after))
                if before == queried == after:
                    break
                page.wait_for_timeout(6000)
            else:
                pytest.fail(f"{label!r} on the page never equalled sales-cdc query: {seen}")
            # the whole dashboard in one picture (the README's): a viewport as tall as the page
            page.mouse.move(0, 0)
            height = page.get_by_test_id("stMainBlockContainer").evaluate("e => e.scrollHeight")
            page.set_viewport_size({"width": VIEWPORT["width"], "height": min(height + 80, 9000)})
            page.wait_for_timeout(4000)
            with contextlib.suppress(Exception):  # not mid-refresh (Streamlit greys stale parts)
                page.wait_for_function(
                    "() => !document.querySelector('[data-stale=\"true\"]')", timeout=15_000
                )
            _screenshot(page, shots, "dashboard")
        finally:
            browser.close()

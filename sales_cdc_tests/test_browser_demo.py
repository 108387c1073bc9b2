"""The whole demo in a real browser: `sales-cdc demo` started as a user starts it, then driven
through the Dagster UI in headless Chromium (data in every asset within the first minute and no
missing aggregate partition, the graph, a materialization launched from the UI, aggregate
materializations with their metadata)."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from sales_cdc.emulator.server import free_port
from sales_cdc.stack import REPO_ROOT, load_declaration

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1200)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
DEADLINE_S = 900  # the whole test, demo start included
UI_START_TIMEOUT_S = 240
# Every asset has data, and every order day of the generator's history its aggregate
# partitions, within the minute issue 11 asks for after `sales-cdc demo` starts. On the 2-core
# machine that takes 32-36 s quiet and 33-37 s in this test during a full `make test` (runs
# forked from the preloaded run launcher; 73 s quiet before it). The test records what it
# measured in build/screenshots/first-minute.txt.
FIRST_DATA_S = 60
# The days of history the generator's first run writes locally (infra/stack.yaml), each with orders.
HISTORY_DAYS = int(load_declaration("local")["generator"]["history_days"])

# asset key -> group, as the code location declares them
ASSETS = {
    "dynamodb/orders": "sources",
    "s3/raw/orders_cdc": "landing",
    "s3/errors/orders_cdc": "landing",
    "sqs/orders_cdc_dead_letters": "landing",
    "glue/orders_cdc": "lake",
    "athena/orders_current": "lake",
    "athena/daily_sales_by_product": "analytics",
    "athena/daily_sales_by_category": "analytics",
    "athena/daily_order_status": "analytics",
    "athena/hourly_revenue": "analytics",
    "athena/daily_customer_behaviour": "analytics",
}
# Materialized by the landing sensor when Firehose writes error records: none in a healthy demo.
# Materialized only when something fails (error records, dead-lettered batches).
ONLY_ON_ERRORS = {"s3/errors/orders_cdc", "sqs/orders_cdc_dead_letters"}
AGGREGATES = [key for key, group in ASSETS.items() if group == "analytics"]


@pytest.fixture
def sync_playwright():
    """Playwright's entry point, or a skip saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install -e '.[browser]' (make test installs it)")
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium not installed at {CHROMIUM}: run `apt-get install chromium` "
            "(make test does this when it can)"
        )
    return sync_playwright


# --- the demo process and everything it starts -------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _start_time(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class DemoProcess:
    """`sales-cdc demo` in its own session, with every process it started tracked."""

    def __init__(self, state_dir: Path) -> None:
        self.emulator_port = free_port()
        self.ui_port = free_port()
        while self.ui_port == self.emulator_port:
            self.ui_port = free_port()
        self.url = f"http://127.0.0.1:{self.ui_port}"
        self.log_path = state_dir / "demo.log"
        self.state_dir = state_dir
        self.seen: dict[int, str | None] = {}  # pid -> start time, of every descendant seen
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SALES_CDC_", "AWS_"))}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sales_cdc.cli",
                    "demo",
                    "--emulator-port",
                    str(self.emulator_port),
                    "--ui-port",
                    str(self.ui_port),
                    "--state-dir",
                    str(self.state_dir),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def track(self) -> None:
        """Remember the processes the demo has started so far (its children have own sessions)."""
        assert self.process is not None
        for pid in _descendants(self.process.pid):
            self.seen.setdefault(pid, _start_time(pid))

    def log_tail(self, lines: int = 40) -> str:
        out = [f"--- {self.log_path} ---"]
        out += self.log_path.read_text(errors="replace").splitlines()[-lines:]
        for child_log in sorted((self.state_dir / "logs").glob("*.log")):
            out.append(f"--- {child_log} ---")
            out += child_log.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(out)

    def wait_for_ui(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.track()
            if self.process.poll() is not None:
                pytest.fail(
                    f"sales-cdc demo exited with code {self.process.returncode} before the UI "
                    f"answered:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(1)
        pytest.fail(
            f"the Dagster UI did not answer on {self.url} in {timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self) -> list[str]:
        """SIGTERM the demo, SIGKILL after a timeout; return the processes left behind (killed)."""
        if self.process is None:
            return []
        self.track()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        time.sleep(1)
        left = []
        for pid, started in self.seen.items():
            if started is not None and _start_time(pid) == started and _alive(pid):
                try:
                    cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
                except OSError:
                    continue
                command = cmdline.replace(b"\0", b" ").decode(errors="replace")
                left.append(f"{pid}: {command[:160]}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return left


@pytest.fixture
def demo(sync_playwright, tmp_path: Path) -> Iterator[DemoProcess]:
    state_dir = tmp_path / "demo"
    state_dir.mkdir()
    process = DemoProcess(state_dir)
    left: list[str] = []
    try:
        process.start()
        yield process
    finally:
        left = process.stop()
    assert process.process is not None
    assert process.process.returncode == 0, (
        f"sales-cdc demo exited with {process.process.returncode} on SIGTERM:\n{process.log_tail()}"
    )
    assert not left, "processes left running after the demo stopped:\n" + "\n".join(left)


# --- the UI ---------------------------------------------------------------------------------


class Ui:
    """A page of the Dagster UI and the few gestures the test needs."""

    def __init__(self, page, url: str, shots: list[Path]) -> None:
        self.page = page
        self.url = url
        self.shots = shots

    def goto(self, path: str) -> None:
        self.page.goto(self.url + path, wait_until="domcontentloaded")
        self.dismiss_nags()

    def dismiss_nags(self) -> None:
        """Skip the 'Join the Dagster community' dialog shown on a fresh browser profile."""
        skip = self.page.get_by_role("dialog").get_by_role("button", name="Skip")
        with contextlib.suppress(Exception):
            skip.wait_for(state="visible", timeout=3000)
            skip.click()
        self.clear_overlays()

    def clear_overlays(self) -> None:
        """Close whatever Blueprint overlay (dialog, popover, toast backdrop) covers the page."""
        backdrop = self.page.locator(".bp5-overlay-backdrop")
        for _ in range(3):
            if not backdrop.count():
                return
            self.page.keyboard.press("Escape")
            with contextlib.suppress(Exception):
                backdrop.first.wait_for(state="detached", timeout=3000)

    def click(self, locator) -> None:
        """Click `locator`; when an overlay intercepts the click, close it and click again."""
        for attempt in range(3):
            try:
                locator.click(timeout=10_000)
                return
            except Exception:
                if attempt == 2:
                    raise
                self.dismiss_nags()

    def screenshot(self, name: str) -> None:
        for directory in {self.shots[0], SCREENSHOTS}:
            directory.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(directory / f"{name}.png"))

    def body(self) -> str:
        return self.page.inner_text("body")


def _remaining(start: float) -> float:
    return DEADLINE_S - (time.monotonic() - start)


def _asset_graph_labels(ui: Ui) -> Counter:
    """Show every group expanded on the global lineage page and read the asset nodes' labels."""
    page = ui.page
    ui.goto("/asset-groups")
    page.get_by_text("Global asset lineage").first.wait_for(timeout=60_000)
    page.locator("foreignObject.group").nth(len(set(ASSETS.values())) - 1).wait_for()
    # Room for the graph: hide the navigation and the asset tree (both remembered per browser).
    ui.clear_overlays()
    hide_navigation = page.get_by_role("button", name="Hide navigation")
    if hide_navigation.is_visible():
        ui.click(hide_navigation)
    jump_to = page.get_by_placeholder("Jump to…")
    if jump_to.is_visible():
        ui.click(
            page.get_by_role("button")
            .filter(has=page.get_by_role("img", name="panel_show_right"))
            .first
        )
        jump_to.wait_for(state="hidden")
    settings = page.get_by_role("button").filter(has=page.get_by_role("img", name="settings"))
    ui.click(settings.last)
    expand = page.get_by_role("menuitem", name=re.compile("Expand all groups"))
    expand.or_(page.get_by_role("menuitem", name=re.compile("Collapse all groups"))).wait_for()
    if expand.count():
        ui.click(expand)
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)
    _center_graph(page)
    # The nodes show their full cards (name, checks, status) once the graph is large enough.
    zoom_in = page.get_by_role("button").filter(has=page.get_by_role("img", name="zoom_in"))
    labels: Counter = Counter()
    for attempt in range(4):
        page.wait_for_timeout(1500)
        tooltips = page.eval_on_selector_all(
            "foreignObject:not(.group) [data-tooltip]",
            "els => els.map(e => e.getAttribute('data-tooltip'))",
        )
        labels = Counter(tooltips)
        if sum(labels.values()) >= len(ASSETS) or attempt == 3:
            break
        if not labels:
            zoom_in.first.click()
    return labels


def _center_graph(page) -> None:
    """Pan the graph so that the groups sit in the middle of the canvas."""
    canvas = page.locator("[data-svg-viewport]").first.bounding_box()
    boxes = [
        box
        for box in (group.bounding_box() for group in page.locator("foreignObject.group").all())
        if box
    ]
    if not canvas or not boxes:
        return
    left = min(b["x"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    top = min(b["y"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes)
    dx = canvas["x"] + canvas["width"] / 2 - (left + right) / 2
    dy = canvas["y"] + canvas["height"] / 2 - (top + bottom) / 2
    # The bottom left corner of the canvas: no node, no toolbar there.
    x, y = canvas["x"] + 15, canvas["y"] + canvas["height"] - 15
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=10)
    page.mouse.up()
    page.mouse.move(x, y)


def test_demo_in_the_browser(sync_playwright, demo: DemoProcess, tmp_path: Path) -> None:
    start = time.monotonic()
    demo.wait_for_ui(UI_START_TIMEOUT_S)

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", *CHROMIUM_ARGS],
            viewport=VIEWPORT,
        )
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            ui = Ui(page, demo.url, [tmp_path / "screenshots"])
            _check_first_minute(ui, demo)
            demo.track()
            _check_graph(ui)
            demo.track()
            _check_materialize_from_ui(ui, start)
            demo.track()
            _check_aggregates(ui, demo, start)
            demo.track()
            # Everything has materialized by now: the graph as the README shows it.
            _asset_graph_labels(ui)
            ui.screenshot("asset-graph-final")
        finally:
            context.close()


ASSET_STATE = """
query AssetState($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetMaterializations(limit: 1) { timestamp }
      partitionKeys
      partitionMaterializations: assetMaterializations(limit: 1000) { partition }
      partitionStats { numMaterialized numMaterializing numFailed numPartitions }
    }
  }
}
"""


def _asset_state(url: str, key: str) -> dict:
    body = json.dumps({"query": ASSET_STATE, "variables": {"key": {"path": key.split("/")}}})
    request = urllib.request.Request(
        f"{url}/graphql", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)["data"]["assetNodeOrError"]


def _missing_partitions(states: dict[str, dict]) -> dict[str, list[str]]:
    """Aggregate -> its order-day partitions without a materialization (a partition refreshed
    again right now still has its earlier one), or a note when it has fewer partitions than the
    days of the generator's history (every one of those days has orders)."""
    missing: dict[str, list[str]] = {}
    for key in AGGREGATES:
        state = states[key]
        done = {m["partition"] for m in state["partitionMaterializations"]}
        without = sorted(set(state["partitionKeys"]) - done)
        if len(state["partitionKeys"]) < HISTORY_DAYS:
            without.append(f"only {len(state['partitionKeys'])} partitions, {HISTORY_DAYS} days")
        if without:
            missing[key] = without
    return missing


def _check_first_minute(ui: Ui, demo: DemoProcess) -> None:
    """Within FIRST_DATA_S of the demo's start every asset has data and no aggregate partition
    of the demo's order days is missing (printed with the time it took)."""
    deadline = demo.started + FIRST_DATA_S
    waiting = [key for key in ASSETS if key not in ONLY_ON_ERRORS]
    states: dict[str, dict] = {}
    while True:
        states = {key: _asset_state(demo.url, key) for key in waiting}
        empty = [key for key, state in states.items() if not state["assetMaterializations"]]
        missing = _missing_partitions(states) if not empty else {}
        if not empty and not missing:
            break
        demo.track()
        if time.monotonic() > deadline:
            ui.goto("/assets/athena/daily_sales_by_product?view=partitions")
            ui.screenshot("first-minute-timeout")
            pytest.fail(
                f"{time.monotonic() - demo.started:.0f}s after the demo started: no data yet in "
                f"{empty}, partitions missing in {missing}\n{demo.log_tail()}"
            )
        time.sleep(2)
    elapsed = time.monotonic() - demo.started
    print(f"every asset has data, no aggregate partition missing, {elapsed:.0f}s after the start")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "first-minute.txt").write_text(f"{elapsed:.1f}\n")
    for key in AGGREGATES:
        print(f"{key}: {states[key]['partitionStats']}")
    ui.goto("/assets/athena/daily_sales_by_product?view=partitions")
    ui.page.get_by_text("daily_sales_by_product").first.wait_for()
    ui.screenshot("aggregate-partitions")


def _check_graph(ui: Ui) -> None:
    labels = _asset_graph_labels(ui)
    ui.screenshot("asset-graph")
    expected = Counter(key.rsplit("/", 1)[1] for key in ASSETS)
    assert labels == expected, f"asset graph nodes: {dict(labels)}, expected {dict(expected)}"
    # The graph names assets by their last path part; the catalog shows the full keys.
    ui.goto("/assets")
    for key in ASSETS:
        ui.page.get_by_text(key.replace("/", " / "), exact=True).first.wait_for(timeout=30_000)
    ui.screenshot("catalog")


def _check_materialize_from_ui(ui: Ui, start: float) -> None:
    page = ui.page
    ui.goto("/assets/dynamodb/orders")
    page.get_by_text("OrderTable in DynamoDB").first.wait_for()
    button = page.get_by_role("button").filter(has_text=re.compile(r"^\s*Materialize\s*$"))
    ui.click(button.first)
    launched = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first
    launched.wait_for(timeout=30_000)
    short_id = re.search(r"Launched run ([0-9a-f]{8})", launched.inner_text()).group(1)
    href = page.locator(f"a[href^='/runs/{short_id}']").first.get_attribute("href")
    run_path = href.split("?", 1)[0]
    ui.goto(run_path)
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$"))
    status.first.wait_for(timeout=max(10_000, min(180_000, _remaining(start) * 1000 - 200_000)))
    ui.screenshot("materialize-run")
    assert status.first.inner_text() == "Success", (
        f"the run {run_path} launched from the UI ended {status.first.inner_text()}:\n"
        + ui.body()[:3000]
    )
    page.get_by_text("ASSET_MATERIALIZATION").first.wait_for()


def _check_aggregates(ui: Ui, demo: DemoProcess, start: float) -> None:
    page = ui.page
    path = "/assets/athena/daily_sales_by_product?view=events"
    while True:
        ui.goto(path)
        page.get_by_text("daily_sales_by_product").first.wait_for()
        with contextlib.suppress(Exception):
            page.get_by_text("net_revenue", exact=True).first.wait_for(timeout=8_000)
        text = ui.body()
        if all(key in text for key in ("rows", "days_refreshed", "net_revenue")):
            break
        if _remaining(start) < 20:
            ui.screenshot("aggregates-timeout")
            pytest.fail(
                "athena/daily_sales_by_product shows no materialization with metadata after "
                f"{DEADLINE_S}s:\n{text[:2000]}\n{demo.log_tail()}"
            )
        demo.track()
        page.wait_for_timeout(10_000)
    ui.screenshot("aggregate-events")
    for name in ("daily_sales_by_category", "daily_order_status", "hourly_revenue"):
        ui.goto(f"/assets/athena/{name}?view=events")
        page.get_by_text("days_refreshed", exact=True).first.wait_for(
            timeout=max(5_000, _remaining(start) * 1000)
        )

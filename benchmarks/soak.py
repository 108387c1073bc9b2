"""Soak: 20,000+ changes through the whole local demo, with every process's memory watched.

Starts `sales-cdc demo` on free ports (its own state directory) exactly as a user does: emulator,
provisioning, runtime and `dagster dev` (webserver, daemon, code server), with the generator
schedule, sensors and crawler running as usual. It then launches the generator as a user would
(`dagster asset materialize --select dynamodb/orders` with a large mix, in the demo's Dagster
instance) batch after batch, and reads each batch's write rate from its materialization. It
prints the resident memory (RSS) of every long-lived process of the demo and the generator's
write rate after the warm-up batch and at the end, and whether memory stayed flat (end <= 1.5x
the post-warm-up figure) and the write rate flat (the median of the last three runs >= 0.67x the
median of the first three: one run's rate swings with the pipeline's other work on the machine).
It also prints the CPU each process used per second of each generator run (runs count under the
run launcher's preloader, which forks and reaps them): what grows with the history competes with
the generator for the machine's cores.

    .venv/bin/python benchmarks/soak.py --changes 20000 --batch 2000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sales_cdc.emulator.server import free_port  # noqa: E402

# process label -> what its command line contains (the demo's long-lived processes)
PROCESSES = {
    "emulator": "sales_cdc.cli emulator",
    "runtime": "sales_cdc.cli runtime",
    "dagster dev": "dagster dev",
    "dagster webserver": "-m dagster_webserver",
    "dagster daemon": "-m dagster._daemon run",
    "code server": "-m dagster api grpc",
    "code server proxy": "-m dagster code-server start",
    "run launcher preloader": "-m sales_cdc.run_launcher",
}


def _descendants(pid: int) -> set[int]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _is_run(pid: int, status: str) -> bool:
    """A run's process: a fork of the run launcher's preloader (same command line, short-lived)."""
    ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
    try:
        parent = Path(f"/proc/{ppid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return PROCESSES["run launcher preloader"] in parent


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sample_processes(root: int) -> tuple[dict[str, float], dict[str, float]]:
    """MB of resident memory and CPU seconds so far of each long-lived process of the demo
    (summed per label). CPU counts the children a process has reaped: the run launcher's
    preloader reaps the runs it forks, so its figure includes every finished run."""
    sizes: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for pid in _descendants(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        label = next((name for name, part in PROCESSES.items() if part in command), None)
        if label is None or _is_run(pid, status):
            continue
        kb = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
        sizes[label] = sizes.get(label, 0.0) + kb / 1024
        # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat (11-14 after the name)
        ticks = sum(int(value) for value in stat[11:15])
        cpu[label] = cpu.get(label, 0.0) + ticks / CLOCK_TICKS
    return sizes, cpu


def rss_by_process(root: int) -> dict[str, float]:
    """MB of resident memory of each long-lived process of the demo (summed per label)."""
    return sample_processes(root)[0]


def _wait(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def generator_batch(env: dict[str, str], mix: dict[str, int], log: Path) -> dict[str, float]:
    """One generator run launched as a user launches it; its materialization's numbers."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    config = {"ops": {"dynamodb__orders": {"config": mix}}}
    with log.open("ab") as out:
        subprocess.run(
            [dagster, "asset", "materialize", "-m", "sales_cdc.definitions",
             "--select", "dynamodb/orders", "--config-json", json.dumps(config)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=True,
        )  # fmt: skip
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        records = instance.fetch_materializations(
            dg.AssetKey(["dynamodb", "orders"]), limit=20, ascending=False
        ).records
        # the newest run launched from the command line (the schedule's runs carry its tag)
        mine = next(
            r
            for r in records
            if "dagster/schedule_name" not in getattr(instance.get_run_by_id(r.run_id), "tags", {})
        )
    assert mine.asset_materialization is not None
    metadata = mine.asset_materialization.metadata
    return {key: float(metadata[key].value) for key in
            ("inserted", "updated", "deleted", "conflicts", "writes_per_second", "items_in_table")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=20_000, help="changes to drive at least")
    parser.add_argument("--batch", type=int, default=2_000, help="changes per generator run")
    parser.add_argument("--settle", type=float, default=45.0, help="seconds before the end sample")
    args = parser.parse_args()

    emulator_port, ui_port = free_port(), free_port()
    state = Path(tempfile.mkdtemp(prefix="sales-cdc-soak-"))
    endpoint = f"http://127.0.0.1:{emulator_port}"
    env = {**os.environ, "SALES_CDC_ENV": "local", "AWS_ENDPOINT_URL": endpoint,
           "DAGSTER_HOME": str(state / "dagster_home")}  # fmt: skip
    env.pop("SALES_CDC_PREFIX", None)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    demo_log = (state / "demo.out").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "demo", "--emulator-port", str(emulator_port),
         "--ui-port", str(ui_port), "--state-dir", str(state)],
        cwd=REPO, env=env, stdout=demo_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    # A batch: mostly new orders, the rest status changes and a few deletes.
    new = args.batch * 6 // 10
    mix = {"new_orders": new, "status_updates": args.batch - new - args.batch // 20,
           "deletes": args.batch // 20, "history": False}  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{ui_port}/server_info", 300)
        print(f"soak: demo up (state {state}); batches of {args.batch} changes", flush=True)
        batches: list[dict[str, float]] = []
        start_rss: dict[str, float] = {}
        started = time.monotonic()
        cpu_before, at = sample_processes(demo.pid)[1], started
        shares: list[dict[str, float]] = []  # per batch: CPU seconds per wall second, per process
        while (
            sum(b["inserted"] + b["updated"] + b["deleted"] + b["conflicts"] for b in batches)
            < args.changes
        ):
            batch = generator_batch(env, mix, state / "generator.log")
            batches.append(batch)
            rss, cpu = sample_processes(demo.pid)
            now = time.monotonic()
            shares.append({k: (v - cpu_before.get(k, 0.0)) / (now - at) for k, v in cpu.items()})
            cpu_before, at = cpu, now
            total = int(
                sum(b["inserted"] + b["updated"] + b["deleted"] + b["conflicts"] for b in batches)
            )
            print(f"  batch {len(batches):2d}: {total:6d} changes, {batch['writes_per_second']:6.1f} "
                  f"writes/s, {int(batch['items_in_table'])} orders; RSS MB "
                  + ", ".join(f"{k} {v:.0f}" for k, v in sorted(rss.items())), flush=True)  # fmt: skip
            print("            CPU s/s "
                  + ", ".join(f"{k} {v:.2f}" for k, v in sorted(shares[-1].items())), flush=True)  # fmt: skip
            if len(batches) == 1:
                start_rss = rss  # after the warm-up batch
        time.sleep(args.settle)  # let the runtime and the lake catch up
        end_rss = rss_by_process(demo.pid)
        elapsed = time.monotonic() - started
        total = int(
            sum(b["inserted"] + b["updated"] + b["deleted"] + b["conflicts"] for b in batches)
        )
        print(
            f"\nsoak: {total} changes in {len(batches)} generator runs, {elapsed:.0f} s", flush=True
        )
        print(f"{'process':<18} {'RSS after warm-up':>18} {'RSS at end':>11} {'ratio':>6}")
        flat = True
        for name in sorted(set(start_rss) | set(end_rss)):
            begin, end = start_rss.get(name, 0.0), end_rss.get(name, 0.0)
            ratio = end / begin if begin else float("inf")
            flat &= ratio <= 1.5
            print(f"{name:<18} {begin:>15.0f} MB {end:>8.0f} MB {ratio:>6.2f}")
        rates = [b["writes_per_second"] for b in batches]
        first_rate, last_rate = rates[0], rates[-1]
        print(f"generator write rate: first run {first_rate:.1f}/s, last run {last_rate:.1f}/s "
              f"(x{last_rate / first_rate if first_rate else 0.0:.2f})")  # fmt: skip
        # One run's rate swings with what else the two cores do at the time (merges, crawls,
        # reconciliation): flatness compares the medians of the first and last three runs.
        early, late = statistics.median(rates[:3]), statistics.median(rates[-3:])
        rate_ratio = late / early if early else 0.0
        print(f"  median of the first 3 runs {early:.1f}/s, of the last 3 {late:.1f}/s "
              f"(x{rate_ratio:.2f})")  # fmt: skip
        # Where the machine's two cores went, early and late: what grows with the history
        # competes with the generator for CPU.
        print(f"{'CPU s per wall s':<24} {'first 3 runs':>12} {'last 3 runs':>12}")
        for name in sorted({k for share in shares for k in share}):
            head = statistics.median(share.get(name, 0.0) for share in shares[:3])
            tail = statistics.median(share.get(name, 0.0) for share in shares[-3:])
            print(f"{name:<24} {head:>12.2f} {tail:>12.2f}")
        print(
            f"memory flat (end <= 1.5x): {'yes' if flat else 'NO'}; "
            f"write rate flat (medians >= 0.67x): {'yes' if rate_ratio >= 0.67 else 'NO'}"
        )
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
        demo_log.close()


if __name__ == "__main__":
    main()

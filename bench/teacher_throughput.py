"""Teacher gateway throughput and CPU per call, against the simulator in its own process.

    python bench/teacher_throughput.py [--quick] [--concurrency 32,256] --json bench/results/teacher_throughput.json

For each concurrency level, ``label`` requests (max(2,000, 20 × concurrency); max(200, 4 × concurrency)
with --quick) against a simulator with 200 ± 40 ms latency (a realistic floor for an LLM API), with a
fresh cache and a real run store as the journal. The ideal is concurrency / mean latency; the ratio is
achieved / ideal. CPU is measured on both sides: ``cpu_ms_per_call`` is this process's CPU time
(``time.process_time``) over the run divided by the calls, i.e. the gateway's own cost (client, cache,
journal, ledger, event loop); ``sim_cpu_ms_per_call`` is the simulator process's (from
``/proc/<pid>/stat``). On a machine with few cores their sum × the ideal rate tells whether the CPU,
and whose, bounds the ratio. Then, at the first level: the same with 10% faults (429 with
Retry-After, 5xx, malformed JSON), and a fully cached rerun.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.store import RunStore  # noqa: E402
from generators.cache import CachedResponse, ResponseCache  # noqa: E402
from generators.generation import TaskInfo, label_requests  # noqa: E402
from generators.journal import CallRecord  # noqa: E402
from generators.ledger import Ledger, Prices, Reservation  # noqa: E402
from generators.schemas import AssignedLabels  # noqa: E402
from generators.teacher import Teacher, TeacherConfig, TeacherRequest  # noqa: E402

POOL = ROOT / "examples" / "banking77" / "pool.jsonl"
LATENCY_MS, JITTER_MS = 200.0, 40.0
FAULTS = {"rate_429": 0.034, "retry_after_s": 0.2, "rate_5xx": 0.033, "rate_malformed": 0.033}


# -- CPU accounting ---------------------------------------------------------------------------------


@dataclass
class Meter:
    """CPU seconds (this thread) spent inside the gateway's cache, journal and ledger."""

    seconds: dict[str, float] = field(default_factory=lambda: {"cache": 0.0, "journal": 0.0, "ledger": 0.0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, part: str, since: float) -> None:
        spent = time.thread_time() - since
        with self.lock:
            self.seconds[part] += spent


class MeteredCache(ResponseCache):
    def __init__(self, path: Path, meter: Meter) -> None:
        super().__init__(path)
        self.meter = meter

    def get(self, key: str) -> CachedResponse | None:
        t = time.thread_time()
        try:
            return super().get(key)
        finally:
            self.meter.add("cache", t)

    def put(self, key: str, response: CachedResponse) -> None:
        if hasattr(ResponseCache, "_write_rows"):  # metered where the rows are written, on whichever thread
            super().put(key, response)
            return
        t = time.thread_time()
        try:
            super().put(key, response)
        finally:
            self.meter.add("cache", t)

    def _write_rows(self, rows: list[Any]) -> None:  # the commit (aput's runs on the cache's writer thread)
        t = time.thread_time()
        try:
            super()._write_rows(rows)
        finally:
            self.meter.add("cache", t)


class MeteredLedger(Ledger):
    def __init__(self, prices: Prices, meter: Meter) -> None:
        super().__init__(prices)
        self.meter = meter

    def reserve(
        self, prompt_bytes: int, wanted_output: int, *, min_output: int | None = None, price_factor: float = 1.0
    ) -> Reservation:
        t = time.thread_time()
        try:
            return super().reserve(prompt_bytes, wanted_output, min_output=min_output, price_factor=price_factor)
        finally:
            self.meter.add("ledger", t)

    def settle(self, reservation: Reservation, tokens_in: int, tokens_out: int, *, price_factor: float = 1.0) -> float:
        t = time.thread_time()
        try:
            return super().settle(reservation, tokens_in, tokens_out, price_factor=price_factor)
        finally:
            self.meter.add("ledger", t)


class MeteredJournal:
    """The run store as the journal (what a real run writes), metered; keeps the records for the counts."""

    def __init__(self, store: RunStore, meter: Meter) -> None:
        self.store, self.meter = store, meter
        self.calls: list[CallRecord] = []

    def record_call(self, call: CallRecord) -> int:
        t = time.thread_time()
        try:
            self.calls.append(call)
            return self.store.record_call(call)
        finally:
            self.meter.add("journal", t)


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of process ``pid`` (all its threads), or None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# -- the simulator ----------------------------------------------------------------------------------


@dataclass
class Simulator:
    url: str
    pid: int

    def cpu_seconds(self) -> float | None:
        return _proc_cpu_seconds(self.pid)


@contextmanager
def simulator_process(**knobs: float) -> Iterator[Simulator]:
    """Start `distill simulate` in its own process; yield its URL and pid; stop it with SIGTERM."""
    args = [
        sys.executable,
        "-m",
        "agent",
        "simulate",
        "--pool",
        str(POOL),
        "--port",
        "0",
        "--latency-ms",
        str(LATENCY_MS),
        "--jitter-ms",
        str(JITTER_MS),
        "--seed",
        "1",
    ]
    for name, value in knobs.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield Simulator(line.rsplit(" ", 1)[-1].strip(), proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- one run ----------------------------------------------------------------------------------------


def build_requests(count: int) -> list[TeacherRequest]:
    rows = [json.loads(line) for line in POOL.read_text().splitlines()]
    labels = sorted({r["label"] for r in rows})
    task = TaskInfo("Messages to a bank's support.", {label: "" for label in labels})
    texts = [rows[i % len(rows)]["text"] for i in range(count * 2)]
    return label_requests(task, texts, per_call=2, round=0)[:count]


async def run_once(
    sim: Simulator, requests: list[TeacherRequest], workdir: Path, cache_name: str, concurrency: int
) -> dict[str, Any]:
    meter = Meter()
    store = RunStore(workdir / f"{cache_name}.run.sqlite")
    journal = MeteredJournal(store, meter)
    cache = MeteredCache(workdir / f"{cache_name}.sqlite", meter)
    teacher = Teacher(
        TeacherConfig(
            base_url=sim.url,
            model="sim-teacher",
            api_key="bench",
            send_brief=True,
            max_concurrency=concurrency,
            timeout_s=10,
            max_attempts=8,
            max_retry_wait_s=2.0,
            backoff_initial_s=0.1,
        ),
        cache=cache,
        ledger=MeteredLedger(Prices(0.15, 0.6), meter),
        journal=journal,
    )
    load = _loadavg()
    sim_cpu0, cpu0, started = sim.cpu_seconds(), time.process_time(), time.perf_counter()
    try:
        results = await asyncio.gather(*(teacher.complete(r, AssignedLabels) for r in requests), return_exceptions=True)
    finally:
        await teacher.aclose()
    seconds, cpu, sim_cpu1 = time.perf_counter() - started, time.process_time() - cpu0, sim.cpu_seconds()
    cache.close()
    store.close()
    ok = sum(not isinstance(r, BaseException) for r in results)
    final = [c for c in journal.calls if c.status != "invalid_output"]
    calls = len(requests)
    sim_cpu = None if sim_cpu0 is None or sim_cpu1 is None else sim_cpu1 - sim_cpu0
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": calls,
        "succeeded": ok,
        "http_requests": teacher.http_requests,
        "rps": calls / seconds,
        "retries": sum(max(0, c.attempts - 1) for c in journal.calls),
        "reasks": sum(c.status == "invalid_output" for c in journal.calls),
        "cache_hits": sum(c.cache_hit for c in final),
        "cpu_ms_per_call": 1000 * cpu / calls,
        "cpu_ms_per_call_parts": {part: 1000 * s / calls for part, s in meter.seconds.items()},
        "gateway_cpu_share": cpu / seconds,  # of one core
        "sim_cpu_ms_per_http_request": None if sim_cpu is None else 1000 * sim_cpu / max(1, teacher.http_requests),
        "sim_cpu_share": None if sim_cpu is None else sim_cpu / seconds,
        "loadavg_1m_before": load,
    }


def request_count(concurrency: int, quick: bool) -> int:
    return max(200, 4 * concurrency) if quick else max(2000, 20 * concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="max(200, 4 × concurrency) requests per level")
    parser.add_argument("--concurrency", default="32,256", help="comma-separated levels (default 32,256)")
    parser.add_argument("--no-faults", action="store_true", help="skip the fault run")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    mean_latency = LATENCY_MS / 1000
    result: dict[str, Any] = {
        "latency_ms": [LATENCY_MS, JITTER_MS],
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
        "levels": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for i, concurrency in enumerate(levels):
            requests = build_requests(request_count(concurrency, args.quick))
            with simulator_process() as sim:
                clean = asyncio.run(run_once(sim, requests, workdir, f"clean{concurrency}", concurrency))
                cached = (
                    asyncio.run(run_once(sim, requests, workdir, f"clean{concurrency}", concurrency))
                    if i == 0
                    else None
                )
            ideal = concurrency / mean_latency
            level: dict[str, Any] = {
                "requests": len(requests),
                "ideal_rps": ideal,
                "achieved_rps": clean["rps"],
                "throughput_ratio": clean["rps"] / ideal,
                "success_rate": clean["succeeded"] / len(requests),
                "cpu_ms_per_call": clean["cpu_ms_per_call"],
                "sim_cpu_ms_per_call": clean["sim_cpu_ms_per_http_request"],
                "run": clean,
            }
            if cached is not None:
                level |= {
                    "cached_seconds": cached["seconds"],
                    "cached_http_requests": cached["http_requests"],
                    "cache_speedup": clean["seconds"] / cached["seconds"],
                    "cached_cpu_ms_per_call": cached["cpu_ms_per_call"],
                    "cached_run": cached,
                }
            if i == 0 and not args.no_faults:
                with simulator_process(**FAULTS) as sim:
                    faulty = asyncio.run(run_once(sim, requests, workdir, f"faulty{concurrency}", concurrency))
                level |= {
                    "fault_success_rate": faulty["succeeded"] / len(requests),
                    "fault_rps": faulty["rps"],
                    "fault_retries": faulty["retries"],
                    "fault_reasks": faulty["reasks"],
                    "faulty_run": faulty,
                }
            result["levels"][str(concurrency)] = level
    first = result["levels"][str(levels[0])]
    # The single-level keys of earlier versions of this file, for the first level.
    result |= {
        k: first[k]
        for k in (
            "requests",
            "ideal_rps",
            "achieved_rps",
            "throughput_ratio",
            "success_rate",
            "cpu_ms_per_call",
            "fault_success_rate",
            "fault_rps",
            "fault_retries",
            "fault_reasks",
            "cached_seconds",
            "cached_http_requests",
            "cache_speedup",
        )
        if k in first
    }
    result["concurrency"] = levels[0]
    print_table(result, levels)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def print_table(result: dict[str, Any], levels: list[int]) -> None:
    header = ["concurrency", *(str(c) for c in levels)]
    rows: list[list[str]] = [
        ["requests"],
        ["ideal req/s"],
        ["achieved req/s"],
        ["throughput ratio"],
        ["success rate"],
        ["gateway CPU ms/call"],
        ["  cache / journal / ledger"],
        ["gateway CPU (cores)"],
        ["simulator CPU ms/call"],
        ["simulator CPU (cores)"],
        ["load avg before"],
    ]
    for c in levels:
        lv = result["levels"][str(c)]
        run = lv["run"]
        parts = run["cpu_ms_per_call_parts"]
        values = [
            f"{lv['requests']}",
            f"{lv['ideal_rps']:.1f}",
            f"{lv['achieved_rps']:.1f}",
            f"{lv['throughput_ratio']:.3f}",
            f"{lv['success_rate']:.3f}",
            f"{lv['cpu_ms_per_call']:.2f}",
            f"{parts['cache']:.2f} / {parts['journal']:.2f} / {parts['ledger']:.3f}",
            f"{run['gateway_cpu_share']:.2f}",
            _fmt(lv["sim_cpu_ms_per_call"], ".2f"),
            _fmt(run["sim_cpu_share"], ".2f"),
            _fmt(run["loadavg_1m_before"], ".2f"),
        ]
        for row, value in zip(rows, values, strict=True):
            row.append(value)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    first = result["levels"][str(levels[0])]
    if "fault_rps" in first:
        print(
            f"\nat {levels[0]}: 10% faults: success {first['fault_success_rate']:.3f}, "
            f"{first['fault_rps']:.1f} req/s, {first['fault_retries']} retries / {first['fault_reasks']} re-asks"
        )
    if "cached_seconds" in first:
        print(
            f"at {levels[0]}: first run / cached rerun {first['run']['seconds']:.2f} s / "
            f"{first['cached_seconds']:.3f} s ({first['cache_speedup']:.1f}×, "
            f"{first['cached_http_requests']} HTTP requests, {first['cached_cpu_ms_per_call']:.2f} CPU ms/call)"
        )


if __name__ == "__main__":
    main()

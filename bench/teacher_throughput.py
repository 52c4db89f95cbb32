"""Teacher gateway throughput against the simulator in its own process.

    python bench/teacher_throughput.py [--quick] --json bench/results/teacher_throughput.json

2,000 label requests (200 with --quick) at concurrency 32 against a simulator with 200 ± 40 ms
latency (a realistic floor for an LLM API): first with no faults, then with 10% faults (429 with
Retry-After, 5xx, malformed JSON), then a fully cached rerun. The ideal is concurrency / mean latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.cache import ResponseCache  # noqa: E402
from generators.generation import TaskInfo, label_requests  # noqa: E402
from generators.journal import MemoryJournal  # noqa: E402
from generators.ledger import Ledger, Prices  # noqa: E402
from generators.schemas import AssignedLabels  # noqa: E402
from generators.teacher import Teacher, TeacherConfig, TeacherRequest  # noqa: E402

POOL = ROOT / "examples" / "banking77" / "pool.jsonl"
CONCURRENCY = 32
LATENCY_MS, JITTER_MS = 200.0, 40.0


@contextmanager
def simulator_process(**knobs: float) -> Iterator[str]:
    """Start `distill simulate` in its own process; yield its base URL; stop it with SIGTERM."""
    args = [sys.executable, "-m", "agent", "simulate", "--pool", str(POOL), "--port", "0",
            "--latency-ms", str(LATENCY_MS), "--jitter-ms", str(JITTER_MS), "--seed", "1"]
    for name, value in knobs.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def build_requests(count: int) -> list[TeacherRequest]:
    rows = [json.loads(line) for line in POOL.read_text().splitlines()]
    labels = sorted({r["label"] for r in rows})
    task = TaskInfo("Messages to a bank's support.", {label: "" for label in labels})
    texts = [rows[i % len(rows)]["text"] for i in range(count * 2)]
    return label_requests(task, texts, per_call=2, round=0)[:count]


async def run_once(base_url: str, requests: list[TeacherRequest], cache_path: Path) -> dict[str, Any]:
    journal = MemoryJournal()
    teacher = Teacher(
        TeacherConfig(base_url=base_url, model="sim-teacher", api_key="bench", max_concurrency=CONCURRENCY,
                      timeout_s=10, max_attempts=8, max_retry_wait_s=2.0, backoff_initial_s=0.1),
        cache=ResponseCache(cache_path), ledger=Ledger(Prices(0.15, 0.6)), journal=journal,
    )
    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(teacher.complete(r, AssignedLabels) for r in requests),
                                       return_exceptions=True)
    finally:
        await teacher.aclose()
    seconds = time.perf_counter() - started
    ok = sum(not isinstance(r, BaseException) for r in results)
    final = [c for c in journal.calls if c.status != "invalid_output"]
    return {
        "seconds": seconds, "requests": len(requests), "succeeded": ok, "http_requests": teacher.http_requests,
        "retries": sum(max(0, c.attempts - 1) for c in journal.calls),
        "reasks": sum(c.status == "invalid_output" for c in journal.calls),
        "cache_hits": sum(c.cache_hit for c in final),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 requests instead of 2,000")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    count = 200 if args.quick else 2000
    requests = build_requests(count)
    ideal = CONCURRENCY / (LATENCY_MS / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        with simulator_process() as url:
            clean = asyncio.run(run_once(url, requests, Path(tmp) / "clean.sqlite"))
            cached = asyncio.run(run_once(url, requests, Path(tmp) / "clean.sqlite"))
        with simulator_process(rate_429=0.034, retry_after_s=0.2, rate_5xx=0.033, rate_malformed=0.033) as url:
            faulty = asyncio.run(run_once(url, requests, Path(tmp) / "faulty.sqlite"))
    achieved = clean["requests"] / clean["seconds"]
    result = {
        "requests": count, "concurrency": CONCURRENCY, "latency_ms": [LATENCY_MS, JITTER_MS],
        "ideal_rps": ideal, "achieved_rps": achieved, "throughput_ratio": achieved / ideal,
        "success_rate": clean["succeeded"] / count, "fault_success_rate": faulty["succeeded"] / count,
        "fault_rps": count / faulty["seconds"], "fault_retries": faulty["retries"], "fault_reasks": faulty["reasks"],
        "cached_seconds": cached["seconds"], "cached_http_requests": cached["http_requests"],
        "cache_speedup": clean["seconds"] / cached["seconds"], "runs": {"clean": clean, "faulty": faulty,
                                                                       "cached": cached},
    }
    rows = [
        ("requests", f"{count}"), ("ideal req/s (32 / 0.2 s)", f"{ideal:.1f}"),
        ("achieved req/s, no faults", f"{achieved:.1f}"), ("throughput ratio", f"{result['throughput_ratio']:.3f}"),
        ("success rate, no faults", f"{result['success_rate']:.3f}"),
        ("success rate, 10% faults", f"{result['fault_success_rate']:.3f}"),
        ("req/s, 10% faults", f"{result['fault_rps']:.1f}"),
        ("retries / re-asks, 10% faults", f"{faulty['retries']} / {faulty['reasks']}"),
        ("first run / cached rerun", f"{clean['seconds']:.2f} s / {cached['seconds']:.3f} s"),
        ("cache speedup", f"{result['cache_speedup']:.1f}×"),
        ("HTTP requests in cached rerun", f"{cached['http_requests']}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

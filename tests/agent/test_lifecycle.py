"""The run lifecycle as a user meets it, through the real `distill` command in a child process: one writer per
run directory, Ctrl-C once and twice, a refused key, and bad input that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.run_lock import RunDirBusy, run_lock
from agent.store import RunStore
from tests.run_helpers import SECRET, served_simulator, write_spec

DEADLINE_S = 300  # every wait below is bounded


def distill(*args: str, env_key: str = SECRET) -> subprocess.Popen[str]:
    env = {**os.environ, "DISTILL_TEST_KEY": env_key, "DISTILL_QUIET": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "agent", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish(proc: subprocess.Popen[str], timeout: float = DEADLINE_S) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def paid_calls(run_dir: Path) -> list[str]:
    store = RunStore(run_dir / "run.sqlite")
    try:
        return [r[0] for r in store.query("SELECT request_hash FROM teacher_calls WHERE cache_hit=0 AND status='ok'")]
    finally:
        store.close()


def assert_consistent(run_dir: Path) -> None:
    """Every example judged once per filter, stored once per call, no paid request twice."""
    store = RunStore(run_dir / "run.sqlite")
    try:
        twice = store.query(
            "SELECT example_id, filter, COUNT(*) c FROM filter_decisions GROUP BY example_id, filter HAVING c > 1"
        )
        assert not twice, "a filter ran twice over the same examples"
        dupes = store.query(
            "SELECT teacher_call_id, text, COUNT(*) c FROM examples "
            "WHERE split='train' AND teacher_call_id IS NOT NULL GROUP BY teacher_call_id, text, round HAVING c > 1"
        )
        assert not dupes, "examples were stored twice"
    finally:
        store.close()
    paid = paid_calls(run_dir)
    assert len(paid) == len(set(paid)), "a paid request was sent twice"


@pytest.fixture
def slow_simulator(make_simulator: Any) -> Any:
    """Calls take ~150 ms, so a run is long enough to be interrupted or raced."""
    return make_simulator(api_key=SECRET, latency_ms=150.0)


def test_a_second_writer_is_refused_at_every_moment_of_a_run(
    tmp_path: Path, tiny_model: str, slow_simulator: Any
) -> None:
    spec = write_spec(tmp_path, tiny_model, served_simulator(slow_simulator), max_rounds=1)
    run_dir = tmp_path / "run"
    first = distill("run", str(spec), "--run-dir", str(run_dir))
    attempts: list[tuple[str, int, str]] = []
    readers = 0
    delay = 0.05
    while first.poll() is None and len(attempts) < 16:
        time.sleep(delay)
        for args in (["resume", str(run_dir)], ["run", str(spec), "--run-dir", str(run_dir)]):
            code, _out, err = finish(distill(*args), timeout=120)
            if code == 0:  # allowed only once the first run had ended: then it is a plain resume
                assert first.poll() is not None, f"`{args[0]}` ran beside the first run: {err[-1000:]}"
                continue
            attempts.append((args[0], code, err))
        if (run_dir / "run.sqlite").is_file():  # readers never wait for the writer
            code, out, err = finish(distill("status", str(run_dir), "--json"), timeout=120)
            assert code == 0 and json.loads(out)["rounds"] is not None, err
            readers += 1
        delay *= 1.8
    code, _out, err = finish(first)
    assert code == 0, err[-2000:]
    assert len(attempts) >= 4 and readers >= 1, "the first run ended before others could try"
    for command, code, err in attempts:
        assert code == 2, (command, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    busy = [err for _c, _code, err in attempts if "in use by process" in err]
    assert busy and all(str(first.pid) in err for err in busy), "the refusal names the holder's PID"
    assert_consistent(run_dir)
    assert (run_dir / "model" / "labels.json").is_file()


def test_a_lock_left_by_a_killed_process_is_recovered(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from agent.run_lock import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirBusy, match=f"process {holder.pid}"), run_lock(tmp_path):
        pass
    holder.kill()
    holder.wait(timeout=30)
    with run_lock(tmp_path):  # the kernel dropped the dead holder's lock: nothing to clean up by hand
        assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_with_a_resume_hint_and_resume_finishes(
    tmp_path: Path, tiny_model: str, slow_simulator: Any, presses: int
) -> None:
    spec = write_spec(tmp_path, tiny_model, served_simulator(slow_simulator), max_rounds=1)
    run_dir = tmp_path / "run"
    proc = distill("run", str(spec), "--run-dir", str(run_dir))
    wait_for(lambda: slow_simulator.stats()["requests"] >= 2, "teacher calls in flight")
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    code, _out, err = finish(proc)
    assert code == 130, err[-2000:]
    assert f"interrupted — continue with: distill resume {run_dir}" in err
    assert "Traceback" not in err

    store = RunStore(run_dir / "run.sqlite")
    info = store.run_info()
    journal = store.query("SELECT status, attempts FROM teacher_calls")
    store.close()
    assert info is not None and info.status == "interrupted"
    # A call that never left is not journaled; one stopped in flight is 'cancelled', never 'error'.
    assert all(row["status"] in ("ok", "cancelled") for row in journal), [tuple(r) for r in journal]
    assert all(row["attempts"] >= 1 for row in journal if row["status"] == "cancelled")
    summary = RunStore(run_dir / "run.sqlite").call_summary()  # a user's stop is not the teacher's failure
    assert summary["failed"] == 0 and summary["cancelled"] == sum(row["status"] == "cancelled" for row in journal)
    if presses == 1:  # the first press lets calls in flight finish: nothing was cut off
        assert all(row["status"] == "ok" for row in journal)

    code, out, err = finish(distill("resume", str(run_dir)))
    assert code == 0, err[-2000:]
    assert "model directory:" in out
    assert_consistent(run_dir)


def test_a_refused_key_is_one_line_and_writes_nothing(tmp_path: Path, tiny_model: str, make_simulator: Any) -> None:
    server = make_simulator(api_key=SECRET)
    spec = write_spec(tmp_path, tiny_model, served_simulator(server))
    run_dir = tmp_path / "run"
    code, _out, err = finish(distill("run", str(spec), "--run-dir", str(run_dir), env_key="sk-wrong-key-0000"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "refused the key in $DISTILL_TEST_KEY (401)" in lines[0], err
    assert "sk-wrong-key" not in err and SECRET not in err
    assert not run_dir.exists()
    assert server.stats()["requests"] == 0, "no completion was sent"


def test_a_key_refused_mid_run_ends_it_in_one_line_and_resumably(tmp_path: Path, tiny_model: str) -> None:
    """A server that lists no models (so the free check passes) and then refuses every completion with 401."""
    from tests.capture_server import capture_server

    with capture_server({"examples": []}, status=401) as (base_url, recorder):
        teacher = {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": base_url,
            "api_key_env": "DISTILL_TEST_KEY",
        }
        spec = write_spec(tmp_path, tiny_model, teacher)
        run_dir = tmp_path / "run"
        code, _out, err = finish(distill("run", str(spec), "--run-dir", str(run_dir)))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "refused the API key (401)" in lines[0] and "distill resume" in lines[0], err
    assert SECRET not in err and recorder.bodies, "the calls were sent and refused"
    store = RunStore(run_dir / "run.sqlite")
    info = store.run_info()
    store.close()
    assert info is not None and info.status == "failed"


def test_a_bad_data_file_on_resume_is_one_line(tmp_path: Path, tiny_model: str, make_simulator: Any) -> None:
    server = make_simulator(api_key=SECRET)
    spec = write_spec(tmp_path, tiny_model, served_simulator(server), max_rounds=0)
    run_dir = tmp_path / "run"
    code, _out, err = finish(distill("run", str(spec), "--run-dir", str(run_dir)))
    assert code == 0, err[-2000:]
    before = (run_dir / "run.sqlite").read_bytes()
    (tmp_path / "test.jsonl").write_bytes(b'{"text": "ok", "label": "card_arrival"}\n{"text": "\xff\xfe"}\n')
    code, _out, err = finish(distill("resume", str(run_dir)))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "test.jsonl" in lines[0] and "line 2" in lines[0] and "UTF-8" in lines[0], err
    assert (run_dir / "run.sqlite").read_bytes() == before


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "invalid UTF-8": (b'{"text": "caf\xe9", "label": "card_arrival"}\n', "UTF-8"),
    "not JSON": (b'{"text": "a", "label": "card_arrival"}\nnot json\n', "not JSON"),
    "unknown label": (b'{"text": "a", "label": "no_such_label"}\n', "no_such_label"),
    "text not a string": (b'{"text": 5, "label": "card_arrival"}\n', "text"),
    "a 1 MB line": (b'{"text": "' + b"a" * 1_000_000 + b'", "label": "card_arrival"}\n', "characters"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(
    tmp_path: Path, tiny_model: str, make_simulator: Any, case: str
) -> None:
    server = make_simulator(api_key=SECRET)
    spec = write_spec(tmp_path, tiny_model, served_simulator(server))
    content, words = BAD_FILES[case]
    (tmp_path / "seed.jsonl").write_bytes(content)
    run_dir = tmp_path / "runs" / "new"
    code, _out, err = finish(distill("run", str(spec), "--run-dir", str(run_dir)), timeout=120)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "seed.jsonl" in lines[0] and words in lines[0], err
    assert not (tmp_path / "runs").exists()
    assert server.stats()["requests"] == 0


def test_a_bom_is_accepted(tmp_path: Path, tiny_model: str, make_simulator: Any) -> None:
    server = make_simulator(api_key=SECRET)
    spec = write_spec(tmp_path, tiny_model, served_simulator(server))
    seed = tmp_path / "seed.jsonl"
    seed.write_bytes(b"\xef\xbb\xbf" + seed.read_bytes())
    plan = subprocess.run(
        [sys.executable, "-m", "agent", "plan", str(spec), "--json"], capture_output=True, text=True, timeout=120
    )
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["calls"] > 0


def test_after_a_stop_request_no_call_is_sent_or_journaled_and_the_step_ends(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the first Ctrl-C does to a step's teacher calls: none leaves, none is journaled as failed, and the
    step ends with RunInterrupted instead of keeping a partial result (so resume sends exactly those calls)."""
    import random

    from agent.interrupts import RunInterrupted
    from agent.runtime import open_teacher, run_requests
    from agent.spec import load_spec
    from generators.generation import TaskInfo, seed_requests
    from generators.schemas import GeneratedExamples

    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    server = make_simulator(api_key=SECRET)
    spec = load_spec(write_spec(tmp_path, tiny_model, served_simulator(server)))
    task = TaskInfo("Messages to a bank.", {"card_arrival": "card arrival"})
    requests = seed_requests(task, "card_arrival", 8, per_call=4, rng=random.Random(0), examples=[])
    store = RunStore(tmp_path / "run.sqlite")
    with open_teacher(spec, store, tmp_path / "cache.sqlite") as teacher:
        [answered] = run_requests(teacher, requests[:1], GeneratedExamples)  # paid and cached before the stop
        teacher.stop_dispatch()
        with pytest.raises(RunInterrupted):
            run_requests(teacher, requests, GeneratedExamples)
    journal = store.query("SELECT status, cache_hit FROM teacher_calls ORDER BY id")
    store.close()
    assert not isinstance(answered, BaseException)
    assert server.stats()["requests"] == 1, "nothing was sent after the stop"
    # The cached answer is still served after the stop (free); the unsent call left no row at all.
    assert [(r["status"], r["cache_hit"]) for r in journal] == [("ok", 0), ("ok", 1)]

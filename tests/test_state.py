"""Run state: atomic, incremental saves that load back exactly; the stack_root lock."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from grenade.errors import StateError
from grenade.state import DONE, FAILED, RunLock, RunState, fingerprint_diff


def test_save_load_round_trip_after_incremental_changes(tmp_path: Path):
    state = RunState(tmp_path / "run-state.json")
    state.reset()
    state.setup = {"trees": {"base": {"sha": "abc"}}}
    state.fingerprint = {"config": "1"}
    for i in range(5):
        rec = state.record(f"create/p{i}")
        rec.status = DONE
        state.save()
    rec = state.record("create/p2")
    rec.status = FAILED  # changed after a save: must be re-encoded
    state.changed("create/p2")
    state.failed_step = "create/p2"
    state.save()
    loaded = RunState.load(state.path)
    assert loaded.steps == state.steps
    assert loaded.setup == state.setup
    assert loaded.failed_step == "create/p2"
    assert json.loads(state.path.read_text())["version"] == 1
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_changed_after_save_is_written(tmp_path: Path):
    state = RunState(tmp_path / "s.json")
    rec = state.record("a/b")
    state.save()
    rec.status = DONE
    state.save()
    assert RunState.load(state.path).steps["a/b"].status != DONE  # not marked: stale
    state.changed("a/b")
    state.save()
    assert RunState.load(state.path).steps["a/b"].status == DONE


def test_unreadable_state_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "run-state.json"
    path.write_text("{not json")
    with pytest.raises(StateError, match="run state unreadable"):
        RunState.load(path)


def test_fingerprint_diff_names_the_change():
    assert fingerprint_diff({"a": 1, "b": 2}, {"a": 1, "b": 3}) == ["b: 2 -> 3"]


def _try_lock(root: str, queue: multiprocessing.Queue) -> None:
    try:
        RunLock(Path(root)).acquire()
        queue.put("acquired")
    except StateError as exc:
        queue.put(str(exc))


def test_lock_refuses_a_second_process(tmp_path: Path):
    with RunLock(tmp_path):
        queue: multiprocessing.Queue = multiprocessing.Queue()
        proc = multiprocessing.Process(target=_try_lock, args=(str(tmp_path), queue))
        proc.start()
        proc.join(10)
        assert "another grenade run holds" in queue.get(timeout=5)
    # released: a new holder gets it
    proc = multiprocessing.Process(target=_try_lock, args=(str(tmp_path), queue))
    proc.start()
    proc.join(10)
    assert queue.get(timeout=5) == "acquired"

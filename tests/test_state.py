"""Run state: atomic, incremental saves that load back exactly; the stack_root lock."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from grenade.errors import StateError
from grenade.files import RunLock
from grenade.record import PluginRecord, SetupRecord, TreeRecord
from grenade.state import DONE, FAILED, HostRecord, RunState, StepRecord, fingerprint_diff


def test_save_load_round_trip_after_incremental_changes(tmp_path: Path):
    state = RunState(tmp_path / "run-state.json")
    state.reset()
    state.setup = SetupRecord(
        base=TreeRecord(path="/s/old", sha="abc", release="2025.2"),
        plugins=(PluginRecord("p", "/s/p", None, "master"),),
        stack=("bash", "stack.sh"),
        stack_env=(("A", "1 2"),),
    )
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
    assert json.loads(state.path.read_text())["version"] == 2
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_per_host_records_round_trip(tmp_path: Path):
    state = RunState(tmp_path / "run-state.json")
    rec = state.record("create/alpha")
    rec.status, rec.group, rec.exit_code = FAILED, "subnode", 3
    rec.hosts = {
        "local": HostRecord(
            status=DONE, exit_code=0, duration=0.5, log="003-create_alpha@local.log"
        ),
        "node2": HostRecord(
            status=FAILED, exit_code=3, message="exit code 3", log="003-create_alpha@node2.log"
        ),
    }
    state.save()
    loaded = RunState.load(state.path).steps["create/alpha"]
    assert loaded == rec
    assert isinstance(loaded.hosts["node2"], HostRecord)
    raw = json.loads(state.path.read_text())["steps"]["create/alpha"]
    assert raw["hosts"]["local"] == {
        "status": "done",
        "exit_code": 0,
        "duration": 0.5,
        "log": "003-create_alpha@local.log",
    }
    assert StepRecord().encode() == "{}"  # defaults are not written


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


def test_background_writes_land_in_order_and_flush_waits(tmp_path: Path):
    state = RunState(tmp_path / "run-state.json")
    state.reset()
    for i in range(200):
        rec = state.record(f"create/p{i}")
        rec.status = DONE
        state.save_in_background()  # folded while the disk is busy, never lost at flush
    state.flush()
    loaded = RunState.load(state.path)
    assert len(loaded.steps) == 200
    assert all(r.status == DONE for r in loaded.steps.values())


def test_background_write_failure_is_raised_by_flush(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    state = RunState(blocker / "run-state.json")
    state.save_in_background()
    with pytest.raises(StateError, match="cannot write .*run-state.json"):
        state.flush()


def test_reader_sees_the_previous_file_mid_swap(tmp_path: Path):
    from grenade.files import read_swapped, swap_write

    path = tmp_path / "run-state.json"
    swap_write(path, "one")
    swap_write(path, "two")
    assert read_swapped(path) == "two"
    path.rename(path.with_name("run-state.json.prev"))  # the instant between the renames
    assert read_swapped(path) == "two"


def test_a_version_1_state_still_loads(tmp_path: Path):
    # written by the grenade before host groups: a run it set up can be resumed
    v1 = {
        "version": 1,
        "run_id": "20261201-101010",
        "failed_step": "create/alpha",
        "fingerprint": {"hosts": ["local"]},
        "setup": {
            "trees": {
                side: {
                    "path": f"/s/{side}",
                    "repo": None,
                    "branch": "stable/2026.1",
                    "ref": None,
                    "sha": "abc",
                    "release": "2026.1",
                }
                for side in ("base", "target")
            },
            "plugins": {"heat": {"path": "/s/plugins/heat", "sha": "def", "branch": "master"}},
            "enabled_services": "key",
            "settings": {"projects": [{"name": "alpha", "dir": "/p/10_alpha"}]},
            "plan_inputs": {
                "stack": ["bash", "./stack.sh"],
                "stack_cwd": "/s/old",
                "stack_env": [["A", "1"]],
                "stack_user": None,
                "smoke": None,
                "base_release": "2026.1",
            },
        },
        "steps": {
            "create/alpha": {
                "status": "failed",
                "exit_code": 3,
                "started": 1.5,
                "duration": 0.2,
                "log": "004-create_alpha.log",
                "message": "exit code 3",
            },
        },
    }
    path = tmp_path / "run-state.json"
    path.write_text(json.dumps(v1))
    state = RunState.load(path)
    assert state.failed_step == "create/alpha"
    rec = state.steps["create/alpha"]
    assert (rec.status, rec.exit_code, rec.group) == ("failed", 3, "controller")
    assert rec.hosts == {
        "local": HostRecord(
            status="failed",
            exit_code=3,
            duration=0.2,
            log="004-create_alpha.log",
            message="exit code 3",
        )
    }
    assert state.setup is not None
    assert state.setup.base.path == "/s/base" and state.setup.base_release == "2026.1"
    assert state.setup.plugins == (PluginRecord("heat", "/s/plugins/heat", "def", "master"),)
    assert state.setup.stack == ("bash", "./stack.sh") and state.setup.stack_env == (("A", "1"),)
    assert state.setup.settings.projects[0].name == "alpha"
    state.save()  # and it is written back as the current version
    assert json.loads(path.read_text())["version"] == 2


def test_an_unknown_version_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "run-state.json"
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(StateError, match="version 99 is not 2; `grenade clean` removes it"):
        RunState.load(path)

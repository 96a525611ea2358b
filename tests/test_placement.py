"""Where each step runs on several hosts (grenade.placement), as data and over SSH.

The data tests place a plan built from real settings on a topology; the SSH tests run
fixture plugins on the `external` deployer on this machine (the controller) and two
sshd nodes on 127.0.0.2 and 127.0.0.3 (group `subnode`).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from sshd import SshdServer, running_sshd, skip_without_sshd

from grenade import phases
from grenade.config import GrenadeConfig
from grenade.errors import StepFailed
from grenade.placement import Topology, place
from grenade.plan import Step
from grenade.plugins import Project
from grenade.session import Session
from grenade.summary import summary_text

TOPOLOGY = Topology(
    groups={"controller": ("ctl",), "subnode": ("n1", "n2"), "compute": ("n2", "n3")},
    upgrade_groups=("controller", "subnode", "compute"),
)
KEYSTONE = Project("keystone", "/p/10_keystone")
SWIFT = Project("swift", "/p/30_swift", groups=("controller", "subnode"))
STORAGE = Project("storage", "/p/40_storage", groups=("subnode",))


def step(kind: str, project: str) -> Step:
    return Step(kind, project, ("bash", f"/p/{project}/x.sh"))


def where(steps: list[Step]) -> list[tuple[str, str, str]]:
    return [(s.id, s.group, ",".join(s.hosts)) for s in steps]


def test_stack_base_runs_once_per_host_controller_first():
    placed = place([step("stack-base", "devstack")], [], TOPOLOGY)
    assert where(placed) == [
        ("stack-base/devstack", "controller", "ctl"),
        ("stack-base/devstack@subnode", "subnode", "n1,n2"),
        ("stack-base/devstack@compute", "compute", "n3"),  # n2 stacked with subnode
    ]


def test_resources_run_once_on_the_projects_first_host():
    plan = [step(k, p) for k in ("create", "verify-pre", "destroy") for p in ("swift", "storage")]
    placed = place(plan, [SWIFT, STORAGE], TOPOLOGY)
    assert where(placed) == [
        ("create/swift", "controller", "ctl"),
        ("create/storage@subnode", "subnode", "n1"),
        ("verify-pre/swift", "controller", "ctl"),
        ("verify-pre/storage@subnode", "subnode", "n1"),
        ("destroy/swift", "controller", "ctl"),
        ("destroy/storage@subnode", "subnode", "n1"),
    ]


def test_verify_noapi_runs_on_every_host_of_the_projects_groups():
    placed = place([step("verify-noapi", "swift")], [SWIFT], TOPOLOGY)
    assert where(placed) == [
        ("verify-noapi/swift", "controller", "ctl"),
        ("verify-noapi/swift@subnode", "subnode", "n1,n2"),
    ]


def test_shutdown_and_upgrade_follow_upgrade_groups():
    plan = [step("shutdown", "swift"), step("upgrade", "swift"), step("upgrade", "keystone")]
    partial = Topology(TOPOLOGY.groups, upgrade_groups=("controller",))
    assert where(place(plan, [SWIFT, KEYSTONE], partial)) == [
        ("shutdown/swift", "controller", "ctl"),
        ("upgrade/swift", "controller", "ctl"),
        ("upgrade/keystone", "controller", "ctl"),
    ]
    # the rest, group by group in upgrade_groups order; a project on no upgraded
    # group keeps running the base: it has no step at all
    rest = Topology(TOPOLOGY.groups, upgrade_groups=("subnode",))
    assert where(place(plan, [SWIFT, KEYSTONE], rest)) == [
        ("shutdown/swift@subnode", "subnode", "n1,n2"),
        ("upgrade/swift@subnode", "subnode", "n1,n2"),
    ]


def test_save_state_on_the_controller_and_every_upgraded_host():
    plan = [step("save-state", "grenade"), step("converge", "grenade")]
    placed = place(plan, [SWIFT], Topology(TOPOLOGY.groups, ("controller", "subnode")))
    assert where(placed) == [
        ("save-state/grenade", "controller", "ctl,n1,n2"),
        # every host (n2, in two groups, once): those left on the base are checked
        # to run their base processes still
        ("converge/grenade", "controller", "ctl"),
        ("converge/grenade@subnode", "subnode", "n1,n2"),
        ("converge/grenade@compute", "compute", "n3"),
    ]


def test_a_later_leg_saves_state_on_its_own_hosts_and_skips_projects_it_leaves():
    plan = [
        step("save-state", "grenade"),
        step("verify-noapi", "swift"),
        step("verify-noapi", "keystone"),
        step("prep-target", "grenade"),
    ]
    leg = Topology(TOPOLOGY.groups, upgrade_groups=("subnode",), later_leg=True)
    assert where(place(plan, [SWIFT, KEYSTONE], leg)) == [
        # the controller's databases were dumped at the base in the first leg
        ("save-state/grenade@subnode", "subnode", "n1,n2"),
        # swift has a group in the leg: checked on all its hosts; keystone's API
        # runs on, and answers from, the controller the first leg upgraded
        ("verify-noapi/swift", "controller", "ctl"),
        ("verify-noapi/swift@subnode", "subnode", "n1,n2"),
        ("prep-target/grenade@subnode", "subnode", "n1,n2"),
    ]


# -- over SSH ------------------------------------------------------------------------------

# Every hook: say where it runs, take a second (a service restart's worth), and fail
# on the host named in FAIL_ON (a file beside the hooks).
HOOK = """here=$(cd "$(dirname "$0")" && pwd)
echo "$GRENADE_PHASE $* on $GRENADE_HOST in [$GRENADE_HOST_GROUPS] at $EPOCHREALTIME"
sleep 1
if [[ -r $here/fail-on && $(<"$here/fail-on") == "$GRENADE_HOST" ]]; then
    echo "broken on $GRENADE_HOST" >&2
    exit 3
fi
"""


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SshdServer]]:
    skip_without_sshd()
    with (
        running_sshd(tmp_path_factory.mktemp("n1"), address="127.0.0.2") as n1,
        running_sshd(tmp_path_factory.mktemp("n2"), address="127.0.0.3") as n2,
    ):
        yield [n1, n2]


def entry(server: SshdServer, stack_root: Path) -> dict[str, Any]:
    return {
        "stack_root": str(stack_root),  # its own: the remote's log copies go there
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key_filename": str(server.key_filename),
        "groups": ["subnode"],
    }


def known_hosts(tmp_path: Path, nodes: list[SshdServer]) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("".join(n.known_hosts.read_text() for n in nodes))
    return path


def setup_run(tmp_path: Path, nodes: list[SshdServer], **over: Any) -> Path:
    project = tmp_path / "projects" / "30_store"
    project.mkdir(parents=True)
    (project / "settings").write_text(
        "register_project_for_upgrade store\nregister_project_groups store controller subnode\n"
    )
    for hook in ("upgrade.sh", "shutdown.sh", "resources.sh"):
        (project / hook).write_text(HOOK)
    data: dict[str, Any] = {
        "projects_dirs": [str(tmp_path / "projects")],
        "enabled_services": "",
        "hosts": {"ctl": {"host": "local", "groups": ["controller"]}}
        | {f"n{i}": entry(n, tmp_path / f"n{i}") for i, n in enumerate(nodes, 1)},
        "known_hosts": str(known_hosts(tmp_path, nodes)),
    }
    data.update(over)
    return write_config(tmp_path / "run.yaml", tmp_path / "stack", **data)


def log_lines(session: Session, step_id: str) -> dict[str, str]:
    logs = session.paths.logs_dir / "steps"
    name = step_id.replace("/", "_").replace("@", "_")
    return {p.name.rsplit("@", 1)[1][:-4]: p.read_text() for p in logs.glob(f"*-{name}@*.log")}


def test_a_group_step_runs_on_every_host_at_once(nodes, tmp_path):
    path = setup_run(tmp_path, nodes)
    with Session(GrenadeConfig.from_file(path), console=io.StringIO()) as session:
        phases.setup(session)
        started = time.monotonic()
        phases.run_kinds(session, ["upgrade"], check_order=False)
        took = time.monotonic() - started
        controller, subnode = (
            log_lines(session, "upgrade/store"),
            log_lines(session, "upgrade/store@subnode"),
        )
    assert set(controller) == {"ctl"} and set(subnode) == {"n1", "n2"}
    assert "on n1 in [subnode]" in subnode["n1"] and "on n2 in [subnode]" in subnode["n2"]
    # two groups one after the other, the two hosts of subnode at once: ~2 s, not 3
    assert took < 2.9, took
    times = [float(subnode[h].split(" at ")[1]) for h in ("n1", "n2")]
    assert abs(times[0] - times[1]) < 0.8, times


def test_a_failure_on_one_host_names_it_and_stops_the_phase(nodes, tmp_path):
    path = setup_run(tmp_path, nodes)
    (tmp_path / "projects" / "30_store" / "fail-on").write_text("n2")
    with Session(GrenadeConfig.from_file(path), console=io.StringIO()) as session:
        phases.setup(session)
        with pytest.raises(StepFailed) as err:
            phases.run_kinds(session, ["shutdown", "verify-noapi"], check_order=False)
        state = session.state
    message = str(err.value)
    assert "FAILED step shutdown/store@subnode: project store, phase shutdown, host n2" in message
    assert "broken on n2" in message
    # n1 finished its part; nothing after the failed step ran
    assert state.record("shutdown/store@subnode").hosts["n1"].status == "done"
    assert state.status("verify-noapi/store") != "done"


def test_a_partial_upgrade_leaves_the_other_groups_out(nodes, tmp_path):
    path = setup_run(tmp_path, nodes, upgrade_groups=["controller"])
    with Session(GrenadeConfig.from_file(path), console=io.StringIO()) as session:
        phases.setup(session)
        ids = [(s.id, s.hosts) for s in session.plan()]
        phases.run_kinds(session, ["shutdown", "verify-noapi", "upgrade"], check_order=False)
        noapi = log_lines(session, "verify-noapi/store@subnode")
        summary = summary_text(session)
    assert ("upgrade/store", ("ctl",)) in ids and ("shutdown/store", ("ctl",)) in ids
    assert not [i for i, _ in ids if i.startswith(("upgrade/", "shutdown/")) and "@" in i]
    # verify_noapi still looks at every host of the project's groups
    assert set(noapi) == {"n1", "n2"}
    # report.json: each step's result per host, each host's groups
    report = json.loads((tmp_path / "stack" / "logs" / "report" / "report.json").read_text())
    steps = {s["id"]: s for s in report["steps"]}
    assert {h["name"]: h["status"] for h in steps["verify-noapi/store@subnode"]["hosts"]} == {
        "n1": "done",
        "n2": "done",
    }
    assert {h["name"]: h["groups"] for h in report["hosts"]}["n1"] == ["subnode"]
    # the summary shows what each host ran: the controller 3 steps, each node one
    per_host = summary.split("per host (steps by status, time in them):\n")[1].splitlines()
    assert per_host[0].split()[:3] == ["ctl", "3", "done"], summary
    assert [ln.split()[:3] for ln in per_host[1:3]] == [["n1", "1", "done"], ["n2", "1", "done"]]

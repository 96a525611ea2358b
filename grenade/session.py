"""One run's session: a configuration applied to a stack_root.

What setup, the step runner, status, clean and the reports share: the paths, the
run log, the run state (and the lock that makes it ours), the deployer, the host
inventory, the plan and the environment hooks start from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from . import deployers as dep
from . import leftovers
from .config import GrenadeConfig
from .deployers.registry import get_deployer
from .errors import DeployError, GrenadeError, StateError, command_hint
from .files import RunLock
from .hosts import CONTROLLER, Inventory
from .logs import RunLog
from .placement import Topology, place
from .plan import LEG_KINDS, PlanInputs, Step, build_plan
from .record import SetupRecord
from .rollback import AGAIN, SNAPSHOT, rollback_steps, with_second_upgrade
from .rundir import Paths
from .secrets import Masker, hook_owner, masker_for
from .state import RunState

if TYPE_CHECKING:
    from .fleet import Fleet


def configured_inventory(cfg: GrenadeConfig) -> Inventory:
    """The configured hosts and groups; without `hosts`, this machine alone."""
    if not cfg.hosts:
        return Inventory.local()
    from .nodes import build_inventory  # Fabric takes 0.2 s to import: multinode runs only

    return build_inventory(cfg)


class Session:
    """`with Session(cfg) as s:` holds the stack_root's lock and its loaded state."""

    def __init__(
        self,
        cfg: GrenadeConfig,
        console: TextIO | None = None,
        inventory: Inventory | None = None,
        state_required: bool = True,
        task: str = "run",
    ) -> None:
        self.cfg = cfg
        self.task = task  # the task the user ran, as hints name it (`base`, `phase.create`)
        self.paths = Paths.from_config(cfg)
        self.console = console if console is not None else sys.stdout
        self.deployer = get_deployer(cfg.deployer)
        self.inventory = inventory if inventory is not None else configured_inventory(cfg)
        self._own_inventory = inventory is None  # a given inventory is its giver's to close
        self.lock = RunLock(self.paths.stack_root)
        self.state = RunState(self.paths.state_file)
        self.state_required = state_required  # False: a state we cannot read is set aside
        self._log: RunLog | None = None
        self._env: tuple[SetupRecord | None, dict[str, str]] = (None, {})
        # `upgrade --groups`: a later leg's upgrade groups (the config's upgrade_groups
        # were the first leg); its upgrade and verify steps have ids of their own
        self.leg_groups: tuple[str, ...] = ()
        # `rollback` and `run --rehearse-rollback` (grenade.rollback)
        self.rollback_requested = False
        self.rehearse = False

    def __enter__(self) -> Session:
        self.lock.acquire()
        try:
            self.read_state()
        except StateError as exc:
            if self.state_required:
                self.lock.release()
                raise
            # clean and --force start over: what they would remove must not stop them
            self.say(f"{exc}; going on without it")
            self.state = RunState(self.paths.state_file)
        if self.state.recovered:
            self.say(self.state.recovered)
        # the lock is ours: a step still "running" belongs to a runner that died
        leftovers.reap(self)
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, GrenadeError):
            # Why the task failed, masked (a settings error may quote a password),
            # and in grenade.log too: the log a gate job keeps, not only the console.
            exc.args = (self.masker.mask(str(exc)), *exc.args[1:])
            self.log.record(f"grenade: {exc}")
        self.close_log()
        if self._own_inventory:
            self.inventory.close()
        self.lock.release()

    def read_state(self) -> None:
        """Load the state (without the lock, this is what `status` does during a run)."""
        self.state = RunState.load(self.paths.state_file)

    @contextlib.contextmanager
    def reading(self) -> Iterator[bool]:
        """For a task that only reads (`plan`): `with session.reading() as locked:` is
        `with session` while the lock is free (True); while another run holds it, the
        state is only read, like `status` does (False), and must not be changed."""
        try:
            self.lock.acquire()
        except StateError:  # another run holds it: the only refusal acquire makes
            self.read_state()
            if not self.state.is_setup:
                holder = self.lock.path.read_text().strip() or "unknown"
                raise StateError(
                    f"{self.paths.stack_root}: not set up yet, and another grenade run "
                    f"(pid {holder}) holds it; {command_hint(self.task)} again once that "
                    f"run is set up ({command_hint('status')} shows how far it is)"
                ) from None
            try:
                yield False
            finally:
                self.close_log()
            return
        self.lock.release()  # taken again by `with self`, which loads the state
        with self:
            yield True

    # -- log -------------------------------------------------------------------------

    @property
    def log(self) -> RunLog:
        if self._log is None:
            self._log = RunLog(
                self.paths.logs_dir,
                self.console,
                self.cfg.verbose,
                masker=self.masker,
                owner=hook_owner(self.cfg.stack_user),
            )
        return self._log

    @functools.cached_property
    def masker(self) -> Masker:
        """The run's secret values, masked in everything grenade writes or shows."""
        trees = (self.paths.base_devstack, self.paths.target_devstack)
        return masker_for(self.cfg, self.paths.grenade_dir, trees)

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def say(self, text: str) -> None:
        self.log.info(text)

    # -- what setup recorded -----------------------------------------------------------

    @property
    def setup(self) -> SetupRecord:
        if self.state.setup is None:
            raise StateError(
                f"{self.paths.stack_root}: not set up; {command_hint('setup')} sets it up"
            )
        return self.state.setup

    @property
    def timeout(self) -> float:
        return self.cfg.timeout

    def deploy_context(self, setup: SetupRecord | None = None) -> dep.DeployContext:
        settings = (setup or self.state.setup or SetupRecord()).settings
        return dep.DeployContext(
            stack_root=self.paths.stack_root,
            base_devstack_dir=self.paths.base_devstack,
            target_devstack_dir=self.paths.target_devstack,
            grenade_dir=self.paths.grenade_dir,
            save_dir=self.paths.save_dir,
            logs_dir=self.paths.logs_dir,
            base_branch=self.cfg.base.branch,
            target_branch=self.cfg.target.branch,
            config=self.cfg,
            devstack_localrc={s: settings.localrc_for(s) for s in ("base", "target")},
        )

    def plan(self) -> list[Step]:
        return self.plan_for(self.setup)

    def plan_for(self, setup: SetupRecord) -> list[Step]:
        """The placed plan of a setup record (setup ships to the nodes before it is
        recorded)."""
        steps = build_plan(
            PlanInputs(
                settings=setup.settings,
                grenade_dir=self.paths.grenade_dir,
                base_branch=self.cfg.base.branch,
                target_branch=self.cfg.target.branch,
                base_release=setup.base_release,
                stack=setup.stack,
                stack_cwd=setup.stack_cwd,
                stack_env=setup.stack_env,
                stack_user=setup.stack_user,
                smoke=setup.smoke,
                verify_resources=self.cfg.verify_resources,
                base_release_name=self.paths.base_release_dir.name,
                target_release_name=self.paths.target_release_dir.name,
                target_devstack=str(self.paths.target_devstack),
                versions=self._reading(setup),
                rollback=tuple(self._rollback_steps(setup)),
                snapshot=self.can_roll_back(setup),
            )
        )
        if self.wants_second_upgrade():
            steps = with_second_upgrade(steps)
        if not self.cfg.hosts:
            return steps  # one machine: every step on it, as the original runs
        leg = self.leg
        topology = Topology(
            groups={name: tuple(g.names) for name, g in self.inventory.groups.items()},
            upgrade_groups=leg or tuple(self.cfg.upgrade_groups),
            later_leg=bool(leg),
        )
        placed = place(steps, setup.settings.projects, topology)
        if not leg:
            return placed
        name = "+".join(leg)
        return [
            dataclasses.replace(s, leg=name) if s.kind in LEG_KINDS else s
            for s in placed
            # the snapshot is the base cloud's: a later leg would take an upgraded one
            if (s.kind, s.project) != ("snapshot", "grenade")
        ]

    def rehearsing(self) -> bool:
        """`run --rehearse-rollback`, now or when the run was started (its resumes)."""
        return self.rehearse or bool(self.state.intent.get("rehearse"))

    def wants_rollback(self) -> bool:
        """A rollback was asked for, now or by the run this state records."""
        return self.rollback_requested or self.rehearsing() or self._recorded("rollback/")

    def wants_second_upgrade(self) -> bool:
        return self.rehearsing() or self._recorded("", f"+{AGAIN}")

    def _recorded(self, prefix: str, suffix: str = "") -> bool:
        return any(sid.startswith(prefix) and sid.endswith(suffix) for sid in self.state.steps)

    def can_roll_back(self, setup: SetupRecord) -> bool:
        """The deployer can start one release's services: a snapshot is worth taking
        (a devstack job's would copy gigabytes for a rollback nobody can run)."""
        ctx = self.deploy_context(setup)
        return self.deployer.services(ctx, "base", "start") is not None

    def _rollback_steps(self, setup: SetupRecord) -> list[Step]:
        if not self.wants_rollback():
            return []
        if self.fleet is not None:
            raise DeployError(
                "rollback: the nodes' snapshots are not taken yet; a rollback needs every "
                "host on this machine (remove the remote hosts from grenade.hosts)"
            )
        ctx = self.deploy_context(setup)
        return rollback_steps(
            self.paths.grenade_dir,
            self.deployer.name,
            self.deployer.services(ctx, "target", "stop"),
            self.deployer.services(ctx, "base", "start"),
        )

    @property
    def leg(self) -> tuple[str, ...]:
        """The later leg's groups; () for the configured upgrade_groups' leg."""
        if not self.leg_groups or tuple(self.leg_groups) == tuple(self.cfg.upgrade_groups):
            return ()
        return tuple(self.leg_groups)

    def upgraded_groups(self) -> tuple[str, ...]:
        """Every group an upgrade leg touched so far: the configured leg's, the earlier
        `--groups` legs' (their upgrade steps done), this one's."""
        return tuple(dict.fromkeys([*self.cfg.upgrade_groups, *self.done_legs(), *self.leg]))

    def done_legs(self) -> list[str]:
        """The groups of the later legs whose upgrade steps are done."""
        groups: list[str] = []
        for sid, rec in self.state.steps.items():
            _, plus, leg = sid.partition("+")
            if plus and leg != AGAIN and sid.startswith("upgrade/") and rec.status == "done":
                groups += leg.split("+")
        return groups

    @functools.cached_property
    def fleet(self) -> Fleet | None:
        """The remote nodes (grenade.fleet): their copies and resource memory; None
        when every host is this machine."""
        if not self.cfg.hosts or all(n.is_local for n in self.cfg.hosts.values()):
            return None
        from .fleet import Fleet  # Fabric takes 0.2 s to import: multinode runs only

        return Fleet(self)

    def _reading(self, setup: SetupRecord) -> tuple[str, ...] | None:
        """The deployer's reading of what its services run (the convergence steps)."""
        command = self.deployer.running_versions(self.deploy_context(setup))
        return tuple(command.argv) if command else None

    # -- environment -------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        """grenade's variables every hook gets (a host adds them to its own environment)."""
        return {
            "GRENADE_DIR": str(self.paths.grenade_dir),
            "SAVE_DIR": str(self.paths.save_dir),
            "STACK_ROOT": str(self.paths.stack_root),
            "LOGDIR": str(self.paths.logs_dir),
        }

    def _common_env(self) -> dict[str, str]:
        """What every step's environment shares; made once per setup record."""
        setup = self.setup
        if self._env[0] is not setup:
            env = self.base_env()
            env.update(setup.settings.exports)
            env.update(self.deployer.hook_env(self.deploy_context()))
            env.update(
                {
                    "DATABASES_TO_SAVE": " ".join(setup.settings.databases),
                    "UPGRADE_PROJECTS": " ".join(p.name for p in setup.settings.projects),
                    "ENABLED_SERVICES": setup.enabled_services,
                }
            )
            self._env = (setup, env)
        return self._env[1]

    def step_env(self, step: Step) -> dict[str, str]:
        env = dict(self._common_env())
        top = self.paths.target_devstack if step.side == "target" else self.paths.base_devstack
        env.update(
            {
                "TOP_DIR": str(top),
                "GRENADE_PHASE": step.kind,
                "GRENADE_PROJECT": step.project,
                "GRENADE_SIDE": step.resource_side,
                # this leg's groups, and every group upgraded so far (grenade.versions)
                "GRENADE_UPGRADE_GROUPS": " ".join(self.leg or self.cfg.upgrade_groups),
                "GRENADE_UPGRADED_GROUPS": " ".join(self.upgraded_groups()),
                # where the project's hooks run, its API on the first (inc/plugin)
                "GRENADE_PROJECT_GROUPS": " ".join(self._project_groups(step.project)),
            }
        )
        if step.kind == "snapshot" and step.project != "grenade":
            # where a project's snapshot.sh puts what the rollback's snapshot keeps
            env["GRENADE_SNAPSHOT_DIR"] = str(
                self.paths.save_dir / "snapshots" / SNAPSHOT / "projects" / step.project
            )
        env.update(dict(step.env))
        return env

    def _project_groups(self, name: str) -> tuple[str, ...]:
        for project in self.setup.settings.projects:
            if project.name == name:
                return tuple(project.groups) or (CONTROLLER,)
        return (CONTROLLER,)

    def step_cwd(self, step: Step) -> Path | str:
        return step.cwd or self.paths.grenade_dir

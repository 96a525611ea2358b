"""The phase flow: small functions composed like nox's workflow.

`Run` ties a configuration to a stack_root's state. `setup()` runs the setup
workflow (lock, trees, GRENADE_DIR, plugins, settings, deployer, plan) and records
it; `run_kinds()` runs the plan's steps of some kinds, skipping those already done,
writing the state after every step.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from . import deployers as dep
from .config import GrenadeConfig
from .deployers.registry import get_deployer
from .errors import (
    ConfigError,
    DeployError,
    GrenadeError,
    Interrupted,
    StateError,
    StepFailed,
    TreeError,
)
from .hosts import LocalHost
from .logs import RunLog, step_log_name, tail
from .plan import COARSE, KINDS, PlanInputs, Step, build_plan, format_plan
from .plugins import Settings, discover_settings, enabled_services_from_tree, load_settings
from .resources import read_results
from .rundir import Paths, pluginrc_line, write_grenade_dir
from .state import DONE, FAILED, RUNNING, SKIPPED, RunLock, RunState, fingerprint_diff
from .trees import (
    PreparedTree,
    TreeSpec,
    parse_pluginrc,
    prepare_plugin,
    prepare_tree,
    tree_sha,
)
from .trees import release_name as branch_release

TAIL_LINES = 20


def git_sha(path: Path) -> str | None:
    """The checked-out SHA of a tree we did not prepare ourselves (None if not git)."""
    try:
        return tree_sha(path)
    except TreeError:
        return None


class Run:
    """One configuration applied to one stack_root."""

    def __init__(self, cfg: GrenadeConfig, console: TextIO | None = None) -> None:
        self.cfg = cfg
        self.paths = Paths.from_config(cfg)
        self.console = console if console is not None else sys.stdout
        self.deployer = get_deployer(cfg["deployer"])
        self.host = LocalHost()
        self.lock = RunLock(self.paths.stack_root)
        self.state = RunState(self.paths.state_file)
        self._log: RunLog | None = None
        self._env_cache: dict[str, str] | None = None
        self._plan_size = 0

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Run:
        self.lock.acquire()
        self.state = RunState.load(self.paths.state_file)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._log:
            self._log.close()
        self.lock.release()

    @property
    def log(self) -> RunLog:
        if self._log is None:
            self._log = RunLog(self.paths.logs_dir, self.console, self.cfg["verbose"])
        return self._log

    def say(self, text: str) -> None:
        self.log.info(text)

    # -- setup workflow --------------------------------------------------------------

    def setup(self, force: bool = False) -> None:
        """Prepare trees, GRENADE_DIR, plugins and settings; record them and the plan."""
        if self.state.is_setup and not force:
            self.check_fingerprint()
            self.say("setup: already done for this run (use --force to start a new run)")
            return
        self.state.reset()
        # The deployer prepares the trees twice: before the settings are sourced
        # (so the base tree's ENABLED_SERVICES is the configured one) and after
        # (so their devstack_localrc lines reach local.conf).
        workflow: tuple[Callable[[dict[str, Any]], None], ...] = (
            self._prepare_trees, self._write_grenade_dir, self._prepare_plugins,
            self._prepare_deployer, self._load_settings, self._prepare_deployer,
            self._build_plan,
        )
        setup: dict[str, Any] = {}
        for task in workflow:
            task(setup)
        self.state.setup = setup
        self.state.fingerprint = self.fingerprint()
        self._init_save_dir()
        self.state.save()
        self.say(self.describe_setup())

    def _tree(self, side: str, dest: Path) -> PreparedTree | dict[str, Any]:
        spec = self.cfg[side]
        trees = self.cfg["trees"]
        repo = spec["repo"]
        if repo is None and not trees["prepared"]:
            repo = self.deployer.default_repo(self.paths)
        branch = spec["branch"]
        release = branch_release(branch, spec["release"])
        if trees["prepared"] or repo is None:
            # Someone else (Zuul's devstack roles) prepared the tree: use it as it is.
            return {"path": str(dest), "repo": None, "branch": branch, "ref": spec["ref"],
                    "sha": git_sha(dest), "release": release}
        tree = prepare_tree(TreeSpec(repo, branch, spec["ref"], spec["release"]), dest,
                            self.paths.cache_dir, force=trees["force"])
        return {"path": str(tree.path), "repo": tree.repo, "branch": tree.branch,
                "ref": tree.ref, "sha": tree.sha, "release": tree.release}

    def _prepare_trees(self, setup: dict[str, Any]) -> None:
        setup["trees"] = {
            "base": self._tree("base", self.paths.base_devstack),
            "target": self._tree("target", self.paths.target_devstack),
        }

    def _write_grenade_dir(self, setup: dict[str, Any]) -> None:
        plugin_lines = [pluginrc_line(p["name"], p["repo"], p.get("branch"))
                        for p in self.cfg["plugins"]]
        write_grenade_dir(self.paths, self.cfg, self.cfg["base"]["branch"],
                          self.cfg["target"]["branch"], plugin_lines)

    def _prepare_plugins(self, setup: dict[str, Any]) -> None:
        entries = parse_pluginrc(self.paths.grenade_dir / "pluginrc")
        plugins = {}
        for name, url, branch in entries:
            branch = branch or self.cfg["target"]["branch"]
            path = self.paths.plugin_root / name
            if self.cfg["trees"]["prepared"] and path.is_dir():
                # Zuul checked the plugin out with the change under test: use it as is.
                plugins[name] = {"path": str(path), "sha": git_sha(path), "branch": branch}
                continue
            tree = prepare_plugin(name, url, branch, self.paths.plugin_root,
                                  self.paths.cache_dir)
            plugins[name] = {"path": str(tree.path), "sha": tree.sha, "branch": tree.branch}
        setup["plugins"] = plugins

    def base_env(self) -> dict[str, str]:
        """Environment every hook starts from."""
        env = dict(os.environ)
        env.update({
            "GRENADE_DIR": str(self.paths.grenade_dir),
            "SAVE_DIR": str(self.paths.save_dir),
            "STACK_ROOT": str(self.paths.stack_root),
            "LOGDIR": str(self.paths.logs_dir),
        })
        return env

    def _load_settings(self, setup: dict[str, Any]) -> None:
        base = Path(setup["trees"]["base"]["path"])
        services = enabled_services_from_tree(base, self.cfg.enabled_services)
        files = discover_settings(self.cfg["projects_dirs"],
                                  [Path(p["path"]) for p in setup["plugins"].values()])
        env = self.base_env()
        env.update(TOP_DIR=str(self.paths.target_devstack), ENABLED_SERVICES=services)
        settings = load_settings(self.paths.grenade_dir, files, env)
        for project in settings.projects:
            if project.hook("upgrade.sh") is None:
                raise ConfigError(f"phase setup: project {project.name} ({project.dir}) "
                                  "is registered but has no upgrade.sh")
        setup["enabled_services"] = services
        setup["settings"] = settings.to_dict()

    def deploy_context(self, setup: dict[str, Any] | None = None) -> dep.DeployContext:
        setup = setup if setup is not None else self.state.setup
        settings = Settings.from_dict(setup["settings"]) if "settings" in setup else Settings()
        return dep.DeployContext(
            stack_root=self.paths.stack_root,
            base_devstack_dir=self.paths.base_devstack,
            target_devstack_dir=self.paths.target_devstack,
            grenade_dir=self.paths.grenade_dir,
            save_dir=self.paths.save_dir,
            logs_dir=self.paths.logs_dir,
            base_branch=self.cfg["base"]["branch"],
            target_branch=self.cfg["target"]["branch"],
            config=self.cfg.data,
            devstack_localrc={s: settings.localrc_for(s) for s in ("base", "target")},
        )

    def _prepare_deployer(self, setup: dict[str, Any]) -> None:
        self.deployer.prepare(self.deploy_context(setup))

    def _build_plan(self, setup: dict[str, Any]) -> None:
        ctx = self.deploy_context(setup)
        cmd = self.deployer.stack(ctx)
        smoke = self.cfg["smoke_command"]
        if isinstance(smoke, str):
            smoke = shlex.split(smoke)
        setup["plan_inputs"] = {
            "stack": list(cmd.argv) if cmd else None,
            "stack_cwd": str(cmd.cwd) if cmd and cmd.cwd else None,
            "stack_env": sorted(cmd.env.items()) if cmd else [],
            "stack_user": cmd.user if cmd else None,
            "smoke": list(smoke) if smoke and self.cfg["run_smoke"] else None,
            "base_release": setup["trees"]["base"]["release"],
        }

    def _init_save_dir(self) -> None:
        # A new run starts with an empty resource store (the original's init_grenade_db).
        self.paths.save_dir.mkdir(parents=True, exist_ok=True)
        (self.paths.save_dir / "grenade_db.ini").write_text("\n")
        (self.paths.save_dir / "resource-results.jsonl").unlink(missing_ok=True)

    # -- plan and fingerprint --------------------------------------------------------

    def plan(self) -> list[Step]:
        setup = self.state.setup
        if not setup:
            raise StateError(f"{self.paths.stack_root}: not set up; run `invoke setup`")
        pi = setup["plan_inputs"]
        return build_plan(PlanInputs(
            settings=Settings.from_dict(setup["settings"]),
            grenade_dir=self.paths.grenade_dir,
            base_branch=self.cfg["base"]["branch"],
            target_branch=self.cfg["target"]["branch"],
            base_release=pi["base_release"],
            stack=tuple(pi["stack"]) if pi["stack"] else None,
            stack_cwd=pi["stack_cwd"],
            stack_env=tuple(tuple(x) for x in pi["stack_env"]),
            stack_user=pi["stack_user"],
            smoke=tuple(pi["smoke"]) if pi["smoke"] else None,
            verify_resources=bool(self.cfg["verify_resources"]),
            base_release_name=self.paths.base_release_dir.name,
            target_release_name=self.paths.target_release_dir.name,
            target_devstack=str(self.paths.target_devstack),
        ))

    def fingerprint(self) -> dict[str, Any]:
        setup = self.state.setup
        trees = setup.get("trees", {})
        settings = setup.get("settings", {})
        return {
            "base_tree": f"{trees.get('base', {}).get('path')}@{trees.get('base', {}).get('sha')}",
            "target_tree": (f"{trees.get('target', {}).get('path')}"
                            f"@{trees.get('target', {}).get('sha')}"),
            "plugins": {k: v["sha"] for k, v in setup.get("plugins", {}).items()},
            "projects": [f"{p['name']}:{p['dir']}" for p in settings.get("projects", [])],
            "settings": self.settings_digest(),
            "config": self.cfg.digest(),
            "hosts": ["local"],
        }

    def settings_digest(self) -> str:
        """Hash of the settings files that would be sourced now: names and contents.

        A project added, removed or re-registered since setup changes it, so the
        recorded project list cannot silently go stale.
        """
        plugins = [Path(p["path"]) for p in self.state.setup.get("plugins", {}).values()]
        digest = hashlib.sha256()
        for path in discover_settings(self.cfg["projects_dirs"], plugins):
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def current_fingerprint(self) -> dict[str, Any]:
        """Recompute from what is on disk now (tree SHAs may have moved)."""
        fp = dict(self.state.fingerprint)
        fp["config"] = self.cfg.digest()
        fp["settings"] = self.settings_digest()
        for side, key in (("base", "base_tree"), ("target", "target_tree")):
            path = Path(self.state.setup["trees"][side]["path"])
            fp[key] = f"{path}@{git_sha(path)}"
        fp["plugins"] = {name: git_sha(Path(p["path"]))
                         for name, p in self.state.setup.get("plugins", {}).items()}
        return fp

    def check_fingerprint(self) -> None:
        changes = fingerprint_diff(self.state.fingerprint, self.current_fingerprint())
        if changes:
            raise StateError(
                "the run on this stack_root was made from something else; refusing to "
                "continue it:\n  " + "\n  ".join(changes)
                + "\n(use --force to start a new run, or `invoke clean`)")

    # -- running steps ---------------------------------------------------------------

    def ensure_setup(self) -> None:
        if not self.state.is_setup:
            self.say("setup: not done yet for this stack_root, running it first")
            self.setup()
        else:
            self.check_fingerprint()

    def run_kinds(self, kinds: Iterable[str], force: bool = False,
                  resume: bool = False, check_order: bool = True) -> None:
        """Run every planned step of `kinds`, in plan order, skipping done ones."""
        kinds = list(kinds)
        self.ensure_setup()
        if self.state.failed_step and not (resume or force):
            raise StateError(
                f"the run failed at step {self.state.failed_step}; use `--resume` to "
                "continue from it, `--force` to re-run, or `invoke clean`")
        plan = self.plan()
        self._plan_size = len(plan)
        if check_order:
            self._check_order(plan, kinds)
        selected = {s.id for s in plan if s.kind in kinds}
        done = [s.id for s in plan if s.id in selected and self.state.status(s.id) == DONE]
        if done and not force:
            self.say(f"skipping {len(done)} step(s) already done: "
                     + ", ".join(done) + " (use --force to re-run)")
        skip = set() if force else set(done)
        self._env_cache = None
        try:
            with self._signals():
                for index, step in enumerate(plan, 1):
                    if self.host.interrupted_by is not None:
                        raise Interrupted(self.host.interrupted_by)
                    if step.id in selected and step.id not in skip:
                        self.run_step(index, step)
                if self.host.interrupted_by is not None:
                    raise Interrupted(self.host.interrupted_by)
            if self.state.status(self.state.failed_step or "") == DONE:
                self.state.failed_step = None
        finally:
            self.state.save()  # the last step's record, however the loop ended

    def _check_order(self, plan: list[Step], kinds: list[str]) -> None:
        first = min(KINDS.index(k) for k in kinds)
        earlier = set(KINDS[:first])
        missing = [s.id for s in plan if s.kind in earlier
                   and self.state.status(s.id) not in (DONE, SKIPPED)]
        if missing:
            raise StateError(
                f"phase {kinds[0]} needs earlier steps first; not done: "
                + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
                + "\n(run the earlier tasks, e.g. `invoke run`, or `invoke run --from "
                f"{kinds[0]}` to skip them deliberately)")

    def _common_env(self) -> dict[str, str]:
        """What every step's environment shares, computed once per task."""
        if self._env_cache is None:
            setup = self.state.setup
            settings = Settings.from_dict(setup["settings"])
            env = self.base_env()
            env.update(settings.exports)
            env.update(self.deployer.hook_env(self.deploy_context()))
            env.update({
                "DATABASES_TO_SAVE": " ".join(settings.databases),
                "UPGRADE_PROJECTS": " ".join(p.name for p in settings.projects),
                "ENABLED_SERVICES": setup.get("enabled_services", ""),
            })
            self._env_cache = env
        return self._env_cache

    def step_env(self, step: Step) -> dict[str, str]:
        env = dict(self._common_env())
        top = self.paths.target_devstack if step.side == "target" else self.paths.base_devstack
        env.update({
            "TOP_DIR": str(top),
            "GRENADE_PHASE": step.kind,
            "GRENADE_PROJECT": step.project,
            "GRENADE_SIDE": step.resource_side,
        })
        env.update(dict(step.env))
        return env

    def run_step(self, index: int, step: Step) -> None:
        rec = self.state.record(step.id)
        log_path = self.log.steps_dir / step_log_name(index, step.id)
        argv = as_user(step.user, step.argv)
        rec.status, rec.started, rec.log = RUNNING, round(time.time(), 2), log_path.name
        rec.exit_code, rec.message = None, ""
        self.say(f"[{index:02d}/{self._plan_size:02d}] {step.kind} {step.project}: "
                 f"{shlex.join(step.argv)}")
        # The previous step's record is written while this step's hook runs
        # (on_start, in a thread): the state file is still rewritten after every
        # step, without the write on the run's critical path.
        result = self.host.run(
            argv, env=self.step_env(step), cwd=step.cwd or self.paths.grenade_dir,
            timeout=float(self.cfg["timeout"]), log_path=log_path, on_line=self.log.line,
            on_start=self.state.save_in_background)
        self.state.changed(step.id)
        rec.duration = round(result.duration, 3)
        rec.exit_code = result.exited
        if result.ok:
            rec.status = DONE
            self.log.step_done(step.id, "ok", result.duration, "local")
            self.say(f"{'':8}ok in {result.duration:.2f}s")
            return
        rec.status = FAILED
        self.state.failed_step = step.id
        why = (f"timed out after {self.cfg['timeout']}s (process group killed)"
               if result.timed_out else
               f"interrupted by signal {result.signalled}" if result.signalled
               else f"exit code {result.exited}")
        rec.message = why
        self.state.save()
        self.log.step_done(step.id, "FAILED", result.duration, "local")
        message = self.failure_message(step, why, log_path)
        if result.signalled:
            self.say(message)
            raise Interrupted(result.signalled)
        # (a hook that exited 0 while a signal arrived is done; the loop stops after it)
        raise StepFailed(message, exit_code=result.exited if result.exited > 0 else 1)

    def failure_message(self, step: Step, why: str, log_path: Path) -> str:
        lines = tail(log_path, TAIL_LINES)
        return "\n".join([
            f"FAILED step {step.id}: project {step.project}, phase {step.kind}, "
            f"host {step.hosts}, {why}",
            f"  script: {step.script}",
            f"  log:    {log_path}",
            f"  last {len(lines)} lines of the log:",
            *(f"    | {ln}" for ln in lines),
        ])

    def _signals(self) -> _SignalGuard:
        return _SignalGuard(self)

    # -- reporting -------------------------------------------------------------------

    def describe_setup(self) -> str:
        setup = self.state.setup
        out = ["setup:"]
        for side in ("base", "target"):
            t = setup["trees"][side]
            ref = t.get("ref") or t.get("branch")
            out.append(f"  {side:6} tree {t['path']}  {ref}  sha {t.get('sha') or '-'}  "
                       f"release {t['release']}")
        for name, p in setup.get("plugins", {}).items():
            out.append(f"  plugin {name}: {p['path']} ({p['branch']}) sha {p['sha']}")
        out.append(f"  enabled services: {setup.get('enabled_services')}")
        settings = Settings.from_dict(setup["settings"])
        base_release = setup["plan_inputs"]["base_release"]
        for p in settings.projects:
            direction, script, exists = p.per_release_script(
                self.cfg["base"]["branch"], self.cfg["target"]["branch"], base_release)
            hooks = ", ".join(h for h in ("upgrade.sh", "shutdown.sh", "resources.sh",
                                          "verify.sh", "snapshot.sh") if p.hook(h))
            rel = f"{direction}-{base_release}/upgrade-{p.name} " + (
                "applies" if exists else "(none)")
            out.append(f"  project {p.name}: {p.dir} [{hooks}]; {rel}")
        if settings.databases:
            out.append(f"  databases to save: {' '.join(settings.databases)}")
        return "\n".join(out)

    def status_text(self) -> str:
        if not self.state.is_setup:
            return f"{self.paths.stack_root}: no run set up"
        out = [f"run {self.state.run_id} on {self.paths.stack_root}"]
        for step in self.plan():
            rec = self.state.steps.get(step.id)
            status = rec.status if rec else "pending"
            dur = f"{rec.duration:.2f}s" if rec and rec.duration is not None else ""
            out.append(f"  {status:8} {dur:>9}  {step.id}")
        if self.state.failed_step:
            out.append(f"failed at {self.state.failed_step}; `invoke run --resume` continues")
        return "\n".join(out)

    def summary_text(self) -> str:
        """Per-phase times, each project's checks per phase, where the logs are."""
        out = ["", "summary:"]
        for side, tree in self.state.setup.get("trees", {}).items():
            out.append(f"  {side + ' tree':13} {tree.get('branch')} {tree.get('ref') or ''} "
                       f"sha {tree.get('sha') or '-'} (release {tree.get('release')})")
        total = 0.0
        for kind in KINDS:
            recs = [r for sid, r in self.state.steps.items() if sid.split("/")[0] == kind]
            if not recs:
                continue
            dur = sum(r.duration or 0 for r in recs)
            total += dur
            states = ", ".join(sorted({r.status for r in recs}))
            out.append(f"  {kind:13} {len(recs):3} step(s) {dur:8.2f}s  {states}")
        out.append(f"  {'total':13} {'':12} {total:8.2f}s")
        if self.state.is_setup:
            for service, (before, after) in self.deployer.versions(
                    self.deploy_context()).items():
                out.append(f"  {service:13} {before or '-'} -> {after or '-'}")
        results = read_results(self.paths.save_dir)
        if results:
            out.append("  checks:")
            table: dict[tuple[str, str], list[str]] = {}
            for r in results:
                key = (r.get("project", "?"), r.get("phase", "?"))
                mark = "ok" if r.get("result") == "pass" else "FAIL"
                table.setdefault(key, []).append(f"{r.get('resource')}={mark}")
            for (project, kind), marks in table.items():
                out.append(f"    {project:12} {kind:13} {' '.join(marks)}")
        out.append(f"  logs: {self.paths.logs_dir} (grenade.log, grenade.summary.log, steps/)")
        return "\n".join(out)

    def clean(self, logs: bool = False, trees: bool = False) -> None:
        """Stop what the deployer started; remove state (and logs, trees when asked).

        If stopping fails, nothing is removed: the state and logs are what is
        needed to find out why.
        """
        env = self.base_env()
        failed = []
        for i, cmd in enumerate(self.deployer.unstack(self.deploy_context()), 1):
            if cmd.cwd is not None and not Path(cmd.cwd).is_dir():
                continue
            log_path = self.log.steps_dir / step_log_name(900 + i, "clean")
            self.say(f"clean: {shlex.join(cmd.argv)} (in {cmd.cwd})")
            result = self.host.run(as_user(cmd.user, cmd.argv), env={**env, **cmd.env},
                                   cwd=cmd.cwd, timeout=float(self.cfg["timeout"]),
                                   log_path=log_path)
            if not result.ok:
                failed.append(f"{shlex.join(cmd.argv)} in {cmd.cwd} exited {result.exited} "
                              f"(log {log_path})")
        if failed:
            raise DeployError("clean: stopping the cloud failed; nothing was removed:\n  "
                              + "\n  ".join(failed))
        doomed = [self.paths.save_dir, self.paths.grenade_dir]
        if trees:
            doomed += [self.paths.base_release_dir, self.paths.target_release_dir,
                       self.paths.plugin_root, self.paths.stack_root / "data"]
        if logs:
            if self._log:
                self._log.close()
                self._log = None
            doomed.append(self.paths.logs_dir)
        root = self.paths.stack_root.resolve()
        removed = []
        for path in doomed:
            # only what this run made under its stack_root, whatever the config says
            if path.exists() and path.resolve().is_relative_to(root) and path.resolve() != root:
                shutil.rmtree(path)
                removed.append(str(path))
        self.console.write("clean: removed " + (", ".join(removed) or "nothing") + "\n")

    def read_state(self) -> None:
        """Load the state without taking the run lock (for `status` during a run)."""
        self.state = RunState.load(self.paths.state_file)

    def print_plan(self) -> None:
        self.console.write(format_plan(self.plan()) + "\n")


class _SignalGuard:
    """While steps run, SIGINT/SIGTERM stop the running hook's group and end the run."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.old: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        # Only record and forward: raising here could land between a fork and the
        # bookkeeping of its process group. The step loop raises between steps.
        self.run.host.interrupt(signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def as_user(user: str | None, argv: Iterable[str]) -> list[str]:
    """`argv` run as `user` (runuser as root, sudo otherwise); as is for ourselves."""
    if not user or user == pwd.getpwuid(os.geteuid()).pw_name:  # only looked up if asked
        return list(argv)
    prefix = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else ["sudo", "-E", "-u", user,
                                                                       "--"]
    return prefix + list(argv)


def coarse_kinds(name: str) -> tuple[str, ...]:
    return COARSE[name]


def kinds_between(start: str | None, end: str | None) -> list[str]:
    for name in (start, end):
        if name is not None and name not in KINDS:
            raise ConfigError(f"unknown step kind {name!r}; one of: {', '.join(KINDS)}")
    lo = KINDS.index(start) if start else 0
    hi = KINDS.index(end) if end else len(KINDS) - 1
    return list(KINDS[lo:hi + 1])


__all__ = ["Run", "GrenadeError", "coarse_kinds", "kinds_between"]

"""A repository's `zuul.d/` checked with Zuul's own configuration loader, offline.

Zuul validates a configuration change by proposing it: the scheduler builds a
speculative layout and reports its errors on the change. This builds the same
layout locally, with Zuul's classes (`zuul==14.3.0`, a test dependency), in three
stages:

- parse: Zuul's YAML loader and its voluptuous schemas (`TenantParser.parseConfig`);
- link: a real `Layout` with Zuul's reference checks (parents, nodesets and their
  groups, templates, project-pipeline jobs, required projects, the tenant's
  maximum timeout);
- freeze: per pipeline, what Zuul would run for a change of the project: each
  job's variants collected and applied the way `Layout.extendJobGraph` does
  (final variables, nodes and groups, playbooks in order; an abstract job or one
  without a run playbook is an error there too).

Jobs, nodesets and templates of other repositories (`base`, `multinode`,
devstack's nodesets) come from a stub file in zuul.d format, loaded as a trusted
config project. These are Zuul internals, not a public API: the version is pinned,
and tests prove that known-bad files are still rejected.

    python3 -m grenade.zuul.validate [--stubs FILE] [--known-project NAME]... ROOT
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # zuul 14.3 imports PyYAML's C extension by its old name (`_yaml`): not ours to fix
    warnings.simplefilter("ignore", DeprecationWarning)
    from zuul import configloader, model
    from zuul.executor.server import make_inventory_dict, squash_variables
    from zuul.lib.ansible import AnsibleManager

TENANT = "grenade-py"
HOSTNAME = "opendev.org"
DEFAULT_PROJECT = "openstack/grenade-py"
STUB_PROJECT = "opendev/base-jobs"  # where the stubs of other repositories live
PIPELINES = ("check", "gate")
ALL_CLASSES = set(configloader.TenantParser.all_classes)


@dataclass(frozen=True)
class Playbook:
    phase: str  # pre-run, run or post-run
    project: str  # the repository it comes from (its canonical name)
    path: str


@dataclass(frozen=True)
class FrozenJob:
    """What Zuul would run for one job of one pipeline."""

    pipeline: str
    name: str
    voting: bool
    timeout: int | None
    nodes: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    playbooks: tuple[Playbook, ...]  # in the order Zuul runs them
    variables: dict[str, Any]
    group_variables: dict[str, Any]
    host_variables: dict[str, Any]
    required_projects: tuple[str, ...]
    job: Any = field(repr=False, compare=False)  # Zuul's own frozen Job


@dataclass
class Result:
    errors: list[str]
    warnings: list[str]
    jobs: list[FrozenJob]
    layout: Any

    def job(self, pipeline: str, name: str) -> FrozenJob:
        for job in self.jobs:
            if (job.pipeline, job.name) == (pipeline, name):
                return job
        raise KeyError(f"{pipeline}: no job {name}")


class _Connection:
    connection_name = "opendev"


class _Source:
    """The little of a Zuul source a layout asks of a project."""

    connection = _Connection()
    canonical_hostname = HOSTNAME

    def getProjectDefaultMergeMode(self, project: Any, valid_modes: Any = None) -> str:
        return "merge-resolve"

    def getProjectDefaultBranch(self, project: Any, tenant: Any) -> str:
        return "master"


class _Connections:
    connections: dict[str, Any] = {}


class _Manager:
    def __init__(self, pipeline: str, tenant: Any) -> None:
        self.pipeline = type("Pipeline", (), {"name": pipeline, "post_review": False})()
        self.tenant = tenant


class _Item:
    """The queue item `Layout.getProjectPipelineConfig` and `collectJobs` read."""

    def __init__(self, pipeline: str, tenant: Any) -> None:
        self.manager = _Manager(pipeline, tenant)
        self.parameters: dict[str, Any] = {}

    def annotateLogger(self, logger: logging.Logger) -> logging.Logger:
        return logger


def _tenant(project: str, stub_project: str, known: Iterable[str]) -> tuple[Any, dict[str, Any]]:
    tenant = model.Tenant(TENANT)
    tenant.default_base_job = "base"
    tenant.semaphore_handler = None
    tenant.allowed_labels = tenant.disallowed_labels = None
    source = _Source()
    projects = {}
    for name in dict.fromkeys([stub_project, project, *known]):
        tpc = model.TenantProjectConfig(model.Project(name, source))
        tpc.load_classes = set(ALL_CLASSES)
        tpc.branches = ["master"]
        tpc.trusted = name == stub_project
        tenant.addTPC(tpc)
        projects[name] = tpc.project
    return tenant, projects


def _files(root: Path) -> list[Path]:
    """What Zuul reads from a repository: `zuul.yaml`, else `zuul.d/*.yaml`,
    `.zuul.yaml`, `.zuul.d/` (the first that exists)."""
    for name in ("zuul.yaml", "zuul.d", ".zuul.yaml", ".zuul.d"):
        path = root / name
        if path.is_file():
            return [path]
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
    return []


def _load(
    tenant_parser: Any, pcontext: Any, project: str, branch: str, paths: Sequence[tuple[str, str]]
) -> Any:
    unparsed = model.UnparsedConfig()
    for path, text in paths:
        context = model.SourceContext(f"{HOSTNAME}/{project}", project, "opendev", branch, path)
        with pcontext.accumulator.catchErrors():
            unparsed.extend(configloader.safe_load_yaml(text, context))
    return tenant_parser.parseConfig(unparsed, pcontext)


def _merge_parsed(into: Any, other: Any) -> None:
    for attr, value in vars(other).items():
        if isinstance(value, list):
            getattr(into, attr).extend(value)
        elif isinstance(value, dict):
            for key, items in value.items():
                getattr(into, attr).setdefault(key, []).extend(items)


def _playbooks(job: Any) -> tuple[Playbook, ...]:
    """Parent pre-runs first, child post-runs first, the child's run replacing the
    parent's: the order the frozen job holds them in."""
    phases = (("pre-run", job.pre_run), ("run", job.run), ("post-run", job.post_run))
    return tuple(
        Playbook(phase, pb.source_context.project_canonical_name, pb.path)
        for phase, playbooks in phases
        for pb in playbooks
    )


def _frozen(pipeline: str, name: str, job: Any) -> FrozenJob:
    nodeset = job.nodeset if isinstance(job.nodeset, model.NodeSet) else None
    nodes: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = {}
    if nodeset is not None:
        nodes = tuple(n for node in nodeset.getNodes() for n in node.name)
        groups = {g.name: tuple(g.nodes) for g in nodeset.getGroups()}
    return FrozenJob(
        pipeline=pipeline,
        name=name,
        voting=bool(job.voting),
        timeout=job.timeout,
        nodes=nodes,
        groups=groups,
        playbooks=_playbooks(job),
        variables=_plain(job.variables),
        group_variables=_plain(job.group_variables),
        host_variables=_plain(job.host_variables),
        required_projects=tuple(sorted(job.required_projects)),
        job=job,
    )


def _plain(value: Any) -> Any:
    """Zuul's keys are `ZuulConfigKey` (a str carrying its YAML mark): plain data."""
    return json.loads(json.dumps(value or {}))


def _freeze(layout: Any, tenant: Any, project: Any, pipeline: str) -> list[FrozenJob]:
    """What `Layout.extendJobGraph` computes for a change to `project` on master,
    without the job graph's bookkeeping (semaphores, secrets, file matchers)."""
    item = _Item(pipeline, tenant)
    change = model.Branch(project)
    change.branch = "master"
    ppc = layout.getProjectPipelineConfig(item, change)
    if ppc is None:
        return []
    frozen = []
    for name, pipeline_variants in ppc.job_list.jobs.items():
        # the parents first (collectJobs climbs to `base`), each variant applied on them
        first, *variants = layout.collectJobs(item, name, change)
        job = first.copy()
        job.setBase(layout, None)
        for variant in variants:
            job.applyVariant(variant, layout, None)
        job.name = name
        job.updateProjectVariables(ppc.variables)
        for variant in pipeline_variants:
            if variant.changeMatchesBranch(tenant, change):
                job.applyVariant(variant, layout, None)
        if job.abstract:
            raise model.JobConfigurationError(
                f"{pipeline}: job {name} is abstract and may not be directly run"
            )
        if not job.run:
            raise model.JobConfigurationError(
                f"{pipeline}: job {name} does not specify a run playbook"
            )
        frozen.append(_frozen(pipeline, name, job))
    return frozen


def validate(
    root: Path,
    *,
    stubs: Path | None = None,
    project: str = DEFAULT_PROJECT,
    known_projects: Iterable[str] = (),
    pipelines: Sequence[str] = PIPELINES,
) -> Result:
    """Parse, link and freeze the Zuul configuration of the repository at `root`.

    Errors are Zuul's own messages (the error text with the file, line and the
    stanza), plus a playbook path of ours that does not exist.
    """
    tenant, projects = _tenant(project, STUB_PROJECT, known_projects)
    pcontext = configloader.ParseContext(
        _Connections(), model.SystemAttributes(), None, AnsibleManager()
    )
    parser = configloader.TenantParser(None, None, None, None, None, None, None, None)
    parsed = model.ParsedConfig()
    if stubs is not None:
        _merge_parsed(
            parsed,
            _load(parser, pcontext, STUB_PROJECT, "master", [(stubs.name, stubs.read_text())]),
        )
    ours = [(str(p.relative_to(root)), p.read_text()) for p in _files(root)]
    _merge_parsed(parsed, _load(parser, pcontext, project, "master", ours))
    layout = parser._parseLayout(tenant, parsed, pcontext)
    errors = [e.error for e in layout.loading_errors if e.severity != model.SEVERITY_WARNING]
    warnings = [e.error for e in layout.loading_errors if e.severity == model.SEVERITY_WARNING]
    jobs: list[FrozenJob] = []
    if not errors:
        for pipeline in pipelines:
            try:
                jobs.extend(_freeze(layout, tenant, projects[project], pipeline))
            except (model.JobConfigurationError, model.NoMatchingParentError) as exc:
                errors.append(str(exc) or f"{pipeline}: {type(exc).__name__}")
        errors.extend(_missing_playbooks(layout, root, f"{HOSTNAME}/{project}"))
    return Result(errors=errors, warnings=warnings, jobs=jobs, layout=layout)


def _missing_playbooks(layout: Any, root: Path, canonical: str) -> list[str]:
    """Zuul finds a missing playbook only when it runs the job: find it now."""
    missing = []
    for variants in layout.jobs.values():
        for job in variants:
            context = job.source_context
            if context is None or context.project_canonical_name != canonical:
                continue  # Zuul's built-in noop job, or another repository's
            for pb in (*job.pre_run, *job.run, *job.post_run, *job.cleanup_run):
                if not (root / pb.path).is_file():
                    missing.append(f"job {job.name}: playbook {pb.path} not found under {root}")
    return missing


def inventory(
    job: FrozenJob,
    host_vars: dict[str, dict[str, Any]],
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Ansible inventory Zuul's executor writes for `job`, with its own
    `squash_variables` and `make_inventory_dict`; `host_vars` adds what the
    executor adds per node (ansible_host, ansible_port, ansible_user, nodepool),
    `variables` what a child job's `vars` would (deep-merged, as Zuul does)."""
    nodeset = job.job.nodeset
    nodes = [
        {"name": name, "host_vars": {**job.host_variables.get(name, {}), **host_vars.get(name, {})}}
        for name in job.nodes
    ]
    hostvars = squash_variables(
        [*nodes, {"name": "localhost", "host_vars": {}}],
        nodeset,
        model.Job._deepUpdate(job.variables, variables or {}),
        job.group_variables,
        _plain(job.job.extra_variables),
    )
    return _plain(make_inventory_dict(nodes, nodeset, hostvars, set()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m grenade.zuul.validate", description=__doc__)
    parser.add_argument("root", type=Path, help="the repository whose zuul.d/ to check")
    parser.add_argument("--stubs", type=Path, help="zuul.d-format stubs of other repositories")
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="the repository's Zuul name")
    parser.add_argument("--known-project", action="append", default=[], dest="known")
    parser.add_argument("--pipeline", action="append", dest="pipelines")
    args = parser.parse_args(argv)
    result = validate(
        args.root,
        stubs=args.stubs,
        project=args.project,
        known_projects=args.known,
        pipelines=args.pipelines or PIPELINES,
    )
    for job in result.jobs:
        print(f"{job.pipeline}: {job.name}: nodes {' '.join(job.nodes) or '-'}, playbooks:")
        for pb in job.playbooks:
            print(f"    {pb.phase:8} {pb.project}: {pb.path}")
    for text in result.warnings:
        print(f"--- warning: {text}")
    for text in result.errors:
        print(f"--- error: {text}")
    print(f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())

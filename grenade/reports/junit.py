"""report/junit.xml: what a CI dashboard reads, written with junitparser.

One testcase per step (classname `<phase>.<kind>`, name the project, the hosts
as properties) and one per resource check (classname `resources.<project>.<phase>`,
name the resource). Failures carry the message and the log path; steps that did
not run, or were turned off by configuration, are skipped testcases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from junitparser import Failure, JUnitXml, Properties, Property, Skipped, TestCase, TestSuite

from ..state import FAILED, PENDING, RUNNING, SKIPPED
from .model import BY_CONFIG, NOT_RUN


def _properties(pairs: list[tuple[str, str]]) -> Properties:
    props = Properties()
    for name, value in pairs:
        props.add_property(Property(name, value))
    return props


def step_case(step: Mapping[str, Any]) -> TestCase:
    case = TestCase(step["project"], f"{step['phase']}.{step['kind']}", step["duration"] or 0.0)
    hosts = step["hosts"]
    pairs = [("step", step["id"]), ("group", step["group"])]
    pairs += [("host", h["name"]) for h in hosts]
    pairs += [(f"log.{h['name']}", h["log"]) for h in hosts if h["log"]]
    case.append(_properties(pairs))
    status = step["status"]
    if status == FAILED:
        failed = [h for h in hosts if h["status"] == FAILED] or hosts
        message = "; ".join(f"{h['name']}: {h['message'] or step['message']}" for h in failed)
        failure = Failure(message, "StepFailed")
        failure.text = "\n".join(f"host {h['name']}: log {h['log']}" for h in failed)
        case.result = [failure]
    elif status == SKIPPED:
        case.result = [Skipped(step["message"] or BY_CONFIG)]
    elif status in (PENDING, RUNNING):
        case.result = [Skipped(NOT_RUN if status == PENDING else "still running")]
    return case


def check_case(check: Mapping[str, str], logs: Mapping[str, str]) -> TestCase:
    case = TestCase(check["resource"], f"resources.{check['project']}.{check['phase']}")
    log = logs.get(f"{check['phase']}/{check['project']}", "")
    case.append(_properties([("side", check["side"]), ("log", log)]))
    if check["result"] != "pass":
        failure = Failure(f"FAIL {check['project']} {check['resource']}: {check['detail']}")
        failure.text = f"log {log}" if log else ""
        case.result = [failure]
    elif check["detail"]:
        case.system_out = check["detail"]
    return case


def junit_xml(report: Mapping[str, Any]) -> str:
    """The report as JUnit XML text."""
    steps = TestSuite("grenade.steps")
    # append, not add_testcase: that one recounts the whole suite for every case
    for step in report["steps"]:
        steps.append(step_case(step))
    logs = {s["id"]: next((h["log"] for h in s["hosts"] if h["log"]), "") for s in report["steps"]}
    checks = TestSuite("grenade.resources")
    for check in report["checks"]:
        checks.append(check_case(check, logs))
    xml = JUnitXml("grenade " + report["run_id"])
    for suite in (steps, checks):
        suite.add_property("run_id", report["run_id"])
        suite.add_property("outcome", report["outcome"])
        suite.update_statistics()
        xml.add_testsuite(suite)
    xml.update_statistics()
    return xml.tostring().decode()

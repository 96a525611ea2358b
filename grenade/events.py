"""What the step runner tells its observers: a step started, a step finished.

Observers (the progress lines and summary log now; reports and probes later)
subscribe to these; the runner never knows what they do with them. An observer
must not raise: the run's own record (the state) is written whatever they do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .hosts import Result
from .plan import Step
from .state import StepRecord


@dataclass(frozen=True)
class StepStarted:
    step: Step
    index: int  # 1-based position in the plan
    total: int  # steps in the plan
    hosts: tuple[str, ...]  # where it runs: the hosts of the step's group
    logs: Mapping[str, Path]  # host -> its step log


@dataclass(frozen=True)
class StepFinished:
    step: Step
    index: int
    total: int
    results: Mapping[str, Result]  # host -> what the command did there
    record: StepRecord  # as written to the run state
    logs: Mapping[str, Path]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    @property
    def failed(self) -> dict[str, Result]:
        return {host: r for host, r in self.results.items() if not r.ok}


class Observer(Protocol):
    def step_started(self, event: StepStarted) -> None: ...

    def step_finished(self, event: StepFinished) -> None: ...

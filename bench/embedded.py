"""The embedded upgrade, measured: grenade cold, grenade warm and a hand-written script.

One invocation runs, one after the other (never two upgrades at once):

* cold: ``grenade run`` on a fresh stack_root with EMPTY download caches
  (GRENADE_CACHE_DIR/UV_CACHE_DIR in a new temp dir: uv fetches everything from PyPI);
* warm: the same with the normal warm cache (``~/.cache/grenade``);
* hand: ``bench/hand_upgrade.sh``, the same upgrade (same deployment tree, resources,
  checks, dumps) as plain bash with no framework, on the warm cache;

each followed by its clean-up (``grenade clean`` / the trees' ``unstack.sh``). Prints
the per-phase times side by side, the peak RSS of everything each run started (the
summed RSS of every process whose command line or cwd is under its directory, or
that descends from one of them or from the run's own process, sampled every 0.2 s)
and the warm/hand ratio, then checks the targets: warm <= 1.3x hand, cold <= 4 min,
peak RSS <= 1 GiB. With ``--rounds N`` warm and hand alternate N times and the table
shows each one's fastest round (peak RSS: the highest of its rounds): this machine
may be shared, and one busy minute moves a total by tens of seconds.

    python3 bench/embedded.py [--skip-cold] [--keep] [--rounds N] [--idle-load L]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
HAND = REPO / "bench" / "hand_upgrade.sh"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# The table's rows: grenade step kinds (grenade/plan.py KINDS) grouped like the hand
# script's phases. Whatever the steps do not cover (setup, the runner before the first
# and after the last step) is "setup+other".
PHASES: dict[str, tuple[str, ...]] = {
    "deploy": ("stack-base", "verify-base", "versions-base"),
    "create": ("early-create", "create"),
    "verify-pre": ("verify-pre", "save-state"),
    "shutdown": ("shutdown", "snapshot"),
    "verify-noapi": ("verify-noapi",),
    "upgrade": ("prep-target", "upgrade", "converge"),
    "verify-post": ("verify-post", "verify-target"),
    "destroy": ("destroy",),
}
ROWS = ("setup+other", *PHASES)
# The lite tree's own report of a venv build (inc/python, lite_install_venv).
VENV_BUILT = re.compile(r"^lite: built \S+ from \S+ in (\d+)s$", re.MULTILINE)

TARGET_RATIO = 1.3
TARGET_COLD_S = 240.0
TARGET_RSS_MIB = 1024.0


@dataclass
class Options:
    keep: bool  # keep the run directories
    idle_load: float  # start a run only below this 1-min load average (0: at once)


@dataclass
class Result:
    """One measured run."""

    name: str
    total: float = 0.0
    clean: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    peak_rss: int = 0  # bytes
    peak_pss: int = 0  # bytes
    driver_cpu: float = 0.0  # CPU seconds of grenade's python process / the script's bash
    ok: bool = False
    where: str = ""
    load: float = 0.0  # 1-min load average when the run started
    venvs: float = 0.0  # seconds the two venv builds took (within deploy and upgrade)
    cache_mib: float | None = None  # what a cold run downloaded into its empty cache
    totals: list[float] = field(default_factory=list)  # every round's total (best())


class MemorySampler(threading.Thread):
    """Samples the summed RSS (and PSS) of a run's processes until stopped."""

    def __init__(self, root: Path, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.marker = str(root) + "/"
        self.root = str(root)
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.driver_cpu = 0.0  # CPU seconds of the run's own process (not its children)
        self._stop_event = threading.Event()

    def _mine(self) -> list[int]:
        """Pids of the run: matched by cmdline or cwd, or descending from one."""
        parents: dict[int, int] = {}
        matched: set[int] = {self.pid}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    stat = f.read()
                fields = stat[stat.rindex(b")") + 2 :].split()
                parents[pid] = int(fields[1])
                if pid == self.pid:  # utime + stime
                    self.driver_cpu = (int(fields[11]) + int(fields[12])) / TICKS
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().decode(errors="replace")
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except (OSError, ValueError):
                continue
            if self.marker in cmdline or cwd == self.root or cwd.startswith(self.marker):
                matched.add(pid)
        mine = []
        for pid in parents:
            p, seen = pid, 0
            while p > 1 and p not in matched and seen < 64:
                p, seen = parents.get(p, 0), seen + 1
            if p in matched:
                mine.append(pid)
        return mine

    def sample(self) -> None:
        rss = pss = 0
        for pid in self._mine():
            try:
                with open(f"/proc/{pid}/statm", "rb") as f:
                    rss += int(f.read().split()[1]) * PAGE
                with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                    for line in f:
                        if line.startswith(b"Pss:"):
                            pss += int(line.split()[1]) * 1024
                            break
            except (OSError, ValueError, IndexError):
                continue
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def wait_idle(limit: float, most: float = 600.0) -> float:
    """Wait (at most `most` s) until the 1-min load average is below limit: another
    upgrade on this machine would skew the times. Returns the load average then."""
    deadline, said = time.monotonic() + most, False
    while limit > 0 and os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        if not said:
            print(f"  waiting for load < {limit} (now {os.getloadavg()[0]:.2f}) ...", flush=True)
            said = True
        time.sleep(5)
    return os.getloadavg()[0]


def new_dir(prefix: str) -> Path:
    """A directory under /var/tmp every user can traverse (PostgreSQL runs as postgres)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    os.chmod(path, 0o755)
    return path


def measured(
    res: Result, cmd: list[str], root: Path, log: Path, env: dict[str, str], idle: float
) -> None:
    """Run cmd (output to log), sampling memory; fills res's total, ok, peaks, loads."""
    res.load = wait_idle(idle)
    os.sync()  # neither run pays for the previous one's writeback
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        sampler = MemorySampler(root, proc.pid)
        sampler.start()
        rc = proc.wait()
        res.total = time.perf_counter() - start
        sampler.stop()
    res.ok, res.peak_rss, res.peak_pss = rc == 0, sampler.peak_rss, sampler.peak_pss
    res.driver_cpu = sampler.driver_cpu


def timed(cmd: list[str], log: Path, env: dict[str, str], cwd: Path = REPO) -> float:
    """Run a clean-up command (output appended to log); its seconds."""
    start = time.perf_counter()
    with open(log, "ab") as out:
        subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=300)
    return time.perf_counter() - start


def venv_seconds(logs: list[Path]) -> float:
    """Seconds of the venv builds the lite tree reported in these logs."""
    return sum(int(m) for log in logs for m in VENV_BUILT.findall(log.read_text(errors="replace")))


def du_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB


def grenade_phases(stack_root: Path, total: float) -> dict[str, float]:
    """Per-phase seconds from the run's report.json (steps with kind and duration)."""
    report = json.loads((stack_root / "logs" / "report" / "report.json").read_text())
    phases = dict.fromkeys(ROWS, 0.0)
    for step in report["steps"]:
        for phase, kinds in PHASES.items():
            if step["kind"] in kinds:
                phases[phase] += step.get("duration") or 0.0
    phases["setup+other"] = total - sum(phases[p] for p in PHASES)
    return phases


def run_grenade(name: str, env: dict[str, str], opts: Options) -> Result:
    base = new_dir(f"grenade-embedded-{name}-")
    stack_root = base / "stack"
    config = base / "run.yaml"
    config.write_text(yaml.safe_dump({"grenade": {"stack_root": str(stack_root)}}))
    grenade = [sys.executable, "-m", "grenade", "-f", str(config)]
    res = Result(name, where=str(base))
    log = base / "grenade.out"
    print(f"[{name}] grenade run in {base} (log {log}) ...", flush=True)
    try:
        measured(res, [*grenade, "run"], base, log, env, opts.idle_load)
        if res.ok:
            res.phases = grenade_phases(stack_root, res.total)
            res.venvs = venv_seconds(sorted((stack_root / "logs" / "steps").glob("*.log")))
        if "UV_CACHE_DIR" in env:
            res.cache_mib = du_mib(Path(env["UV_CACHE_DIR"]))
    finally:
        res.clean = timed([*grenade, "clean"], log, env)
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"[{name}] {'ok' if res.ok else 'FAILED'} in {res.total:.1f}s", flush=True)
    return res


def hand_phases(times: Path, total: float) -> dict[str, float]:
    """Per-phase seconds from the script's "<phase> <epoch>" marks."""
    marks = [line.split() for line in times.read_text().splitlines() if line.strip()]
    phases = dict.fromkeys(ROWS, 0.0)
    for (phase, start), (_, end) in zip(marks, marks[1:], strict=False):
        phases["setup+other" if phase == "setup" else phase] += float(end) - float(start)
    phases["setup+other"] += total - sum(phases.values())
    return phases


def run_hand(env: dict[str, str], opts: Options) -> Result:
    base = new_dir("grenade-embedded-hand-")
    stack_root, times, log = base / "stack", base / "times.txt", base / "hand.out"
    res = Result("hand", where=str(base))
    print(f"[hand] {HAND.name} in {base} (log {log}) ...", flush=True)
    try:
        cmd = ["bash", str(HAND), str(stack_root), str(times)]
        measured(res, cmd, base, log, env, opts.idle_load)
        if res.ok:
            res.phases = hand_phases(times, res.total)
            res.venvs = venv_seconds([stack_root / "stack.log", stack_root / "upgrade.log"])
    finally:
        start = time.perf_counter()
        for side in ("new", "old"):  # the target's unstack.sh also stops PostgreSQL
            tree = stack_root / side / "devstack"
            if (tree / "unstack.sh").is_file():
                timed(["bash", "./unstack.sh"], log, env, cwd=tree)
        res.clean = time.perf_counter() - start
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"[hand] {'ok' if res.ok else 'FAILED'} in {res.total:.1f}s", flush=True)
    return res


def best(runs: list[Result]) -> Result:
    """The fastest successful round (the first failure if none), with the highest peak
    memory of all rounds and every round's total."""
    ok = [r for r in runs if r.ok]
    chosen = min(ok, key=lambda r: r.total) if ok else runs[0]
    chosen.peak_rss = max(r.peak_rss for r in runs)
    chosen.peak_pss = max(r.peak_pss for r in runs)
    chosen.totals = [r.total for r in runs]
    return chosen


def target(label: str, shown: str, goal: str, ok: bool) -> bool:
    print(f"{label:14}{shown:>12}  (target {goal})  {'PASS' if ok else 'MISS'}")
    return ok


def report(results: list[Result]) -> bool:
    """Print the table and the targets; True when every run passed and target was met."""
    by_name = {r.name: r for r in results}
    warm, hand = by_name.get("warm"), by_name.get("hand")
    pair = (warm, hand) if warm and hand and warm.ok and hand.ok else None
    print(f"\n{'phase (s)':14}" + "".join(f"{r.name:>10}" for r in results), end="")
    print(f"{'warm/hand':>11}" if pair else "")

    def row(label: str, values: list[float], ratio: tuple[float, float] | None = None) -> None:
        cells = "".join(f"{v:10.1f}" for v in values)
        if ratio is not None and ratio[1] >= 0.5:  # no ratio of near-zero times
            cells += f"{ratio[0] / ratio[1]:11.2f}"
        print(f"{label:14}{cells}")

    for phase in ROWS:
        pairs = (pair[0].phases[phase], pair[1].phases[phase]) if pair else None
        row(phase, [r.phases.get(phase, 0.0) for r in results], pairs)
    row("total", [r.total for r in results], (pair[0].total, pair[1].total) if pair else None)
    row(
        "  venv builds",
        [r.venvs for r in results],
        (pair[0].venvs, pair[1].venvs) if pair else None,
    )
    row("clean", [r.clean for r in results])
    row("driver CPU", [r.driver_cpu for r in results])
    print(f"{'peak RSS MiB':14}" + "".join(f"{r.peak_rss / MIB:10.0f}" for r in results))
    print(f"{'peak PSS MiB':14}" + "".join(f"{r.peak_pss / MIB:10.0f}" for r in results))
    print(f"{'load at start':14}" + "".join(f"{r.load:10.2f}" for r in results))
    for r in results:
        if len(r.totals) > 1:
            print(f"{r.name} rounds: " + ", ".join(f"{t:.1f}" for t in r.totals) + " s")
        if r.cache_mib is not None:
            print(f"{r.name}: {r.cache_mib:.0f} MiB downloaded into its empty uv cache")
    print()
    passed = True
    for r in results:
        if not r.ok:
            print(f"run {r.name} FAILED: its log is in {r.where} (kept with --keep)")
            passed = False
    if pair:
        ratio = pair[0].total / pair[1].total
        passed &= target("warm/hand", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x", ratio <= TARGET_RATIO)
    cold = by_name.get("cold")
    if cold and cold.ok:
        ok = cold.total <= TARGET_COLD_S
        passed &= target("cold total", f"{cold.total:.1f} s", f"<= {TARGET_COLD_S:.0f} s", ok)
    for r in results:
        if r.ok:
            mib = r.peak_rss / MIB
            ok = mib <= TARGET_RSS_MIB
            passed &= target(f"peak RSS {r.name}", f"{mib:.0f} MiB", f"<= {TARGET_RSS_MIB:.0f}", ok)
    return passed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-cold", action="store_true", help="no run with empty caches")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument(
        "--idle-load",
        type=float,
        default=1.0,
        help="wait (up to 10 min) before each run until the 1-min load average is below "
        "this, so another upgrade on the machine does not skew the times; 0: do not wait",
    )
    ap.add_argument("--rounds", type=int, default=1, help="warm/hand rounds (best shown)")
    args = ap.parse_args()
    opts = Options(keep=args.keep, idle_load=args.idle_load)
    env = dict(os.environ)  # warm and hand: the caches this user normally has
    results: list[Result] = []
    if not args.skip_cold:
        cache = new_dir("grenade-embedded-cache-")
        cold_env = {**env, "GRENADE_CACHE_DIR": str(cache), "UV_CACHE_DIR": str(cache / "uv")}
        try:
            results.append(run_grenade("cold", cold_env, opts))
        finally:
            if not opts.keep:
                shutil.rmtree(cache, ignore_errors=True)
    warm: list[Result] = []
    hand: list[Result] = []
    for _ in range(max(1, args.rounds)):
        warm.append(run_grenade("warm", env, opts))
        hand.append(run_hand(env, opts))
    results += [best(warm), best(hand)]
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark grenade.trees: cold preparation against re-preparation through the cache.

Builds a local repository of devstack-like size (a few hundred files, a few dozen
commits, release branches), then times, in one run:

- a cold ``prepare_tree`` (empty cache: the mirror is created, then the tree);
- re-preparing the same, up-to-date tree (must stay within 1 s);
- a second tree of the same repository through the warm cache (no objects copied);
- for comparison, a cold clone without a cache.

Usage: ``python bench/trees.py [--files N] [--commits N] [--keep DIR]``. Exits 1 when
re-preparation takes more than a second.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import git

from grenade.trees import TreeSpec, mirror_path, prepare_tree

LIMIT_SECONDS = 1.0
BRANCHES = ("stable/2025.1", "unmaintained/2024.1")


def build_repo(path: Path, files: int, commits: int) -> git.Repo:
    rng = random.Random(42)
    repo = git.Repo.init(path, initial_branch="master")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Bench")
        config.set_value("user", "email", "bench@example.org")
    names = [f"lib/part{i % 17}/module_{i}.sh" for i in range(files)]

    def write(count: int, tag: str) -> None:
        for name in rng.sample(names, count):
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            words = [f"{tag}_{rng.getrandbits(32):08x}" for _ in range(rng.randint(100, 800))]
            target.write_text("\n".join(words) + "\n")

    write(files, "init")
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "initial import")
    per_branch = max(1, commits // (len(BRANCHES) + 1))
    for branch in BRANCHES:
        repo.git.branch(branch)
    for branch in ("master", *BRANCHES):
        repo.git.checkout("-q", branch)
        for n in range(per_branch):
            write(max(1, files // 20), f"{branch}-{n}")
            repo.git.add("-A")
            repo.git.commit("-q", "-m", f"{branch} change {n}")
    repo.git.checkout("-q", "master")
    return repo


def timed(label: str, spec: TreeSpec, dest: Path, cache: Path | None) -> float:
    started = time.perf_counter()
    tree = prepare_tree(spec, dest, cache)
    elapsed = time.perf_counter() - started
    print(f"{label:<42} {elapsed * 1000:9.1f} ms  {tree.branch} @ {tree.sha[:12]}")
    return elapsed


def object_count(path: Path) -> int:
    counts = dict(line.split(": ") for line in git.Repo(path).git.count_objects("-v").splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--commits", type=int, default=45)
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="grenade-bench-") as tmp:
        work = args.keep or Path(tmp)
        upstream = work / "upstream"
        cache = work / "cache"
        started = time.perf_counter()
        repo = build_repo(upstream, args.files, args.commits)
        commits = int(repo.git.rev_list("--all", "--count"))
        size = sum(f.stat().st_size for f in (upstream / ".git").rglob("*") if f.is_file())
        print(
            f"repository: {args.files} files, {commits} commits, {len(BRANCHES) + 1} branches, "
            f".git {size / 1e6:.1f} MB (built in {time.perf_counter() - started:.1f} s)"
        )

        base = TreeSpec(str(upstream), "stable/2025.1")
        cold = timed("cold prepare (empty cache)", base, work / "old", cache)
        warm = timed("re-prepare, same tree, up to date", base, work / "old", cache)
        second = timed(
            "second tree, same repo, warm cache",
            TreeSpec(str(upstream), "master"),
            work / "new",
            cache,
        )
        timed("for comparison: cold clone without cache", base, work / "plain", None)
        print(
            f"objects: mirror {object_count(mirror_path(str(upstream), cache))}, "
            f"old tree {object_count(work / 'old')}, new tree {object_count(work / 'new')}"
        )
        print(f"cold / re-prepare: {cold / warm:.1f}x; cold / second tree: {cold / second:.1f}x")
        if warm > LIMIT_SECONDS:
            print(f"FAIL: re-preparation took {warm:.2f} s > {LIMIT_SECONDS:.0f} s")
            return 1
        print(f"OK: re-preparation within {LIMIT_SECONDS:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

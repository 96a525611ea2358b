"""grenade.trees against real git repositories built in temporary directories."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from grenade.errors import TreeError
from grenade.pluginrc import parse_pluginrc
from grenade.releases import release_name, upgrade_direction
from grenade.trees import (
    TreeSpec,
    mirror_path,
    prepare_plugin,
    prepare_tree,
    tree_has_devstack_functions,
    tree_sha,
)


@dataclass
class Upstream:
    """A repository with the branch layout of an OpenStack project."""

    path: Path
    repo: git.Repo
    first: str  # master's first commit, also where the release branches start
    master: str
    stable: str  # head of stable/2025.1, tagged 2025.1.0
    unmaintained: str  # head of unmaintained/2024.1

    def commit(self, branch: str, name: str, text: str) -> str:
        self.repo.git.checkout("-q", branch)
        (self.path / name).write_text(text)
        self.repo.git.add("-A")
        self.repo.git.commit("-q", "-m", f"{branch}: {name}")
        return self.repo.head.commit.hexsha


def make_upstream(path: Path) -> Upstream:
    repo = git.Repo.init(path, initial_branch="master")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Upstream")
        config.set_value("user", "email", "upstream@example.org")
    (path / ".gitignore").write_text("*.log\n")
    (path / "functions").write_text("# devstack functions\n")
    (path / "functions-common").write_text("# devstack functions-common\n")
    (path / "VERSION").write_text("master-1\n")
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "first")
    first = repo.head.commit.hexsha
    repo.git.branch("stable/2025.1")
    repo.git.branch("unmaintained/2024.1")
    up = Upstream(path, repo, first, "", "", "")
    up.master = up.commit("master", "VERSION", "master-2\n")
    up.stable = up.commit("stable/2025.1", "VERSION", "2025.1\n")
    repo.git.tag("-a", "-m", "release", "2025.1.0")
    up.unmaintained = up.commit("unmaintained/2024.1", "VERSION", "2024.1\n")
    repo.git.checkout("-q", "master")
    return up


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return make_upstream(tmp_path / "upstream")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def head_branch(path: Path) -> str | None:
    repo = git.Repo(path)
    return None if repo.head.is_detached else repo.active_branch.name


# --- preparing trees ----------------------------------------------------------------


def test_clone_checks_out_a_tracking_branch(
    upstream: Upstream, tmp_path: Path, cache: Path
) -> None:
    dest = tmp_path / "stack" / "old" / "devstack"
    tree = prepare_tree(TreeSpec(str(upstream.path), "stable/2025.1"), dest, cache)

    assert tree.sha == upstream.stable
    assert (tree.path, tree.repo, tree.branch, tree.ref) == (
        dest,
        str(upstream.path),
        "stable/2025.1",
        None,
    )
    assert tree.release == "2025.1"
    assert (dest / "VERSION").read_text() == "2025.1\n"
    repo = git.Repo(dest)
    assert repo.active_branch.name == "stable/2025.1"
    assert repo.active_branch.tracking_branch().name == "origin/stable/2025.1"
    assert repo.remotes.origin.url == str(upstream.path)
    assert tree_sha(dest) == upstream.stable


def test_reuse_fetches_instead_of_recloning(
    upstream: Upstream, tmp_path: Path, cache: Path
) -> None:
    dest = tmp_path / "old"
    spec = TreeSpec(str(upstream.path), "master")
    prepare_tree(spec, dest, cache)
    marker = dest / ".git" / "grenade-test-marker"
    marker.write_text("survives")
    inode = (dest / ".git").stat().st_ino

    started = time.monotonic()
    again = prepare_tree(spec, dest, cache)
    elapsed = time.monotonic() - started

    assert again.sha == upstream.master
    assert marker.read_text() == "survives"
    assert (dest / ".git").stat().st_ino == inode
    assert git.Repo(dest).alternates == [str(mirror_path(spec.repo, cache) / "objects")]
    assert elapsed <= 1.0


def test_update_to_a_new_upstream_commit(upstream: Upstream, tmp_path: Path, cache: Path) -> None:
    dest = tmp_path / "new"
    spec = TreeSpec(str(upstream.path), "stable/2025.1")
    prepare_tree(spec, dest, cache)
    newer = upstream.commit("stable/2025.1", "VERSION", "2025.1-fix\n")

    tree = prepare_tree(spec, dest, cache)

    assert tree.sha == newer
    assert (dest / "VERSION").read_text() == "2025.1-fix\n"
    assert head_branch(dest) == "stable/2025.1"


def test_switch_branch_tag_sha_and_back(upstream: Upstream, tmp_path: Path, cache: Path) -> None:
    dest = tmp_path / "tree"
    url = str(upstream.path)

    on_branch = prepare_tree(TreeSpec(url, "unmaintained/2024.1"), dest, cache)
    assert (on_branch.sha, on_branch.release) == (upstream.unmaintained, "2024.1")
    assert head_branch(dest) == "unmaintained/2024.1"

    on_tag = prepare_tree(TreeSpec(url, "stable/2025.1", ref="2025.1.0"), dest, cache)
    assert (on_tag.sha, on_tag.ref, on_tag.release) == (upstream.stable, "2025.1.0", "2025.1")
    assert head_branch(dest) is None

    on_sha = prepare_tree(TreeSpec(url, "master", ref=upstream.first[:10]), dest, cache)
    assert on_sha.sha == upstream.first
    assert head_branch(dest) is None
    assert (dest / "VERSION").read_text() == "master-1\n"

    back = prepare_tree(TreeSpec(url, "master"), dest, cache)
    assert back.sha == upstream.master
    assert head_branch(dest) == "master"


def test_commit_on_no_branch_and_change_refs(
    upstream: Upstream, tmp_path: Path, cache: Path
) -> None:
    orphan = upstream.commit("master", "change", "under review\n")
    upstream.repo.git.update_ref("refs/changes/01/1/1", orphan)
    upstream.repo.git.reset("-q", "--hard", upstream.master)
    url = str(upstream.path)

    by_ref = prepare_tree(TreeSpec(url, "master", ref="refs/changes/01/1/1"), tmp_path / "a", cache)
    upstream.repo.git.update_ref("-d", "refs/changes/01/1/1")
    by_sha = prepare_tree(TreeSpec(url, "master", ref=orphan), tmp_path / "b", None)

    assert by_ref.sha == by_sha.sha == orphan
    assert (tmp_path / "b" / "change").read_text() == "under review\n"


def test_dirty_tree_is_refused_and_force_resets(
    upstream: Upstream, tmp_path: Path, cache: Path
) -> None:
    dest = tmp_path / "tree"
    spec = TreeSpec(str(upstream.path), "master")
    prepare_tree(spec, dest, cache)
    (dest / "VERSION").write_text("edited\n")
    (dest / "notes.txt").write_text("untracked\n")
    (dest / "stack.log").write_text("ignored\n")

    with pytest.raises(TreeError) as err:
        prepare_tree(spec, dest, cache)
    message = str(err.value)
    assert str(dest) in message
    assert "VERSION" in message and "notes.txt" in message
    assert "stack.log" not in message

    tree = prepare_tree(spec, dest, cache, force=True)
    assert tree.sha == upstream.master
    assert (dest / "VERSION").read_text() == "master-2\n"
    assert not (dest / "notes.txt").exists()
    assert (dest / "stack.log").exists()  # ignored files are not dirt


def test_ignored_files_do_not_make_a_tree_dirty(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "tree"
    spec = TreeSpec(str(upstream.path), "master")
    prepare_tree(spec, dest, None)
    (dest / "stack.log").write_text("ignored\n")
    assert prepare_tree(spec, dest, None).sha == upstream.master


def test_local_commits_on_the_branch_are_refused(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "tree"
    spec = TreeSpec(str(upstream.path), "master")
    prepare_tree(spec, dest, None)
    local = git.Repo(dest)
    with local.config_writer() as config:
        config.set_value("user", "name", "Me")
        config.set_value("user", "email", "me@example.org")
    (dest / "mine").write_text("local work\n")
    local.git.add("mine")
    local.git.commit("-q", "-m", "local")

    with pytest.raises(TreeError, match="local branch 'master'"):
        prepare_tree(spec, dest, None)
    assert prepare_tree(spec, dest, None, force=True).sha == upstream.master


def test_unknown_ref_names_repo_and_ref(upstream: Upstream, tmp_path: Path, cache: Path) -> None:
    url = str(upstream.path)
    with pytest.raises(TreeError) as err:
        prepare_tree(TreeSpec(url, "master", ref="no-such-tag"), tmp_path / "a", cache)
    assert url in str(err.value) and "no-such-tag" in str(err.value)
    with pytest.raises(TreeError) as err:
        prepare_tree(TreeSpec(url, "stable/1999.1"), tmp_path / "a", cache)
    assert url in str(err.value) and "stable/1999.1" in str(err.value)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("use_cache", [True, False])
def test_unreachable_repo_names_repo_and_ref(tmp_path: Path, use_cache: bool) -> None:
    missing = str(tmp_path / "no-such-repo")
    cache = tmp_path / "cache" if use_cache else None
    with pytest.raises(TreeError) as err:
        prepare_tree(TreeSpec(missing, "stable/2025.1"), tmp_path / "tree", cache)
    assert missing in str(err.value) and "stable/2025.1" in str(err.value)
    assert not (tmp_path / "tree").exists()
    if cache is not None:
        assert not mirror_path(missing, cache).exists()


def test_second_tree_borrows_objects_from_the_cache(
    upstream: Upstream, tmp_path: Path, cache: Path
) -> None:
    url = str(upstream.path)
    base = prepare_tree(TreeSpec(url, "stable/2025.1"), tmp_path / "old", cache)
    target = prepare_tree(TreeSpec(url, "master"), tmp_path / "new", cache)

    mirror = mirror_path(url, cache)
    assert mirror.is_dir()
    for tree in (base, target):
        repo = git.Repo(tree.path)
        assert repo.alternates == [str(mirror / "objects")]
        counts = dict(line.split(": ") for line in repo.git.count_objects("-v").splitlines())
        assert counts["count"] == "0" and counts["packs"] == "0"
    assert [p.name for p in cache.glob("*.git")] == [mirror.name]


def test_existing_non_checkout_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "tree"
    dest.mkdir()
    (dest / "precious").write_text("not a checkout\n")
    with pytest.raises(TreeError, match="not a git checkout"):
        prepare_tree(TreeSpec(str(upstream.path), "master"), dest, None)
    assert (dest / "precious").exists()


def test_tree_has_devstack_functions(upstream: Upstream, tmp_path: Path) -> None:
    tree = prepare_tree(TreeSpec(str(upstream.path), "master"), tmp_path / "t", None)
    assert tree_has_devstack_functions(tree.path)
    assert not tree_has_devstack_functions(tmp_path)


# --- plugins ------------------------------------------------------------------------


def test_plugins_from_a_pluginrc(upstream: Upstream, tmp_path: Path, cache: Path) -> None:
    other = make_upstream(tmp_path / "other-plugin")
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text(
        "# written by write-grenade-conf\n"
        "\n"
        f"enable_grenade_plugin heat {upstream.path} stable/2025.1\n"
        f"  enable_grenade_plugin 'ironic' '{other.path}'  # default branch\n"
    )
    plugins = [(p.name, p.repo, p.branch) for p in parse_pluginrc(pluginrc)]
    assert plugins == [
        ("heat", str(upstream.path), "stable/2025.1"),
        ("ironic", str(other.path), None),
    ]

    plugin_root = tmp_path / "stack" / "plugins"
    target_branch = "master"
    trees = [
        prepare_plugin(name, url, branch or target_branch, plugin_root, cache)
        for name, url, branch in plugins
    ]
    assert [t.path for t in trees] == [plugin_root / "heat", plugin_root / "ironic"]
    assert [t.sha for t in trees] == [upstream.stable, other.master]
    assert head_branch(plugin_root / "ironic") == "master"


def test_plugin_branch_may_be_a_tag(upstream: Upstream, tmp_path: Path) -> None:
    tree = prepare_plugin("heat", str(upstream.path), "2025.1.0", tmp_path / "plugins", None)
    assert tree.sha == upstream.stable
    assert head_branch(tree.path) is None


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("enable_grenade_plugin heat", "expected 'enable_grenade_plugin"),
        ("enable_grenade_plugin a b c d", "expected 'enable_grenade_plugin"),
        ("enable_plugin heat https://x", "expected 'enable_grenade_plugin"),
        ("enable_grenade_plugin heat 'https://x", "cannot parse"),
        ("enable_grenade_plugin heat $GIT_BASE/heat", "shell expansions"),
        ("enable_grenade_plugin ../heat https://x", "plain directory name"),
    ],
)
def test_malformed_pluginrc_line_is_named(tmp_path: Path, line: str, complaint: str) -> None:
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text(f"# plugins\nenable_grenade_plugin ok https://x\n{line}\n")
    with pytest.raises(TreeError) as err:
        parse_pluginrc(pluginrc)
    assert f"{pluginrc}:3" in str(err.value)
    assert complaint in str(err.value)


def test_duplicate_plugin_in_pluginrc(tmp_path: Path) -> None:
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text("enable_grenade_plugin a https://x\nenable_grenade_plugin a https://y\n")
    with pytest.raises(TreeError, match=r"pluginrc:2: plugin a: already enabled at .*pluginrc:1"):
        parse_pluginrc(pluginrc)


# --- release names and from/within --------------------------------------------------


@pytest.mark.parametrize(
    ("branch", "override", "expected"),
    [
        ("stable/2025.1", None, "2025.1"),
        ("proposed/2025.2", None, "2025.2"),
        ("unmaintained/2024.1", None, "2024.1"),
        ("master", None, "master"),
        ("feature/foo", None, "master"),
        ("stable/", None, "master"),
        ("random", None, "master"),
        ("stable/2025.1", "epoxy", "epoxy"),
        ("master", "2026.1", "2026.1"),
    ],
)
def test_release_name(branch: str, override: str | None, expected: str) -> None:
    assert release_name(branch, override) == expected


@pytest.mark.parametrize(
    ("base", "target", "expected"),
    [
        ("stable/2025.2", "master", ("from", "2025.2")),
        ("stable/2025.1", "stable/2025.2", ("from", "2025.1")),
        # skip-level: base N-2, nothing special
        ("stable/2025.1", "stable/2026.1", ("from", "2025.1")),
        ("unmaintained/2024.1", "stable/2025.1", ("from", "2024.1")),
        # forward: the same branch on both sides
        ("stable/2025.1", "stable/2025.1", ("within", "2025.1")),
        ("master", "master", ("within", "master")),
    ],
)
def test_upgrade_direction(base: str, target: str, expected: tuple[str, str]) -> None:
    assert upgrade_direction(base, target) == expected


def test_upgrade_direction_honours_a_base_release_override() -> None:
    assert upgrade_direction("feature/x", "master", base_release="2025.2") == ("from", "2025.2")

"""grenade.resources and the bash resource store (inc/plugin) read and write the
same $SAVE_DIR/grenade_db.ini: tricky values round-trip byte-exact in every
direction, raw values stay readable by devstack's iniget, writers never lose data."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faults import fault
from fixtures.shell import grenade_env as genv  # noqa: E402  (tests/ is on sys.path)

from grenade.resources import MARKER, ResourceStore, encode_value, is_raw, read_results

PRELUDE = genv.PRELUDE

TRICKY = [
    "plain",
    "two words",
    "  leading blanks",
    "trailing blank ",
    "inner  double",
    "tab\there",
    "quotes \"double\" and 'single'",
    "a=b=c",
    "semi;colon",
    "PWNED_CMD",  # replaced by $(touch ...) per test
    "PWNED_BACKTICK",  # replaced by `touch ...` per test
    "[x]",
    "[section]",
    "# not a comment",
    "back\\slash \\n not a newline",
    "a & b | c > d",
    "unicode: héllo ✓ 日本",
    "",
    "multi\nline\n",
    "end with newlines\n\n",
    "\nstarts with newline",
    "crlf\r\n",
    "*",
    "glob?",
    "+(extglob)",
    "-n",
    "-e foo",
    "-x is fine",
    "$HOME ${PATH} $1",
    MARKER + "Zm9v",
    "key = value",
    " ",
]


@pytest.fixture
def env(tmp_path):
    return genv.make_grenade_dir(tmp_path)


@pytest.fixture
def values(tmp_path):
    """TRICKY with the command-substitution probes pointing into tmp_path."""
    probe = tmp_path / "pwned"
    subst = {"PWNED_CMD": f"$(touch {probe})", "PWNED_BACKTICK": f"`touch {probe}2`"}
    yield [subst.get(v, v) for v in TRICKY]
    assert not probe.exists() and not Path(f"{probe}2").exists(), "a value was evaluated"


def db_path(env):
    return Path(env["SAVE_DIR"]) / "grenade_db.ini"


def bash_save(env, section, key, *value):
    genv.bash(PRELUDE + 'resource_save "$@"', env, section, key, *value, check=True)


def bash_get(env, section, key) -> str:
    proc = genv.bash(PRELUDE + 'resource_get "$1" "$2"', env, section, key, check=True)
    assert proc.stdout.endswith(b"\n")
    return proc.stdout[:-1].decode("utf-8", "surrogateescape")


def bash_save_all(env, items):
    """One bash process saving every (section, key, value) given on argv."""
    script = PRELUDE + 'while (($#)); do resource_save "$1" "$2" "$3"; shift 3; done'
    args = [part for item in items for part in item]
    genv.bash(script, env, *args, check=True)


def bash_get_all(env, keys) -> list[str]:
    """Values of (section, key) pairs, read by one bash process (NUL-separated)."""
    script = PRELUDE + (
        'while (($#)); do v=$(resource_get "$1" "$2"; printf x); '
        'printf "%s\\0" "${v%?x}"; shift 2; done'
    )
    args = [part for item in keys for part in item]
    proc = genv.bash(script, env, *args, check=True)
    return [v.decode("utf-8", "surrogateescape") for v in proc.stdout.split(b"\0")[:-1]]


@fault(
    "base",
    "odd resource values (31 kinds: quotes, newlines, $(...), backticks, UTF-8, ...)",
    0,
    "they round-trip through the resource store unchanged; none is evaluated",
)
def test_bash_to_bash(env, values):
    items = [("tricky", f"k{i}", v) for i, v in enumerate(values)]
    bash_save_all(env, items)
    assert bash_get_all(env, [(s, k) for s, k, _ in items]) == values


def test_bash_to_python(env, values):
    items = [("tricky", f"k{i}", v) for i, v in enumerate(values)]
    bash_save_all(env, items)
    store = ResourceStore(db_path(env))
    assert [store.get(s, k) for s, k, _ in items] == values
    assert store.sections()["tricky"] == {k: v for _, k, v in items}


def test_the_store_is_written_by_bash_alone_and_read_by_python(env, values):
    # one writer (bash's resource_save), the format's rules read back by Python
    items = [("s1", "a", "x"), ("s2", "b", "y y"), ("s1", "c", "z")]
    tricky = [*values, "bad byte \udcff"]  # not UTF-8: the byte survives both sides
    items += [("tricky", f"k{i}", v) for i, v in enumerate(tricky)] + [("s1", "a", "new")]
    bash_save_all(env, items)
    assert db_path(env).read_bytes().startswith(b"[s1]\na = new\nc = z\n\n[s2]\nb = y y\n")
    stored = ResourceStore(db_path(env)).sections()
    assert stored["tricky"] == {f"k{i}": v for i, v in enumerate(tricky)}
    assert bash_get_all(env, [("tricky", f"k{i}") for i in range(len(tricky))]) == tricky
    assert not hasattr(ResourceStore, "set")


def test_raw_values_stay_readable_by_devstack_iniget(env, values):
    """devstack's iniget: sed the line out, then echo it unquoted."""
    items = [("net", f"k{i}", v) for i, v in enumerate(values)]
    bash_save_all(env, items)
    iniget = 'line=$(sed -ne "/^\\[$2\\]/,/^\\[.*\\]/ { /^$3[ \\t]*=/ p; }" "$1"); echo ${line#*=}'
    raw = [(k, v) for _, k, v in items if is_raw(v)]
    assert len(raw) >= 12
    for key, value in raw:
        proc = genv.bash(
            iniget, env, str(db_path(env)), "net", key, check=True, cwd=Path(env["HOME"])
        )
        assert proc.stdout.decode() == value + "\n", key
    text = db_path(env).read_text()
    assert "k1 = two words\n" in text and "k7 = a=b=c\n" in text
    assert "[x]" not in text  # glob characters are encoded


def test_encoded_form_and_rules():
    assert encode_value("two words") == "two words"
    assert encode_value("a\nb") == MARKER + "YQpi"
    assert not is_raw("-n") and is_raw("-nx") and not is_raw("-neE foo") and is_raw("x -n")
    assert not is_raw(MARKER) and is_raw("") and not is_raw(" ")


def test_missing_values(env):
    assert bash_get(env, "nothing", "here") == ""
    store = ResourceStore(db_path(env))
    assert store.get("nothing", "here") is None
    bash_save(env, "sec", "empty", "")
    assert store.get("sec", "empty") == ""
    assert store.get("sec", "missing") is None


def test_several_words_are_joined_with_one_space(env):
    bash_save(env, "sec", "words", "a", "b  c", "d")
    assert bash_get(env, "sec", "words") == "a b  c d"


def test_values_are_replaced_in_place(env):
    for value in ("one", "two", "three\nlines"):
        bash_save(env, "sec", "k", value)
    bash_save(env, "sec", "k", "four")
    assert db_path(env).read_text() == "[sec]\nk = four\n"


def test_clear_from_either_side(env):
    bash_save(env, "sec", "k", "v")
    ResourceStore(db_path(env)).clear()
    assert bash_get(env, "sec", "k") == ""
    bash_save(env, "sec", "k", "v")
    genv.bash(PRELUDE + "init_grenade_db", env, check=True)
    assert ResourceStore(db_path(env)).sections() == {}


def test_bad_names_are_refused(env):
    for section, key in (("sec", "k=1"), ("se]c", "k"), ("sec", " k"), ("sec", "")):
        proc = genv.bash(PRELUDE + 'resource_save "$1" "$2" v', env, section, key)
        assert proc.returncode != 0 and b"resource store: bad" in proc.stderr


def test_concurrent_writers_lose_nothing(env):
    """20 bash writers, and 5 threads each starting bash writers, all on the same file."""
    script = PRELUDE + (
        'for j in 1 2 3; do resource_save "shared" "w$1-$j" "value $1 $j"; '
        'resource_save "own$1" key "x  $1"; done'
    )
    procs = [
        subprocess.Popen(["bash", "-c", script, "bash", str(i)], env=env, stderr=subprocess.PIPE)
        for i in range(20)
    ]

    def python_writer(n):
        for j in range(10):
            bash_save(env, "python", f"p{n}-{j}", f"py\n{n} {j}")

    with ThreadPoolExecutor(5) as pool:
        list(pool.map(python_writer, range(5)))
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    sections = ResourceStore(db_path(env)).sections()
    assert sections["shared"] == {
        f"w{i}-{j}": f"value {i} {j}" for i in range(20) for j in (1, 2, 3)
    }
    for i in range(20):
        assert sections[f"own{i}"] == {"key": f"x  {i}"}
    assert sections["python"] == {f"p{n}-{j}": f"py\n{n} {j}" for n in range(5) for j in range(10)}


def test_resource_results_json(env):
    detail = 'quote " backslash \\ tab\t newline\n ctrl \x01 unicode ✓'
    script = PRELUDE + 'resource_result "$@"'
    env.update(GRENADE_PHASE="verify-post", GRENADE_SIDE="post-upgrade", GRENADE_HOST="ctl")
    genv.bash(script, env, "nova", "vm1", "pass", check=True)
    genv.bash(script, env, "nova", "vm2", "fail", "it", "broke:", detail, check=True)
    bad = genv.bash(script, env, "nova", "vm3", "maybe")
    assert bad.returncode != 0
    results = read_results(env["SAVE_DIR"])
    # each process reporting is one attempt of its step, on GRENADE_HOST
    runs = [r.pop("run") for r in results]
    assert all(runs) and runs[0] != runs[1]
    assert [r.pop("host") for r in results] == ["ctl", "ctl"]
    assert results == [
        {
            "project": "nova",
            "resource": "vm1",
            "result": "pass",
            "detail": "",
            "phase": "verify-post",
            "side": "post-upgrade",
        },
        {
            "project": "nova",
            "resource": "vm2",
            "result": "fail",
            "detail": "it broke: " + detail,
            "phase": "verify-post",
            "side": "post-upgrade",
        },
    ]
    assert read_results(Path(env["HOME"]) / "nowhere") == []


def test_resource_check_reports_each_and_fails_naming_all(env):
    script = (
        PRELUDE
        + """
resource_check nova vm1 "vm1 answers" true
resource_check nova vm2 "vm2 answers" bash -c 'echo "no route"; exit 3'
resource_check nova vm3 "vm3 name" expect_equal "a b" "a  b"
resource_check cinder vol1 "vol1 attached" true
resource_checks_done cinder
echo "cinder fine"
resource_checks_done nova
echo "not reached"
"""
    )
    env.update(GRENADE_PHASE="verify-pre", GRENADE_SIDE="pre-upgrade")
    proc = genv.bash(script, env)
    assert proc.returncode != 0
    output = proc.stdout.decode() + proc.stderr.decode()
    assert "cinder fine" in output and "not reached" not in output
    assert "nova resources failed their checks: vm2 vm3" in output
    results = {
        (r["project"], r["resource"]): (r["result"], r["detail"])
        for r in read_results(env["SAVE_DIR"])
    }
    assert results[("nova", "vm1")] == ("pass", "vm1 answers")
    assert results[("nova", "vm2")] == ("fail", "vm2 answers: no route")
    assert results[("nova", "vm3")] == ("fail", "vm3 name: got 'a b', expected 'a  b'")
    assert results[("cinder", "vol1")][0] == "pass"

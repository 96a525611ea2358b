"""The bash library plugins source ($GRENADE_DIR/grenaderc, functions, inc/*) and
the lite devstack function set, exercised with real bash and small real plugins
(tests/fixtures/shell/plugins) in a GRENADE_DIR assembled like the orchestrator's."""

from __future__ import annotations

import glob
import http.server
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from fixtures.shell import grenade_env as genv  # noqa: E402  (tests/ is on sys.path)

from grenade.resources import read_results

PLUGINS = genv.PLUGINS
PRELUDE = genv.PRELUDE


@pytest.fixture
def env(tmp_path):
    return genv.make_grenade_dir(tmp_path)


def run(script, env, *args, check=True, **kw):
    return genv.bash(script, env, *args, check=check, **kw)


def out(proc):
    return proc.stdout.decode()


def err(proc):
    return proc.stderr.decode()


def dump_settings(env, *plugins, **extra):
    """Run inc/dump-settings on the plugins' settings; (proc, records as list)."""
    outfile = Path(env["HOME"]) / "settings.out"
    outfile.unlink(missing_ok=True)
    tmpdir = Path(env["HOME"]) / "tmp"
    tmpdir.mkdir(exist_ok=True)
    run_env = dict(
        env, TOP_DIR=str(Path(env["GRENADE_DIR"]).parent / "new/devstack"), TMPDIR=str(tmpdir)
    )
    run_env.update(extra)
    files = [str(PLUGINS / name / "settings") for name in plugins]
    proc = subprocess.run(
        ["bash", f"{env['GRENADE_DIR']}/inc/dump-settings", str(outfile), *files],
        env=run_env,
        capture_output=True,
        timeout=30,
    )
    if not outfile.exists():
        return proc, None
    fields = outfile.read_bytes().split(b"\0")
    assert fields[-1] == b""
    fields = [f.decode() for f in fields[:-1]]
    return proc, list(zip(fields[0::2], fields[1::2], strict=True))


# --- grenaderc -----------------------------------------------------------------


def test_grenaderc_defaults_and_overrides(tmp_path):
    env = genv.make_grenade_dir(tmp_path, localrc="SERVICE_TIMEOUT=7\nLOGDAYS=3\n")
    env.update(UPGRADE_PROJECTS=" keep me", DATA_DIR="/elsewhere")
    proc = run(
        'set -o errexit -o nounset; source "$GRENADE_DIR/grenaderc"; '
        'source "$GRENADE_DIR/grenaderc"; '
        'echo "$SERVICE_TIMEOUT|$LOGDAYS|$DATA_DIR|$UPGRADE_PROJECTS|$GRENADE_DB|${PLUGIN_DIR[0]}|'
        '$TARGET_RUN_SMOKE|$GRENADE_DIR"; declare -p PLUGIN_DIR',
        env,
    )
    first, declared = out(proc).splitlines()
    stack = Path(env["GRENADE_DIR"]).parent
    assert first.split("|") == [
        "7",
        "3",
        "/elsewhere",
        " keep me",
        f"{stack}/save/grenade_db.ini",
        f"{stack}/plugins",
        "True",
        env["GRENADE_DIR"],
    ]
    assert declared.startswith("declare -A PLUGIN_DIR=")


def test_functions_fall_back_to_lite_devstack_and_errexit_nounset_safe(env):
    proc = run(
        "set -o errexit -o nounset; "
        + PRELUDE
        + PRELUDE
        + "type -t die iniset is_service_enabled run_process resource_save upgrade_project "
        '| sort -u; echo "$FSSH"',
        env,
    )
    assert out(proc).splitlines() == [
        "function",
        "ssh -o ConnectTimeout=10 -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
    ]


def test_pluginrc_rebuilds_gitdir_in_every_child(tmp_path):
    env = genv.make_grenade_dir(
        tmp_path,
        pluginrc="enable_grenade_plugin heat https://x/heat\n"
        "enable_grenade_plugin octavia https://x/octavia stable/2025.2\n",
    )
    proc = run(
        PRELUDE + PRELUDE + 'echo "$GRENADE_PLUGINS|${GITDIR[heat]}|${GITBRANCH[heat]}|'
        '${GITBRANCH[octavia]}|${GITREPO[octavia]}"',
        env,
    )
    stack = Path(env["GRENADE_DIR"]).parent
    assert out(proc).strip() == (
        f",heat,octavia|{stack}/plugins/heat|stable/2026.1|stable/2025.2|https://x/octavia"
    )


# --- dump-settings -----------------------------------------------------------


def test_dump_settings_records(env):
    proc, records = dump_settings(
        env, "alpha", "beta-gamma", "quiet", ENABLED_SERVICES="key,b-api", PRE_EXPORTED="same"
    )
    assert proc.returncode == 0, err(proc)
    rec = dict(records)
    keys = [key for key, _ in records]
    assert keys[:6] == [
        "UPGRADE_PROJECTS",
        "PLUGIN_DIR:alpha",
        "PLUGIN_DIR:beta-gamma",
        "DATABASES_TO_SAVE",
        "BASE_RUN_SMOKE",
        "TARGET_RUN_SMOKE",
    ]
    assert rec["UPGRADE_PROJECTS"] == "alpha beta-gamma"
    assert rec["PLUGIN_DIR:alpha"] == str(PLUGINS / "alpha")
    assert rec["PLUGIN_DIR:beta-gamma"] == str(PLUGINS / "beta-gamma")
    assert rec["DATABASES_TO_SAVE"] == "alpha alpha_api"
    assert (rec["BASE_RUN_SMOKE"], rec["TARGET_RUN_SMOKE"], rec["VERIFY_RESOURCES"]) == (
        "False",
        "True",
        "True",
    )
    alpha, beta = PLUGINS / "alpha/settings", PLUGINS / "beta-gamma/settings"
    assert [v for k, v in records if k.startswith("LOCALRC:")] == [
        f"base\t{alpha}\tenable_service a-api",
        f"target\t{alpha}\tALPHA_OPTS='x y'",
        f"base\t{beta}\tline1\nline2\twith tab \\ backslash",
    ]
    assert [k for k in keys if k.startswith("LOCALRC:")] == ["LOCALRC:0", "LOCALRC:1", "LOCALRC:2"]
    exports = {k[7:]: v for k, v in records if k.startswith("EXPORT:")}
    assert exports["ALPHA_EXPORTED"] == "two words"
    assert "ALPHA_NOT_EXPORTED" not in exports
    assert not {"SHLVL", "_", "PWD", "OLDPWD", "PRE_EXPORTED", "GRENADE_DIR"} & set(exports)
    assert not [name for name in exports if name.startswith("BASH_")]


def test_dump_settings_conditional_registration_as_last_line(env):
    proc, records = dump_settings(env, "beta-gamma", ENABLED_SERVICES="key")
    assert proc.returncode == 0, err(proc)
    assert dict(records)["UPGRADE_PROJECTS"] == ""
    assert not [k for k, _ in records if k.startswith(("PLUGIN_DIR:", "LOCALRC:"))]


@pytest.mark.parametrize(
    ("plugin", "line", "code"),
    [
        ("broken", 3, 1),  # a failing command
        ("funcfail", 2, 2),  # failing inside a function the settings file defines
        ("dying", 2, 1),  # devstack's die
        ("exiting", 3, 1),  # exit 0 while loading settings is still an error
    ],
)
def test_dump_settings_failure_names_file_and_line(env, plugin, line, code):
    proc, records = dump_settings(env, "alpha", plugin, ENABLED_SERVICES="key")
    assert proc.returncode == code
    assert records is None
    settings = PLUGINS / plugin / "settings"
    assert f"settings error: {settings}:{line}: exit {code}" in err(proc)
    if plugin == "dying":
        assert f"[ERROR] {settings}:2 dying on purpose" in err(proc)
    assert not list(Path(env["HOME"], "tmp").iterdir())  # the record file is gone


def test_devstack_localrc_external_devstack_still_records(tmp_path):
    # The user's localrc lines come after the orchestrator's and win.
    env = genv.make_grenade_dir(tmp_path, localrc="GRENADE_USE_EXTERNAL_DEVSTACK=True\n")
    proc, records = dump_settings(env, "alpha", ENABLED_SERVICES="key")
    assert proc.returncode == 0, err(proc)
    assert (
        "DevStack is configured externally, ignoring devstack_localrc base "
        "enable_service a-api" in out(proc)
    )
    assert len([k for k, _ in records if k.startswith("LOCALRC:")]) == 2


# --- upgrade_project -----------------------------------------------------------

UPGRADE_PROJECT = PRELUDE + (
    'upgrade_project "$@"; echo "$project|$direction|$upgrade_dir|$upgrade_file"'
)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["stable/2025.2", "stable/2026.1"], ("from", "2025.2")),
        (["stable/2025.2", "stable/2025.2"], ("within", "2025.2")),
        (["stable/2025.2"], ("from", "2025.2")),  # 3 args (keystone, placement)
        (["unmaintained/2024.1", "stable/2025.1"], ("from", "2024.1")),
    ],
)
def test_upgrade_project_direction_and_release(env, args, expect):
    proc = run(UPGRADE_PROJECT, env, "alpha", str(PLUGINS / "alpha"), *args)
    lines = out(proc).splitlines()
    direction, release = expect
    assert lines[-2] == f"CONFIGURED alpha {direction}-{release}"
    assert lines[-1] == (
        f"alpha|{direction}|{release}|{PLUGINS}/alpha/{direction}-{release}/upgrade-alpha"
    )


def test_upgrade_project_missing_file_is_a_warning(env):
    proc = run(
        "set -o errexit; " + UPGRADE_PROJECT,
        env,
        "alpha",
        str(PLUGINS / "alpha"),
        "stable/2023.1",
        "master",
    )
    lines = out(proc).splitlines()
    assert lines[0].startswith("Warning: No new configurations were found for OpenStack alpha")
    assert lines[1] == "If your patch fails during the upgrade this may be the cause."
    assert lines[2].startswith("alpha|from|2023.1|")


def test_upgrade_project_hyphenated_name(env):
    proc = run(
        UPGRADE_PROJECT,
        env,
        "beta-gamma",
        str(PLUGINS / "beta-gamma"),
        "stable/2025.2",
        "stable/2026.1",
    )
    assert "CONFIGURED beta-gamma from-2025.2" in out(proc)


def test_release_names_ours_and_devstacks(env):
    proc = run(
        PRELUDE + "for b in stable/x proposed/y unmaintained/2024.1 master feature/z; do "
        'echo "$(grenade_release_name $b) $(get_release_name_from_branch $b)"; done',
        env,
    )
    assert out(proc).splitlines() == [
        "x x",
        "y y",
        "2024.1 master",
        "master master",
        "master master",
    ]


# --- what the library offers hooks -------------------------------------------------

# plugin-surface.md 3.1 (called by real plugins) and what they need to work.
PLUGIN_SURFACE = (
    "register_project_for_upgrade",
    "upgrade_project",
    "ensure_services_started",
    "register_db_to_save",
    "ensure_services_stopped",
    "devstack_localrc",
    "resource_save",
    "resource_get",
    "source_quiet",
    "ping_check_public",
    "worlddump",
    "enable_grenade_plugin",
    "is_service_running",
    "save_mysql_dbs",
    "save_data",
    "init_grenade_db",
    "reverse_list",
    "ensure_logs_exist",
)
# The original's phase drivers: the runner owns phase order, environment and names.
PHASE_DRIVERS = (
    "load_settings",
    "shutdown_services",
    "resources",
    "fetch_grenade_plugins",
    "upgrade_service",
)


def test_library_defines_the_plugin_surface_and_no_phase_drivers(env):
    proc = run(
        PRELUDE + 'for f in "$@"; do echo "$f $(type -t "$f" || echo missing)"; done',
        env,
        *PLUGIN_SURFACE,
        *PHASE_DRIVERS,
    )
    kinds = dict(line.split() for line in out(proc).splitlines())
    assert {f: kinds[f] for f in PLUGIN_SURFACE} == dict.fromkeys(PLUGIN_SURFACE, "function")
    assert {f: kinds[f] for f in PHASE_DRIVERS} == dict.fromkeys(PHASE_DRIVERS, "missing")


def test_reverse_list(env):
    assert out(run(PRELUDE + "reverse_list a b c", env)).strip() == "c b a"


DISPATCH = PRELUDE + (
    'function create { echo "create($#)"; }\n'
    'function verify { echo "verify side=$1"; }\n'
    'function evil { echo "evil ran"; }\n'
    'resource_dispatch "$@"; echo "rc=$?"'
)


@pytest.mark.parametrize(
    ("args", "stdout", "note"),
    [
        (["create"], ["create(0)", "rc=0"], False),
        (["verify", "pre-upgrade"], ["verify side=pre-upgrade", "rc=0"], False),
        (["early_create"], ["rc=0"], False),  # not implemented: nothing to do
        (["verify_noapi", "pre-upgrade"], ["rc=0"], False),
        (["evil"], ["rc=0"], True),  # a function, but not a phase: never called
        (["create; evil"], ["rc=0"], True),
        ([], ["rc=0"], True),
    ],
)
def test_resource_dispatch_calls_only_phase_functions(env, args, stdout, note):
    proc = run("set -o errexit; " + DISPATCH, env, *args)
    assert out(proc).splitlines() == stdout
    assert ("is not a resource phase; nothing to do" in err(proc)) == note


def test_resource_dispatch_keeps_errexit_in_the_phase(env):
    script = PRELUDE + (
        'set -o errexit\nfunction destroy { false; echo "not reached"; }\nresource_dispatch "$@"'
    )
    proc = run(script, env, "destroy", check=False)
    assert proc.returncode == 1 and "not reached" not in out(proc)


def test_resource_check_api_down(env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = f"http://127.0.0.1:{sock.getsockname()[1]}/identity"
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            down = f"http://127.0.0.1:{free.getsockname()[1]}/identity"
        env.update(GRENADE_PHASE="verify-noapi", GRENADE_SIDE="pre-upgrade")
        proc = run(
            PRELUDE + 'resource_check_api_down demo api_down "$1"; '
            'resource_check_api_down demo api_up "$2"; resource_checks_done demo',
            env,
            down,
            busy,
            check=False,
        )
    assert proc.returncode == 1
    assert "demo resources failed their checks: api_up" in err(proc)
    results = {r["resource"]: (r["result"], r["detail"]) for r in read_results(env["SAVE_DIR"])}
    assert results["api_down"] == ("pass", f"nothing accepts connections at {down}")
    assert results["api_up"][0] == "fail"
    assert results["api_up"][1].startswith(f"nothing accepts connections at {busy}: ")
    assert "a server accepted the connection" in results["api_up"][1]


def test_json_get_and_dbquery_conf(env, tmp_path):
    import sqlite3

    db = tmp_path / "svc.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE project (id TEXT, name TEXT)")
        conn.execute("INSERT INTO project VALUES ('p1', 'two words')")
    conf = tmp_path / "svc.conf"
    conf.write_text(f"[database]\nconnection = sqlite:///{db}\n")
    proc = run(
        PRELUDE + 'dbquery_conf "$1" database "SELECT id, name FROM project" | json_get 0.name; '
        'dbquery_conf "$1" placement_database "SELECT 1" || echo "rc=$?"',
        env,
        str(conf),
    )
    assert out(proc).splitlines() == ["two words", "rc=1"]
    assert f"no connection in [placement_database] of {conf}" in err(proc)


class FakeKeystone(http.server.BaseHTTPRequestHandler):
    """Enough of keystone v3 for the login and get-or-create helpers."""

    users = {"admin": "secret", "demo": "demo-pass"}

    def log_message(self, *args):
        pass

    def _reply(self, status, body=None, headers=()):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append(("POST", self.path, body))
        if self.path.endswith("/v3/auth/tokens"):
            user = body["auth"]["identity"]["password"]["user"]
            if self.users.get(user["name"]) != user["password"]:
                return self._reply(401, {"error": "unauthorized"})
            return self._reply(201, {"token": {}}, [("X-Subject-Token", "tok-" + user["name"])])
        kind = self.path.rsplit("/", 1)[1].rstrip("s")
        name = body[kind]["name"]
        self.server.objects[kind][name] = f"{kind}-{name}"
        return self._reply(201, {kind: {"id": f"{kind}-{name}", "name": name}})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        self.server.calls.append(("GET", self.path, self.headers["X-Auth-Token"]))
        kind = url.path.rsplit("/", 1)[1].rstrip("s")
        name = urllib.parse.parse_qs(url.query)["name"][0]
        found = self.server.objects[kind].get(name)
        self._reply(200, {kind + "s": [{"id": found, "name": name}] if found else []})


@pytest.fixture
def keystone(env):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKeystone)
    server.calls = []
    server.objects = {"project": {"there": "project-there"}, "user": {}, "role": {"member": "r1"}}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env.update(
        OS_AUTH_URL=f"http://127.0.0.1:{server.server_address[1]}/identity/v3",
        OS_USERNAME="admin",
        OS_PASSWORD="secret",
        OS_PROJECT_NAME="admin",
    )
    yield server
    server.shutdown()
    server.server_close()


def test_os_login_exports_a_new_token_or_dies_naming_the_user(env, keystone):
    proc = run(
        PRELUDE + "set -o errexit; os_login; bash -c 'echo \"child $OS_TOKEN\"'; "
        'os_login demo demo-pass demo_project; echo "$OS_TOKEN"; '
        "os_user_token demo demo-pass demo_project; os_login demo wrong demo_project",
        env,
        check=False,
    )
    assert out(proc).splitlines() == ["child tok-admin", "tok-demo", "tok-demo"]
    assert proc.returncode != 0
    assert "demo cannot log in to project demo_project" in err(proc)
    auth = [body["auth"] for verb, path, body in keystone.calls if path.endswith("/auth/tokens")]
    assert [a["identity"]["password"]["user"]["name"] for a in auth] == ["admin", *["demo"] * 3]
    assert auth[1]["scope"] == {"project": {"name": "demo_project", "domain": {"id": "default"}}}
    assert auth[1]["identity"]["password"]["user"]["domain"] == {"id": "default"}


def test_keystone_get_or_create(env, keystone):
    body = '{"project": {"name": "new", "domain_id": "default"}}'
    proc = run(
        PRELUDE + "set -o errexit; os_login; "
        "keystone_get_or_create project there; "
        'keystone_get_or_create project new "$1"; '
        'keystone_get_or_create project new "$1"; '
        'echo "[$(keystone_get_or_create user nobody)]"; '
        "keystone_get_or_create role member",
        env,
        body,
    )
    assert out(proc).splitlines() == [
        "project-there",
        "project-new",
        "project-new",
        "[]",
        "r1",
    ]
    posts = [(path, data) for verb, path, data in keystone.calls if verb == "POST"]
    assert posts[1:] == [("/identity/v3/projects", json.loads(body))]  # created once, then found
    gets = [path for verb, path, _ in keystone.calls if verb == "GET"]
    assert gets[0] == "/identity/v3/projects?name=there&domain_id=default"
    assert gets[-1] == "/identity/v3/roles?name=member"  # roles are global
    assert {token for verb, _, token in keystone.calls if verb == "GET"} == {"tok-admin"}


def test_upgrade_begin_end_and_save_config_dir(env, tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "svc.conf").write_text("base\n")
    script = tmp_path / "upgrade.sh"
    script.write_text(
        PRELUDE + "upgrade_begin\nset -o errexit -o xtrace\n"
        'save_config_dir svc "$1"\necho target > "$1/svc.conf"\nsave_config_dir svc "$1"\n'
        "upgrade_end\n"
    )
    proc = subprocess.run(
        ["bash", str(script), str(conf)], env=env, capture_output=True, timeout=30
    )
    assert proc.returncode == 0, err(proc)
    lines = out(proc).splitlines()
    assert lines[1] == f"Begin {script}" and lines[-2] == f"SUCCESS: End {script}"
    assert (Path(env["SAVE_DIR"]) / "etc.svc/svc.conf").read_text() == "base\n"
    assert "_grenade_banner" not in err(proc)  # the end banner is not traced


def test_upgrade_begin_turns_a_signal_into_abort_and_sigint(env, tmp_path):
    script = tmp_path / "upgrade.sh"
    script.write_text(PRELUDE + 'upgrade_begin\nkill -TERM $$\necho "not reached"\n')
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, timeout=30)
    assert f"ERROR: Abort {script}" in out(proc)
    assert "not reached" not in out(proc)
    assert proc.returncode == -signal.SIGINT


# --- services -------------------------------------------------------------------


def test_run_process_and_stop_process_kill_the_group(env):
    env["ENABLED_SERVICES"] = "key,grt-svc"
    script = PRELUDE + (
        'run_process grt-svc "echo hello-from-svc; sleep 3171 & sleep 3172"; '
        "ensure_services_started grt-svc; is_service_running grt-svc && echo RUNNING; "
        'read -r pid < "$DEST/status/stack/grt-svc.pid"; echo "PID=$pid"'
    )
    proc = run(script, env)
    pid = int(out(proc).split("PID=")[1].split()[0])
    assert "RUNNING" in out(proc)
    assert os.getpgid(pid) == pid  # its own process group
    members = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True)
    assert len(members.stdout.split()) >= 2
    started = time.monotonic()
    proc = run(PRELUDE + "stop_process grt-svc; ensure_services_stopped grt-svc; echo STOPPED", env)
    assert "STOPPED" in out(proc)
    assert time.monotonic() - started < 5
    assert not Path(env["DEST"], "status/stack/grt-svc.pid").exists()
    left = subprocess.run(["pgrep", "-f", "sleep 317[12]"], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    assert "hello-from-svc" in Path(env["LOGDIR"], "grt-svc.log").read_text()


def test_run_process_skips_disabled_services(env):
    env["ENABLED_SERVICES"] = "key"
    run(PRELUDE + 'run_process grt-off "sleep 3173"', env)
    assert not Path(env["DEST"], "status/stack/grt-off.pid").exists()


def test_stop_process_kills_what_ignores_sigterm(env):
    env.update(ENABLED_SERVICES="grt-stubborn", SERVICE_STOP_TIMEOUT="1")
    run(PRELUDE + """run_process grt-stubborn "trap '' TERM; sleep 3174" """, env)
    time.sleep(0.2)
    proc = run(PRELUDE + "stop_process grt-stubborn; ensure_services_stopped grt-stubborn", env)
    assert "did not stop on SIGTERM" in err(proc)
    left = subprocess.run(["pgrep", "-f", "sleep 3174"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_is_service_running_ps_fallback_and_ensure_started(env):
    proc = subprocess.Popen(["bash", "-c", "exec -a grt-psname-svc sleep 30"])
    try:
        result = run(PRELUDE + "ensure_services_started grt-psname-svc; echo OK", env)
        assert "OK" in out(result)
        failed = run(
            PRELUDE + "SERVICE_TIMEOUT=1; ensure_services_stopped grt-psname-svc", env, check=False
        )
        assert failed.returncode != 0
        assert "The following services are still running: grt-psname-svc" in err(failed)
    finally:
        proc.kill()
        proc.wait()
    run(PRELUDE + "ensure_services_stopped grt-psname-svc", env)


def test_ensure_services_started_times_out_naming_services(env):
    started = time.monotonic()
    proc = run(
        PRELUDE + "SERVICE_TIMEOUT=1; ensure_services_started grt-none-a grt-none-b",
        env,
        check=False,
    )
    assert 0.9 < time.monotonic() - started < 4
    assert proc.returncode == 1
    assert "did not appear to start: grt-none-a grt-none-b" in err(proc)


def test_zombie_pidfile_is_not_running(env):
    code = (
        "import os, sys, time\npid = os.fork()\nif pid == 0:\n    os._exit(0)\n"
        "print(pid, flush=True)\ntime.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        zombie = parent.stdout.readline().strip()
        time.sleep(0.1)
        status = Path(env["DEST"], "status/stack")
        status.mkdir(parents=True)
        (status / "grt-zombie.pid").write_text(zombie + "\n")
        proc = run(PRELUDE + "is_service_running grt-zombie && echo RUNNING || echo GONE", env)
        assert out(proc).strip() == "GONE"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()


# --- failures -----------------------------------------------------------------------


def test_exit_trap_reports_code_and_stack(env, tmp_path):
    script = tmp_path / "hook.sh"
    script.write_text(PRELUDE + "set -o errexit\nfunction inner { return 3; }\ninner\n")
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 3
    assert "Exit code: 3" in err(proc)
    assert list(Path(env["LOGDIR"]).glob("worlddump-*.txt"))
    ok = subprocess.run(["bash", "-c", PRELUDE + "true"], env=env, capture_output=True)
    assert ok.returncode == 0 and b"Exit code" not in ok.stderr


def test_die_message_format_and_error_log(env, tmp_path):
    script = tmp_path / "dies.sh"
    script.write_text(PRELUDE + '\n(exit 7) || die $LINENO "it broke"\n')
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 7
    assert f"[ERROR] {script}:2 it broke" in err(proc)
    assert f"[ERROR] {script}:2 it broke" in Path(env["LOGDIR"], "error.log").read_text()


# --- lite devstack functions ----------------------------------------------------------


def test_is_service_enabled_groups(env):
    checks = {
        "n-api": ["nova"],
        "g-api": ["glance"],
        "s-proxy": ["swift"],
        "q-svc": ["neutron"],
        "neutron-api": ["neutron"],
        "c-vol": ["cinder"],
        "placement-api": ["placement"],
        "key": ["keystone"],
        "swift": ["s-object"],
    }
    for enabled, names in checks.items():
        for name in names:
            proc = run(
                PRELUDE + f'ENABLED_SERVICES="mysql,{enabled}"; is_service_enabled {name}',
                env,
                check=False,
            )
            assert proc.returncode == 0, (enabled, name)
    proc = run(
        PRELUDE + 'ENABLED_SERVICES="key,n-api"; is_service_enabled cinder glance', env, check=False
    )
    assert proc.returncode == 1


def test_enable_disable_service_and_trueorfalse(env):
    proc = run(
        PRELUDE + 'ENABLED_SERVICES="key,g-api,-g-api"; enable_service n-api n-cpu; '
        'disable_negated_services; disable_service n-cpu; echo "$ENABLED_SERVICES"; '
        "X=yes; Y=off; trueorfalse False X; trueorfalse False Y; trueorfalse True Z",
        env,
    )
    assert out(proc).splitlines() == ["key,n-api", "True", "False", "True"]


def test_ini_functions_roundtrip_special_values(env, tmp_path):
    conf = tmp_path / "x.conf"
    tricky = 'a|b&c\\d "q" $(touch nope) /x/'
    proc = run(
        PRELUDE + 'iniset -sudo "$1" DEFAULT opt "$2"; iniset "$1" db url x; '
        'iniset_multiline "$1" m k 1 2; iniadd "$1" m k 3; inidelete "$1" db url; '
        'iniget "$1" DEFAULT opt; iniget_multiline "$1" m k; '
        'ini_has_option "$1" db url || echo no-url',
        env,
        str(conf),
        tricky,
        cwd=tmp_path,
    )
    assert out(proc).splitlines() == [tricky, "1", "2", "3", "no-url"]
    assert not (tmp_path / "nope").exists()


def test_meta_config_localrc_and_post_config(env, tmp_path):
    (tmp_path / "local.conf").write_text(
        "[[local|localrc]]\nADMIN_PASSWORD=secret\nenable_service g-api\n"
        "[[post-config|$MY_CONF]]\n[DEFAULT]\ndebug = True\nlog = a\nlog = b\n"
    )
    env["MY_CONF"] = str(tmp_path / "my.conf")
    run(
        PRELUDE + 'extract_localrc_section "$1" localrc local.conf .localrc.auto; '
        'merge_config_group "$1/local.conf" post-config',
        env,
        str(tmp_path),
    )
    assert (tmp_path / ".localrc.auto").read_text().splitlines()[1:] == [
        "ADMIN_PASSWORD=secret",
        "enable_service g-api",
    ]
    # devstack's iniset puts a new option right after its section header
    assert (tmp_path / "my.conf").read_text() == "[DEFAULT]\nlog = a\nlog = b\ndebug = True\n"


def test_git_clone_skips_existing_and_by_name(env, tmp_path):
    repo = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
        check=True,
    )
    dest = tmp_path / "dest"
    script = PRELUDE + (
        'GITREPO[demo]="$1"; GITDIR[demo]="$2"; GITBRANCH[demo]=main; '
        'git_clone_by_name demo; touch "$2/marker"; git_clone "$1" "$2" main'
    )
    run(script, env, str(repo), str(dest))
    assert (dest / ".git").is_dir() and (dest / "marker").exists()


def test_sourcing_functions_is_fast(env):
    started = time.monotonic()
    run(
        PRELUDE * 1 + "for i in 1 2 3 4 5 6 7 8 9 10; do bash -c "
        '\'source "$GRENADE_DIR/grenaderc"; source "$GRENADE_DIR/functions"\'; done',
        env,
    )
    assert (time.monotonic() - started) / 11 < 0.1


def test_functions_use_the_target_tree_when_it_exists(env):
    target = Path(env["GRENADE_DIR"]).parent / "new/devstack"
    for name in ("functions", "functions-common"):
        (target / name).write_text((genv.LITE_DIR / name).read_text())
    (target / "inc").mkdir()
    for name in ("ini-config", "meta-config"):
        (target / "inc" / name).write_text((genv.LITE_DIR / "inc" / name).read_text())
    (target / "lib").mkdir()
    (target / "lib/stack").write_text("function stack_install_service { echo from-lib-stack; }\n")
    proc = run(PRELUDE + 'stack_install_service x; echo "$_DEVSTACK_FUNCTIONS_DIR"', env)
    assert out(proc).splitlines() == ["from-lib-stack", str(target)]


def test_die_without_line_number_uses_the_callers_line(env, tmp_path):
    script = tmp_path / "dies.sh"
    script.write_text(PRELUDE + '\n\ndie $UNSET_LINE_VARIABLE "no line given"\n')
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert f"[ERROR] {script}:3 no line given" in err(proc)


# --- save-state and prep-target ------------------------------------------------


def test_save_state_copies_sqlite_databases_and_skips_missing(env, tmp_path):
    stack = Path(env["GRENADE_DIR"]).parent
    dbdir = tmp_path / "sqlite"
    dbdir.mkdir()
    with sqlite3.connect(dbdir / "keystone.db") as db:
        db.execute("CREATE TABLE project (id TEXT PRIMARY KEY)")
        db.execute("INSERT INTO project VALUES ('p1')")
    db.close()
    (stack / "old/devstack/stackrc").write_text(
        f"DATABASE_TYPE=sqlite\nDATABASE_SQLITE_DIR={dbdir}\nENABLED_SERVICES=key\n"
    )
    env["DATABASES_TO_SAVE"] = " keystone glance"
    proc = subprocess.run(
        ["bash", f"{env['GRENADE_DIR']}/save-state"], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, err(proc)
    # the online backup API's copy (dbsnap.py), and its record beside the dump
    with sqlite3.connect(stack / "save/keystone.sql.old") as copy:
        assert copy.execute("SELECT id FROM project").fetchall() == [("p1",)]
    copy.close()
    record = json.loads((stack / "save/dumps/old/keystone.dump.json").read_text())
    assert record["backend"] == "sqlite" and record["describe"]["tables"]["project"]["rows"] == 1
    assert not (stack / "save/glance.sql.old").exists()
    assert "Not saving database glance" in out(proc)


def test_prep_target_runs_on_bare_trees(env):
    stack = Path(env["GRENADE_DIR"]).parent
    (stack / "old/images").mkdir(parents=True)
    (stack / "old/images/cirros.img").write_text("img")
    proc = subprocess.run(
        ["bash", f"{env['GRENADE_DIR']}/prep-target"], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, err(proc)
    assert (stack / "new/devstack/files/cirros.img").read_text() == "img"


def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.mark.skipif(_pg_bin() is None or os.geteuid() != 0, reason="needs postgresql, root")
def test_save_data_dumps_existing_postgresql_databases(env):
    bindir, user = _pg_bin(), pwd.getpwnam("postgres")
    data = Path(tempfile.mkdtemp(prefix="grenade-pg-"))
    os.chown(data, user.pw_uid, user.pw_gid)

    def as_postgres(*cmd):
        subprocess.run(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *cmd],
            check=True,
            capture_output=True,
            timeout=60,
        )

    with socket.socket() as sock:  # a free port: other runs may hold 5432
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    as_postgres(f"{bindir}/initdb", "-A", "trust", "-U", "postgres", "-D", f"{data}/db")
    as_postgres(
        f"{bindir}/pg_ctl",
        "-D",
        f"{data}/db",
        "-w",
        "-l",
        f"{data}/log",
        "start",
        "-o",
        f"-k {data} -p {port} -c listen_addresses=''",
    )
    try:
        as_postgres(f"{bindir}/createdb", "-h", str(data), "-p", port, "keystone")
        stack = Path(env["GRENADE_DIR"]).parent
        (stack / "old/devstack/stackrc").write_text(
            f"DATABASE_TYPE=postgresql\nDATABASE_HOST={data}\nDATABASE_PORT={port}\n"
            "DATABASE_USER=postgres\n"
        )
        env["DATABASES_TO_SAVE"] = " keystone nova"
        proc = run(PRELUDE + 'save_data old "$BASE_DEVSTACK_DIR"', env)
        assert "PostgreSQL database dump" in (stack / "save/keystone.sql.old").read_text()
        assert "Not saving database nova: it does not exist" in out(proc)
    finally:
        as_postgres(f"{bindir}/pg_ctl", "-D", f"{data}/db", "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_ping_check_public_never_runs_its_address(env, tmp_path):
    if shutil.which("ping") is None:
        pytest.skip("no ping on this machine")
    marker = tmp_path / "pwned"
    script = PRELUDE + f'ping_check_public "127.0.0.1; touch {marker}" 2 True'
    proc = run(script, env, check=False)
    assert proc.returncode != 0
    assert not marker.exists()
    assert "Couldn't ping server 127.0.0.1; touch" in err(proc) + out(proc)
    proc = run(PRELUDE + "ping_check_public 127.0.0.1 5 True && echo reachable", env, check=False)
    assert "reachable" in out(proc)


def test_grenaderc_defaults_come_from_the_python_defaults(tmp_path):
    from grenade.config_sources import DEFAULTS

    env = genv.make_grenade_dir(tmp_path)
    gdir = Path(env["GRENADE_DIR"])
    (gdir / "localrc").write_text("")  # nothing from a run: only the defaults speak
    env.pop("SAVE_DIR")
    script = (
        'source "$GRENADE_DIR/grenaderc"; '
        'echo "$STACK_ROOT|$BASE_RELEASE|$TARGET_RELEASE|$BASE_DEVSTACK_BRANCH|'
        '$TARGET_DEVSTACK_BRANCH|$VERIFY_RESOURCES"'
    )
    proc = genv.bash(script, env, check=True)
    assert proc.stdout.decode().strip() == "|".join(
        [
            DEFAULTS["stack_root"],
            DEFAULTS["trees"]["base_name"],
            DEFAULTS["trees"]["target_name"],
            DEFAULTS["base"]["branch"],
            DEFAULTS["target"]["branch"],
            "True",
        ]
    )
    # a localrc value still wins over a default
    (gdir / "localrc").write_text("TARGET_DEVSTACK_BRANCH=master\n")
    proc = genv.bash('source "$GRENADE_DIR/grenaderc"; echo "$TARGET_DEVSTACK_BRANCH"', env)
    assert proc.stdout.decode().strip() == "master"
    # without the file setup writes, grenaderc says what is wrong instead of guessing
    (gdir / "defaults").unlink()
    proc = genv.bash('source "$GRENADE_DIR/grenaderc" || echo "status $?"', env)
    assert "grenaderc: " in proc.stderr.decode() and "defaults is missing" in proc.stderr.decode()
    assert proc.stdout.decode().strip() == "status 1"

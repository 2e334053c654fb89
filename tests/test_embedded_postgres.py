"""The embedded default: a real PostgreSQL server from the pinned wheel, under VAR_DIR.

These run the project's own processes (the server, manage.py, gunicorn, a Celery worker on the
filesystem broker) in subprocesses with DATABASE_URL and CELERY_BROKER_URL unset, as `make run`
does, so nothing here touches the PostgreSQL and Redis the rest of the suite uses.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from retention_crm import embedded_postgres

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "PYTEST_XDIST_WORKER"}}
    env.update({"VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "retention_crm.settings", **extra})
    return env


def run(var_dir: Path, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args],
        env=embedded_env(var_dir, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def postmaster_pid(server: embedded_postgres.Server) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded")
    run(folder, "-m", "retention_crm.embedded_postgres", "start")
    yield folder
    run(folder, "-m", "retention_crm.embedded_postgres", "stop")


def test_the_server_listens_only_on_its_own_socket_and_is_reused(var_dir):
    server = embedded_postgres.Server(var_dir / "postgres")
    pid = postmaster_pid(server)
    again = run(var_dir, "-m", "retention_crm.embedded_postgres", "start")
    assert "ready" in again.stdout
    assert postmaster_pid(server) == pid, "a second start must reuse the running server"

    with psycopg.connect(host=str(server.socket_dir), user="postgres", dbname="retention_crm") as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP port: no clash with 5432
        assert conn.execute("SHOW data_directory").fetchone()[0] == str(server.data_dir)
        assert conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 180000
    if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as its own system user
        owner = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
        assert owner.split()[1] != "0"


def test_settings_point_at_the_embedded_server_with_no_database_url(var_dir):
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "d = s.DATABASES['default']; print(json.dumps([d['ENGINE'], d['NAME'], d['HOST'], s.EMBEDDED_DATABASE]))"
    )
    engine, name, host, embedded = json.loads(run(var_dir, "-c", code).stdout)
    assert engine == "django.db.backends.postgresql"
    assert (name, host, embedded) == ("retention_crm", str(var_dir / "postgres" / "run"), True)


def test_the_embedded_demo_passes_the_system_checks_without_warnings(var_dir):
    # Model checks that depend on the database run only with --database.
    result = run(var_dir, "manage.py", "check", "--database", "default")
    assert "no issues" in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_sqlite_database_url_is_refused_with_a_clear_message(tmp_path):
    result = run(tmp_path, "manage.py", "check", check=False, DATABASE_URL="sqlite:///db.sqlite3")
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def test_manage_py_says_how_to_start_the_server_when_it_is_not_running(tmp_path):
    result = run(tmp_path, "manage.py", "showmigrations", check=False)
    assert result.returncode == 1
    assert "embedded PostgreSQL is not running" in result.stderr and "make run" in result.stderr
    assert "Traceback" not in result.stderr
    assert run(tmp_path, "manage.py", "create_api_key", "--help").returncode == 0  # help needs no database


def test_stop_ends_the_server_and_a_restart_keeps_the_data(tmp_path):
    run(tmp_path, "-m", "retention_crm.embedded_postgres", "start")
    server = embedded_postgres.Server(tmp_path / "postgres")
    with psycopg.connect(host=str(server.socket_dir), user="postgres", dbname="retention_crm", autocommit=True) as c:
        c.execute("CREATE TABLE kept (n int)")
        c.execute("INSERT INTO kept VALUES (42)")
    run(tmp_path, "-m", "retention_crm.embedded_postgres", "stop")
    status = run(tmp_path, "-m", "retention_crm.embedded_postgres", "status", check=False)
    assert status.returncode == 3 and "stopped" in status.stdout
    run(tmp_path, "-m", "retention_crm.embedded_postgres", "start")
    try:
        with psycopg.connect(host=str(server.socket_dir), user="postgres", dbname="retention_crm") as c:
            assert c.execute("SELECT n FROM kept").fetchone() == (42,)
    finally:
        run(tmp_path, "-m", "retention_crm.embedded_postgres", "stop")


def test_the_run_wrapper_stops_the_server_when_its_command_ends(tmp_path):
    result = run(tmp_path, "-m", "retention_crm.embedded_postgres", "run", "--", sys.executable, "manage.py", "migrate")
    assert "Applying customers.0001_initial... OK" in result.stdout
    assert not embedded_postgres.is_running(embedded_postgres.Server(tmp_path / "postgres"))


# --- The demo's processes drive a campaign: API key from another shell, run, worker sends, report --


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(base: str, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_demo_processes_run_a_campaign_through_the_api(var_dir):
    run(var_dir, "manage.py", "migrate", "--noinput")
    key = run(var_dir, "manage.py", "create_api_key", "shop", "--scopes", "read", "write", "campaigns").stdout.strip()
    # Quiet hours off: the message must go out now, whatever the hour the tests run.
    quiet_off = (
        "import datetime as dt; from campaigns.models import ContactPolicy;"
        " ContactPolicy.objects.update_or_create(pk=1,"
        " defaults={'quiet_hours_start': dt.time(0), 'quiet_hours_end': dt.time(0)})"
    )
    run(var_dir, "manage.py", "shell", "-c", quiet_off)
    port = free_port()
    env = embedded_env(var_dir, PORT=str(port), EMAIL_URL="consolemail://")
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "retention_crm.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "retention_crm",
            "worker",
            "--queues",
            "default,triggers,sends,metrics",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base + "/healthz"), 60, "the web server")
        status, _ = call(
            base,
            "PUT",
            "/api/v1/customers/lapsed-1",
            key,
            {"email": "lapsed@example.com", "first_name": "Lena", "consents": {"email": True}},
        )
        assert status == 201
        placed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120 * 86400))
        status, _ = call(
            base,
            "POST",
            "/api/v1/purchases",
            key,
            {"external_id": "old-order-1", "customer": "lapsed-1", "placed_at": placed, "total": "42.00"},
        )
        assert status == 201
        status, campaign = call(
            base,
            "POST",
            "/api/v1/campaigns",
            key,
            {
                "name": "Come back",
                "trigger": "reactivation",
                "channel": "email",
                "status": "active",
                "subject": "We miss you, {{ customer.first_name }}",
                "body": "Come back soon: {{ unsubscribe_url }}",
                "params": {"inactive_days": 90},
                "holdout_percent": 0,
            },
        )
        assert status == 201, campaign
        status, outcome = call(base, "POST", f"/api/v1/campaigns/{campaign['id']}/run", key)
        assert status == 200 and outcome["queued"] == 1, outcome

        def sent() -> dict | None:
            status, report = call(base, "GET", f"/api/v1/campaigns/{campaign['id']}/report", key)
            assert status == 200
            return report if report["counts"].get("sent", 0) >= 1 else None

        report = wait_for(sent, 90, "the worker to send the message")
        assert "impact" in report
    finally:
        web.terminate()
        worker.terminate()
        web.wait(30)
        output, _ = worker.communicate(timeout=60)
    assert "We miss you, Lena" in output  # the console email backend printed the message the worker sent


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False

"""Settings come from the environment; with none set the project runs embedded."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']), "
    "'broker': s.CELERY_BROKER_URL, 'debug': s.DEBUG, 'tz': s.TIME_ZONE, 'currency': s.STORE_CURRENCY, "
    "'hosts': s.ALLOWED_HOSTS, 'email': s.EMAIL_BACKEND, 'email_host': s.EMAIL_HOST, "
    "'transport': getattr(s, 'CELERY_BROKER_TRANSPORT_OPTIONS', {})}))"
)


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "retention_crm.settings", "HOME": str(ROOT)}
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def probe(env: dict[str, str]) -> dict:
    result = run_python(PROBE, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_environment_but_debug_means_embedded_postgresql_and_filesystem_broker(tmp_path):
    config = probe({"VAR_DIR": str(tmp_path), "DEBUG": "true"})
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["name"] == "retention_crm"
    assert config["broker"] == "filesystem://localhost/"
    assert config["transport"]["data_folder_in"].startswith(str(tmp_path))
    # kombu keeps its exchange table in ./control unless told otherwise; it belongs under var/ too.
    assert config["transport"]["control_folder"] == str(tmp_path / "celery" / "control")
    assert config["debug"] is True
    assert config["email"] == "django.core.mail.backends.console.EmailBackend"
    assert (tmp_path / "celery" / "queue").is_dir()


def test_the_embedded_broker_sends_without_a_warning(tmp_path):
    # kombu warns "No hostname was supplied" on each connection to a URL without a host: a shop
    # running an import from cron would find the warning in every mail cron sends.
    code = (
        "import django; django.setup(); from retention_crm.celery import app; "
        "app.send_task('retention_crm.probe'); print('sent')"
    )
    result = run_python(code, {"VAR_DIR": str(tmp_path), "DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent"
    assert "WARNING" not in result.stderr, result.stderr
    assert len(list((tmp_path / "celery" / "queue").iterdir())) == 1  # the message is in the queue


def test_environment_switches_to_postgresql_redis_and_smtp(tmp_path):
    config = probe(
        {
            "VAR_DIR": str(tmp_path),
            "DEBUG": "true",
            "DATABASE_URL": "postgres://shop:secret@db.internal:5432/crm",
            "CELERY_BROKER_URL": "redis://cache.internal:6379/1",
            "TIME_ZONE": "Europe/Berlin",
            "STORE_CURRENCY": "eur",
            "ALLOWED_HOSTS": "crm.example.com,www.crm.example.com",
            "EMAIL_URL": "smtp://user:pass@mail.example.com:587",
        }
    )
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["name"] == "crm"
    assert config["broker"] == "redis://cache.internal:6379/1"
    assert config["tz"] == "Europe/Berlin"
    assert config["currency"] == "EUR"
    assert config["hosts"] == ["crm.example.com", "www.crm.example.com"]
    assert config["email"] == "django.core.mail.backends.smtp.EmailBackend"
    assert config["email_host"] == "mail.example.com"
    assert "data_folder_in" not in config["transport"]


def test_rabbitmq_works_by_url_alone(tmp_path):
    config = probe(
        {"VAR_DIR": str(tmp_path), "DEBUG": "true", "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}
    )
    assert config["broker"].startswith("amqp://")


def test_secret_key_is_required_once_debug_is_off(tmp_path):
    result = run_python(PROBE, {"VAR_DIR": str(tmp_path), "DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


SECURITY_PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'debug': s.DEBUG, 'key': s.SECRET_KEY, 'ssl_redirect': s.SECURE_SSL_REDIRECT, "
    "'session_secure': s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE, "
    "'proxy_header': getattr(s, 'SECURE_PROXY_SSL_HEADER', None), 'hosts': s.ALLOWED_HOSTS, "
    "'backends': s.AUTHENTICATION_BACKENDS, 'middleware': s.MIDDLEWARE, 'axes_handler': s.AXES_HANDLER, "
    "'axes_limit': s.AXES_FAILURE_LIMIT, 'axes_params': s.AXES_LOCKOUT_PARAMETERS, "
    "'adjust_cap': s.LOYALTY_ADJUST_MAX_POINTS}))"
)
PUBLIC_DEVELOPMENT_KEY = "insecure-development-key-do-not-use-in-production"  # what the code once shipped


def security(env: dict[str, str]) -> dict:
    result = run_python(SECURITY_PROBE, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_debug_is_off_unless_set_so_nothing_set_asks_for_a_secret_key(tmp_path):
    result = run_python(PROBE, {"VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_is_the_default_once_a_key_is_given(tmp_path):
    config = security({"VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 60})
    assert config["debug"] is False
    assert config["ssl_redirect"] and config["session_secure"] and config["csrf_secure"]
    assert config["hosts"] == []
    assert config["proxy_header"] is None  # X-Forwarded-Proto is not believed unless told
    assert config["adjust_cap"] == 10_000


def test_the_proxy_ssl_header_is_trusted_only_when_asked(tmp_path):
    base = {"VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 60}
    assert security(base)["proxy_header"] is None
    assert security({**base, "TRUST_PROXY_SSL_HEADER": "false"})["proxy_header"] is None
    assert security({**base, "TRUST_PROXY_SSL_HEADER": "true"})["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_the_development_key_is_random_per_checkout_and_shared_by_its_processes(tmp_path):
    first = security({"VAR_DIR": str(tmp_path / "a"), "DEBUG": "true"})["key"]
    again = security({"VAR_DIR": str(tmp_path / "a"), "DEBUG": "true"})["key"]
    other = security({"VAR_DIR": str(tmp_path / "b"), "DEBUG": "true"})["key"]
    assert first == again != other
    assert len(first) >= 50 and PUBLIC_DEVELOPMENT_KEY not in (first, other)
    assert (tmp_path / "a" / "secret_key").stat().st_mode & 0o077 == 0
    assert PUBLIC_DEVELOPMENT_KEY not in (ROOT / "retention_crm" / "settings.py").read_text()


def test_commands_run_by_hand_in_a_demo_checkout_use_the_demo_key(tmp_path):
    demo_key = security({"VAR_DIR": str(tmp_path), "DEBUG": "true"})["key"]
    # e.g. `manage.py create_api_key` in another terminal while `make run` runs, DEBUG not set
    assert security({"VAR_DIR": str(tmp_path)})["key"] == demo_key


def test_failed_staff_logins_are_locked_out_by_username_and_address(tmp_path):
    config = security({"VAR_DIR": str(tmp_path), "DEBUG": "true"})
    assert config["backends"][0] == "axes.backends.AxesStandaloneBackend"
    assert config["middleware"][-1] == "axes.middleware.AxesMiddleware"
    assert config["axes_handler"] == "axes.handlers.database.AxesDatabaseHandler"
    assert config["axes_limit"] == 5
    assert config["axes_params"] == [["username", "ip_address"]]


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    production = {
        "VAR_DIR": str(tmp_path),
        "DEBUG": "false",
        "SECRET_KEY": "k3y-" + "x7Q9vR2mZpL4sT8wB1nC6yF0hJ5dG3aK" * 2,
        "ALLOWED_HOSTS": "crm.example.com",
    }
    result = run_python("", production, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_site_url_follows_the_port_the_demo_serves_on(tmp_path):
    code = "import django; django.setup(); from django.conf import settings as s; print(s.SITE_URL)"
    demo = {"VAR_DIR": str(tmp_path), "DEBUG": "true", "PORT": "8123"}
    assert run_python(code, demo).stdout.strip() == "http://127.0.0.1:8123"
    given = {**demo, "SITE_URL": "https://crm.example.com/"}
    assert run_python(code, given).stdout.strip() == "https://crm.example.com"

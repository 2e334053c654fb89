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


def test_no_environment_means_embedded_postgresql_and_filesystem_broker(tmp_path):
    config = probe({"VAR_DIR": str(tmp_path)})
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["name"] == "retention_crm"
    assert config["broker"] == "filesystem://"
    assert config["transport"]["data_folder_in"].startswith(str(tmp_path))
    # kombu keeps its exchange table in ./control unless told otherwise; it belongs under var/ too.
    assert config["transport"]["control_folder"] == str(tmp_path / "celery" / "control")
    assert config["debug"] is True
    assert config["email"] == "django.core.mail.backends.console.EmailBackend"
    assert (tmp_path / "celery" / "queue").is_dir()


def test_environment_switches_to_postgresql_redis_and_smtp(tmp_path):
    config = probe(
        {
            "VAR_DIR": str(tmp_path),
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
    config = probe({"VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"})
    assert config["broker"].startswith("amqp://")


def test_secret_key_is_required_once_debug_is_off(tmp_path):
    result = run_python(PROBE, {"VAR_DIR": str(tmp_path), "DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


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
    assert run_python(code, {"VAR_DIR": str(tmp_path), "PORT": "8123"}).stdout.strip() == "http://127.0.0.1:8123"
    given = {"VAR_DIR": str(tmp_path), "PORT": "8123", "SITE_URL": "https://crm.example.com/"}
    assert run_python(code, given).stdout.strip() == "https://crm.example.com"

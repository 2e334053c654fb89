"""docker-compose.yml parses, has the production shape, and runs what `make run` runs."""

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, list[str]]:
    """The Procfile's commands, with each ``${NAME:-default}`` at its default (what compose spells out)."""
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", (ROOT / "Procfile").read_text())
    lines = text.splitlines()
    return {name: shlex.split(command) for name, command in (line.split(":", 1) for line in lines if line.strip())}


def without_bind(command: list[str]) -> list[str]:
    """The web's listen address differs (loopback locally, all interfaces in a container)."""
    if "--bind" in command:
        at = command.index("--bind")
        return command[:at] + command[at + 2 :]
    return command


def test_compose_file_has_every_service_with_health_checks_and_a_named_volume():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name
    assert "pgdata" in compose["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")
    assert services["worker"]["environment"]["CELERY_BROKER_URL"].startswith("redis://")


def test_compose_runs_the_same_commands_as_make_run():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    local = procfile()
    assert set(local) == {"web", "worker", "beat"}
    for name, command in local.items():
        assert without_bind(compose[name]["command"]) == without_bind(command), name


def compose_environment(**given: str) -> dict[str, str]:
    """The app services' environment as compose builds it: each ``${NAME:-default}`` at its
    default unless given, each required ``${NAME:?...}`` from ``given``."""
    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app"]["environment"]

    def resolve(value: str) -> str:
        def one(match: re.Match) -> str:
            name, op, default = match.group(1), match.group(2), match.group(3)
            if name in given:
                return given[name]
            assert op == ":-", f"{name} must be given"
            return default

        return re.sub(r"\$\{([A-Z_]+)(:-|:\?)([^}]*)\}", one, str(value))

    return {name: resolve(value) for name, value in environment.items()}


def test_compose_defaults_are_production_safe():
    environment = compose_environment(SECRET_KEY="x" * 60)
    assert environment["DEBUG"] == "false"
    assert environment["SESSION_COOKIE_SECURE"] == "true"
    assert environment["CSRF_COOKIE_SECURE"] == "true"
    assert environment["SECURE_SSL_REDIRECT"] == "true"
    assert environment["TRUST_PROXY_SSL_HEADER"] == "false"
    assert environment["CACHE_URL"].startswith("redis://")  # throttles shared by the web processes


def test_check_deploy_is_clean_for_the_compose_environment(tmp_path):
    import os
    import subprocess
    import sys

    environment = compose_environment(SECRET_KEY="k3y-" + "x7Q9vR2mZpL4sT8wB1nC6yF0hJ5dG3aK" * 2)
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={**base, **environment},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_image_is_production_and_carries_no_key():
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.startswith("#")]
    assert "ENV DEBUG=false" in instructions
    assert "DEBUG=true" not in dockerfile
    assert not any(line.startswith("ENV") and "SECRET_KEY" in line for line in instructions)
    assert not any(line.startswith("ARG") and "SECRET_KEY" in line for line in instructions)
    assert "var" in (ROOT / ".dockerignore").read_text().split()  # no demo key copied in from var/


def test_make_run_turns_debug_on_for_the_demo_only():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run demo: export DEBUG \?= true$", makefile, re.MULTILINE)
    assert not re.search(r"^export DEBUG", makefile, re.MULTILINE)

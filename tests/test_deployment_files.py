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

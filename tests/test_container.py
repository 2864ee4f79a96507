"""The Dockerfile and compose.yaml stay honest without a Docker daemon: every ``loyalty``
command they run exists, the files they copy exist, the health check asks a real route."""

import fnmatch
import re
import shlex
from pathlib import Path

import pytest
import yaml
from starlette.routing import Route
from typer.testing import CliRunner

from loyalty.app import create_app
from loyalty.cli import app as cli
from loyalty.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _argv(arguments: str) -> list[str]:
    """A shell-form or exec-form (JSON array) command as a list of words."""
    return yaml.safe_load(arguments) if arguments.startswith("[") else shlex.split(arguments)


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _loyalty_commands() -> list[list[str]]:
    commands = [_argv(args) for name, args in _instructions() if name in {"CMD", "ENTRYPOINT"}]
    for service in _compose()["services"].values():
        command = service.get("command")
        if command:
            commands.append(command if isinstance(command, list) else shlex.split(command))
    marker = "docker compose run --rm migrate "
    commands += [
        shlex.split(line.split(marker, 1)[1])
        for line in (ROOT / "compose.yaml").read_text().splitlines()
        if marker in line
    ]
    return [command for command in commands if command and command[0] == "loyalty"]


def test_every_loyalty_command_they_run_exists():
    commands = _loyalty_commands()
    assert ["loyalty", "db", "upgrade"] in commands
    assert any(command[:2] == ["loyalty", "serve"] for command in commands)
    for command in commands:
        # --help after the options makes click reject any unknown command or option first
        result = CliRunner().invoke(cli, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_the_health_check_asks_a_route_of_the_app_on_the_served_port():
    (check,) = [args for name, args in _instructions() if name == "HEALTHCHECK"]
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert match, check
    port, path = match.groups()
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    assert path == "/readyz"
    assert path in {route.path for route in app.routes if isinstance(route, Route)}
    (cmd,) = [_argv(args) for name, args in _instructions() if name == "CMD"]
    assert cmd[cmd.index("--port") + 1] == port
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert ("EXPOSE", port) in _instructions()


def test_the_image_is_slim_multi_stage_and_runs_as_a_user():
    instructions = _instructions()
    bases = [args for name, args in instructions if name == "FROM"]
    assert len(bases) >= 2 and all("-slim" in base for base in bases)
    assert any("pip wheel" in args for name, args in instructions if name == "RUN")
    users = [args for name, args in instructions if name == "USER"]
    assert users and users[-1] not in {"root", "0"}
    names = [name for name, _ in instructions]
    assert names.index("USER") < names.index("CMD")


def test_what_the_dockerfile_copies_exists_and_is_not_ignored():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv"} <= set(ignored)
    copies = [args for name, args in _instructions() if name == "COPY" and "--from" not in args]
    sources = [source for args in copies for source in shlex.split(args)[:-1]]
    assert {"pyproject.toml", "setup.py", "loyalty", "migrations"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


@pytest.mark.parametrize("name", ["migrate", "app"])
def test_compose_runs_the_app_on_postgres_after_the_migration(name: str):
    services = _compose()["services"]
    service = services[name]
    assert service["build"] == "."
    url = service["environment"]["LOYALTY_DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    assert "postgres" in services
    settings = set(Settings.model_fields)
    for variable in service["environment"]:
        assert variable.removeprefix("LOYALTY_").lower() in settings, variable
    if name == "migrate":
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["restart"] == "no"
    else:
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"

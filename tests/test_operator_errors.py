"""What an operator sees when the database is missing, unreachable or not migrated: one line
naming the database and the fix, exit 2, and no file created behind their back."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from loyalty import migrate

DATABASE_COMMANDS = (
    ("apikey", "list"),
    ("apikey", "create", "--role", "pos", "--name", "till"),
    ("apikey", "revoke", "1"),
    ("ledger", "verify"),
    ("jobs", "run", "expire-points"),
    ("program", "init", "--currency", "EUR"),
    ("serve", "--port", "1"),
)


def _loyalty(*args: str, cwd: Path, url: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LOYALTY_DATABASE_URL"}
    if url is not None:
        env["LOYALTY_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "loyalty", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path: Path):
    missing = tmp_path / "nowhere.db"
    for command in DATABASE_COMMANDS:
        line = _one_error_line(
            _loyalty(*command, cwd=tmp_path, url=f"sqlite+aiosqlite:///{missing}")
        )
        assert str(missing) in line and "run `loyalty db upgrade`" in line, (command, line)
        assert not missing.exists(), command


def test_an_unmigrated_database_says_what_to_run(tmp_path: Path):
    empty = tmp_path / "empty.db"
    empty.touch()
    line = _one_error_line(
        _loyalty("ledger", "verify", cwd=tmp_path, url=f"sqlite+aiosqlite:///{empty}")
    )
    assert "is not migrated: run `loyalty db upgrade`" in line


def test_a_database_behind_the_code_names_both_revisions(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0003")
    line = _one_error_line(_loyalty("apikey", "list", cwd=tmp_path, url=url))
    assert f"at revision 0003, this loyalty needs {migrate.head_revision()}" in line
    assert "loyalty db upgrade" in line


def test_an_unreachable_postgres_is_one_line_without_the_password(tmp_path: Path):
    url = "postgresql+asyncpg://someone:hunter2@127.0.0.1:1/loyalty"
    for command in (("ledger", "verify"), ("db", "upgrade")):
        line = _one_error_line(_loyalty(*command, cwd=tmp_path, url=url))
        assert "Cannot open the database at postgresql+asyncpg://someone:***@127.0.0.1:1" in line
        assert "hunter2" not in line


def test_without_a_url_the_default_file_is_named_once(tmp_path: Path):
    upgraded = _loyalty("db", "upgrade", cwd=tmp_path, url=None)
    assert upgraded.returncode == 0, upgraded.stderr
    default = tmp_path.resolve() / "loyalty.db"
    assert upgraded.stderr.count(str(default)) == 1, upgraded.stderr
    assert default.is_file()

    listed = _loyalty("apikey", "list", cwd=tmp_path, url=None)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines() == [
        f"LOYALTY_DATABASE_URL is not set: using the database file {default}"
    ]


def test_ledger_verify_exits_0_on_a_sound_ledger(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'sound.db'}"
    migrate.upgrade(url)
    verified = _loyalty("ledger", "verify", cwd=tmp_path, url=url)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""


def test_an_invalid_setting_is_one_line_naming_the_variable(tmp_path: Path):
    env = {**os.environ, "LOYALTY_PAGE_SIZE_MAX": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "loyalty", "apikey", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = _one_error_line(result)
    assert line.startswith("error: invalid setting LOYALTY_PAGE_SIZE_MAX: ")


def test_a_database_newer_than_the_code_says_so(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'newer.db'}"
    migrate.upgrade(url)
    with sqlite3.connect(tmp_path / "newer.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    line = _one_error_line(_loyalty("ledger", "verify", cwd=tmp_path, url=url))
    assert "at revision 9999, newer than this loyalty" in line

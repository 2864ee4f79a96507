"""The wheel, installed as an operator would (``pip install .``, not editable), migrates and
serves from any directory: the migrations travel inside the package."""

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

from tests.cli import free_port

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "loyalty", "migrations")

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; the dependencies come from the test's own
    environment through a ``.pth`` line (its editable ``loyalty`` is not activated by that)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy(ROOT / name, source / name)
    dist = base / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source, cwd=base)
    (wheel,) = dist.glob("loyalty-*.whl")

    venv = base / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=base)
    python = venv / "bin" / "python"
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=base
    ).strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "_test_dependencies.pth").write_text("\n".join(sorted(outer)) + "\n")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=base)
    return venv


def test_the_wheel_carries_the_migrations(installed: Path, tmp_path: Path):
    location = _run(
        installed / "bin" / "python",
        "-c",
        "import loyalty.migrate as m; print(m.script_location())",
        cwd=tmp_path,
    ).strip()
    assert location.startswith(str(installed)), location
    assert location.endswith("_migrations")


def test_db_upgrade_then_serve_from_another_directory(installed: Path, tmp_path: Path):
    # given an operator in an empty directory with no LOYALTY_DATABASE_URL set
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    loyalty = installed / "bin" / "loyalty"

    # when they migrate and serve
    upgraded = _run(loyalty, "db", "upgrade", cwd=tmp_path, env=env)
    assert "Database at revision" in upgraded
    assert (tmp_path / "loyalty.db").is_file()
    port = free_port()
    server = subprocess.Popen(
        [str(loyalty), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # then /readyz answers ready within a bounded wait
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, f"no answer from serve: {server.poll()}"
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "ready"
        # and the admin console's files travel in the wheel too
        for path in ("/admin/", "/admin/app.css", "/admin/pages/members.js"):
            console = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert console.status_code == 200, (path, console.status_code)
    finally:
        server.terminate()
        server.wait(timeout=20)

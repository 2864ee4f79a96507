"""The documentation in docs/ stays true to the code: the reference is regenerated from the SDL,
every link stays inside the repository, and the settings, error codes, jobs and CLI commands
the code has are all documented."""

import importlib.util
import re
from pathlib import Path

import typer.main
from graphql import build_schema, parse, validate

from loyalty.cli import Job
from loyalty.cli import app as cli
from loyalty.config import Settings
from loyalty.errors import ErrorCode

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GUIDES = ("pos.md", "mobile-app.md", "admin.md", "operations.md", "errors-and-roles.md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "scripts" / "gen_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_reference_is_generated_from_the_current_sdl():
    generator = _generator()
    expected = generator.render(build_schema(generator.SDL.read_text()))
    actual = generator.REFERENCE.read_text() if generator.REFERENCE.is_file() else ""
    assert actual == expected, f"docs/reference.md is stale: run `{generator.COMMAND}`"


def test_every_type_of_the_sdl_has_a_section_in_the_reference():
    schema = build_schema((ROOT / "schema" / "schema.graphql").read_text())
    headings = set(re.findall(r"^### (\w+)$", (DOCS / "reference.md").read_text(), re.M))
    assert {name for name in schema.type_map if not name.startswith("__")} <= headings


def test_every_link_stays_inside_the_repository_and_resolves():
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        prose = CODE.sub("", text)
        assert not re.search(r"\w+://", prose), f"{page.name}: an address outside code"
        anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", CODE.sub("", text), re.M)}
        for target in LINK.findall(prose):
            path, _, anchor = target.partition("#")
            assert "://" not in target and not target.startswith("/"), (page.name, target)
            if path:
                assert (page.parent / path).resolve().is_relative_to(ROOT), (page.name, target)
                assert (page.parent / path).exists(), (page.name, target)
            elif anchor:
                assert anchor in anchors, (page.name, target)


def test_the_guides_exist_and_link_each_other_from_an_index():
    for name in GUIDES:
        assert (DOCS / name).is_file(), name
    index = (DOCS / "README.md").read_text()
    for name in (*GUIDES, "reference.md"):
        assert f"]({name})" in index, name


def test_every_setting_is_documented_in_operations():
    operations = (DOCS / "operations.md").read_text()
    for name in Settings.model_fields:
        assert f"LOYALTY_{name.upper()}" in operations, name


def test_every_error_code_is_documented():
    errors = (DOCS / "errors-and-roles.md").read_text()
    for code in [*ErrorCode, "UNAUTHENTICATED", "FORBIDDEN", "INTERNAL"]:
        assert f"`{code}`" in errors, code


def test_every_cli_command_and_job_is_documented_in_operations():
    operations = (DOCS / "operations.md").read_text()
    group = typer.main.get_command(cli)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None) or {"": command}
        for sub in subcommands:
            assert f"loyalty {name} {sub}".strip() in operations, f"loyalty {name} {sub}"
    for job in Job:
        assert f"jobs run {job.value}" in operations, job


def test_every_graphql_example_in_the_docs_validates_against_the_sdl():
    schema = build_schema((ROOT / "schema" / "schema.graphql").read_text())
    for page in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```graphql\n(.*?)```", page.read_text(), re.DOTALL):
            errors = validate(schema, parse(block))
            assert not errors, (page.name, block, errors)

"""Write docs/reference.md from schema/schema.graphql: every type, field, argument, enum value
and description of the GraphQL API.

    python scripts/gen_reference.py          # rewrite docs/reference.md
    python scripts/gen_reference.py --check  # exit 1 when docs/reference.md is stale

tests/test_docs.py runs the check, so CI fails when the SDL changes and this was not rerun.
"""

import re
import sys
from collections.abc import Iterable
from pathlib import Path

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    build_schema,
    get_named_type,
    print_ast,
)
from graphql.pyutils import Undefined
from graphql.utilities import ast_from_value

ROOT = Path(__file__).resolve().parent.parent
SDL = ROOT / "schema" / "schema.graphql"
REFERENCE = ROOT / "docs" / "reference.md"
COMMAND = "python scripts/gen_reference.py"

KINDS: tuple[tuple[str, type[GraphQLNamedType]], ...] = (
    ("Objects", GraphQLObjectType),
    ("Interfaces", GraphQLInterfaceType),
    ("Unions", GraphQLUnionType),
    ("Input objects", GraphQLInputObjectType),
    ("Enums", GraphQLEnumType),
    ("Scalars", GraphQLScalarType),
)


def _anchor(name: str) -> str:
    return name.lower()


def _type_link(type_: object) -> str:
    """``[Member!]!`` as a code span linking to the named type's section."""
    named = get_named_type(type_)  # type: ignore[arg-type]
    return f"[`{type_}`](#{_anchor(named.name)})"


MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\((\w+://[^)\s]+)\)")
BARE_URL = re.compile(r"(?<!`)\b(\w+://[^\s`)]+[^\s`).,;:])")


def _offline(text: str) -> str:
    """Descriptions may carry web links (a library's scalar does): the reference shows their
    address as code, so every link in the docs stays inside the repository."""
    return BARE_URL.sub(r"`\1`", MARKDOWN_LINK.sub(r"\1 (`\2`)", text))


def _text(description: str | None) -> str:
    """A description on one line (Markdown list items cannot hold line breaks)."""
    return _offline(" ".join((description or "").split()))


def _default(argument: GraphQLArgument | GraphQLInputField) -> str:
    """The default as the SDL writes it (graphql-core keeps SDL defaults as literals)."""
    node = argument.ast_node.default_value if argument.ast_node else None
    if node is None and argument.default_value is not Undefined:
        node = ast_from_value(argument.default_value, argument.type)
    return "" if node is None else f" = `{print_ast(node)}`"


def _deprecation(reason: str | None) -> str:
    return "" if reason is None else f" *Deprecated: {_text(reason) or 'no longer supported'}.*"


def _argument_lines(arguments: dict[str, GraphQLArgument]) -> Iterable[str]:
    for name, argument in arguments.items():
        described = f": {_text(argument.description)}" if argument.description else ""
        yield (
            f"  - argument `{name}`: {_type_link(argument.type)}{_default(argument)}{described}"
            f"{_deprecation(argument.deprecation_reason)}"
        )


def _field_lines(fields: dict[str, GraphQLField]) -> Iterable[str]:
    for name, field in fields.items():
        described = f": {_text(field.description)}" if field.description else ""
        yield (
            f"- **`{name}`** → {_type_link(field.type)}{described}"
            f"{_deprecation(field.deprecation_reason)}"
        )
        yield from _argument_lines(field.args)


def _input_field_lines(fields: dict[str, GraphQLInputField]) -> Iterable[str]:
    for name, field in fields.items():
        described = f": {_text(field.description)}" if field.description else ""
        yield (
            f"- **`{name}`**: {_type_link(field.type)}{_default(field)}{described}"
            f"{_deprecation(field.deprecation_reason)}"
        )


def _section(type_: GraphQLNamedType) -> list[str]:
    lines = [f"### {type_.name}", ""]
    if type_.description:
        lines += [_offline(type_.description.strip()), ""]
    if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
        if type_.interfaces:
            implemented = ", ".join(_type_link(i) for i in type_.interfaces)
            lines += [f"Implements {implemented}.", ""]
        lines += [*_field_lines(type_.fields), ""]
    elif isinstance(type_, GraphQLInputObjectType):
        lines += [*_input_field_lines(type_.fields), ""]
    elif isinstance(type_, GraphQLUnionType):
        lines += ["One of " + ", ".join(_type_link(t) for t in type_.types) + ".", ""]
    elif isinstance(type_, GraphQLEnumType):
        for name, value in type_.values.items():
            described = f": {_text(value.description)}" if value.description else ""
            lines.append(f"- `{name}`{described}{_deprecation(value.deprecation_reason)}")
        lines.append("")
    elif isinstance(type_, GraphQLScalarType) and type_.specified_by_url:
        lines += [f"Specified by `{type_.specified_by_url}`.", ""]
    return lines


BUILTIN_SCALARS = {
    "String": "UTF-8 text.",
    "Int": "A signed 32-bit integer.",
    "Float": "A double-precision number.",
    "Boolean": "`true` or `false`.",
    "ID": "An opaque identifier, sent and received as a string.",
}


def _builtin_sections() -> list[str]:
    lines = ["## Built-in scalars", ""]
    for name, description in BUILTIN_SCALARS.items():
        lines += [f"### {name}", "", description, ""]
    return lines


def render(schema: GraphQLSchema) -> str:
    """The whole reference; a pure function of the SDL, so the check can compare texts."""
    roots = [t for t in (schema.query_type, schema.mutation_type, schema.subscription_type) if t]
    named = sorted(
        (t for name, t in schema.type_map.items() if not name.startswith("__")),
        key=lambda t: t.name,
    )
    lines = [
        "# GraphQL API reference",
        "",
        "<!-- Generated from schema/schema.graphql by `" + COMMAND + "`: do not edit. -->",
        "",
        "Every type, field, argument and enum value of the API at `/graphql`, generated from",
        "`schema/schema.graphql`. Who may call what is in",
        "[errors-and-roles.md](errors-and-roles.md); worked examples are in the guides",
        "([point of sale](pos.md), [mobile app](mobile-app.md), [admin](admin.md)).",
        "",
        "## Operations",
        "",
    ]
    for root in roots:
        lines += _section(root)
    for title, kind in KINDS:
        members = [
            t
            for t in named
            if isinstance(t, kind) and t not in roots and t.name not in BUILTIN_SCALARS
        ]
        if members:
            lines += [f"## {title}", ""]
            for type_ in members:
                lines += _section(type_)
    lines += _builtin_sections()
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render(build_schema(SDL.read_text()))
    if "--check" in argv:
        if not REFERENCE.is_file() or REFERENCE.read_text() != text:
            print(f"{REFERENCE.relative_to(ROOT)} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    print(f"Wrote {REFERENCE.relative_to(ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Every type, field, input field and argument in the SDL says what it is to client developers."""

from collections.abc import Iterator

from graphql import GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema

from loyalty.config import Settings
from loyalty.graphql.schema import build_schema

BUILT_IN_SCALARS = frozenset({"String", "Int", "Boolean", "ID", "Float"})


def described_items(schema: GraphQLSchema) -> Iterator[tuple[str, str | None]]:
    """(name, description) of every type, field, argument and input field clients see."""
    for type_name, schema_type in sorted(schema.type_map.items()):
        if type_name.startswith("__") or type_name in BUILT_IN_SCALARS:
            continue
        yield type_name, schema_type.description
        if isinstance(schema_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in schema_type.fields.items():
                yield f"{type_name}.{field_name}", field.description
                for arg_name, arg in field.args.items():
                    yield f"{type_name}.{field_name}({arg_name})", arg.description
        elif isinstance(schema_type, GraphQLInputObjectType):
            for field_name, input_field in schema_type.fields.items():
                yield f"{type_name}.{field_name}", input_field.description


def test_every_type_field_and_argument_has_a_description():
    schema = build_schema(Settings(debug=True))._schema
    missing = [name for name, description in described_items(schema) if not description]
    assert not missing, f"{len(missing)} without a description:\n" + "\n".join(missing)


def test_descriptions_link_nowhere_outside_the_project():
    schema = build_schema(Settings(debug=True))._schema
    linking = [
        name for name, description in described_items(schema) if "://" in (description or "")
    ]
    assert not linking, "descriptions with links: " + ", ".join(linking)

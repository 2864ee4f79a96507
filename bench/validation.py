"""Worst-case parse + validate time for hostile documents under the token limit.

Each shape is built as large as the token limit allows and sent through the schema's own
parse and validation extensions (no database, no execution: a refused or invalid document
never executes). Prints the median and the slowest CPU time (process time, steadier than the
wall clock on a shared machine) of ``--repeat`` runs per shape, each with a
new operation name so the validation cache never answers.

    python bench/validation.py [--repeat 20]
"""

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from loyalty.config import Settings
from loyalty.graphql.schema import build_schema


def fragment_bomb(name: str) -> str:
    levels = 20
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    return (
        f"query {name} {{ ...F0 }} "
        + " ".join(fragments)
        + f" fragment F{levels} on Query {{ program {{ name }} }}"
    )


def repeated_fields(name: str) -> str:
    return f"query {name} {{ " + " ".join("program { name }" for _ in range(480)) + " }"


def repeated_under_the_limit(name: str) -> str:
    return f"query {name} {{ " + " ".join("program { name }" for _ in range(32)) + " }"


def wide_fragments(name: str) -> str:
    fields = " ".join(f"f{i}: name" for i in range(20))
    spreads = " ".join(f"...P{i}" for i in range(20))
    fragments = " ".join(f"fragment P{i} on Program {{ {fields} }}" for i in range(20))
    return f"query {name} {{ program {{ {spreads} }} }} {fragments}"


def aliases_and_directives(name: str) -> str:
    body = " ".join(
        f"a{i}: program @include(if: true) {{ name currency pendingDays }}" for i in range(30)
    )
    return f"query {name} {{ {body} }}"


def deep_nesting(name: str) -> str:
    return f"query {name} " + "{ program " * 300 + "}" * 301


SHAPES: dict[str, Callable[[str], str]] = {
    "fragment bomb (2^20 fields)": fragment_bomb,
    "480 repeated fields": repeated_fields,
    "32 repeated fields (allowed)": repeated_under_the_limit,
    "20 fragments x 20 aliases": wide_fragments,
    "30 aliases with directives": aliases_and_directives,
    "300 levels deep": deep_nesting,
}


def _kind(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if code:
        return str(code)
    return "SYNTAX" if error.message.startswith("Syntax Error") else "VALIDATION"


class StopBeforeExecution(SchemaExtension):
    """Hands back an empty result, so a valid document is timed up to execution only."""

    def on_execute(self) -> Iterator[None]:
        self.execution_context.result = GraphQLExecutionResult(data={}, errors=None)
        yield


async def main(repeat: int) -> None:
    settings = Settings(debug=False)
    schema = build_schema(settings)
    schema.extensions = [*schema.extensions, StopBeforeExecution]
    print(f"token limit {settings.max_tokens}, field limit {settings.max_fields}")
    print(f"{'shape':30} {'tokens':>7} {'median ms':>9} {'worst ms':>9}  outcome")
    for label, build in SHAPES.items():
        times: list[float] = []
        outcome, tokens = "", 0
        await schema.execute(build(f"Warm{uuid.uuid4().hex[:8]}"))  # not counted
        for run in range(repeat):
            document = build(f"Op{run}{uuid.uuid4().hex[:8]}")
            tokens = len(document.replace("{", " { ").replace("}", " } ").split())
            started = time.process_time()
            result = await schema.execute(document)
            times.append(time.process_time() - started)
            codes = {_kind(error) for error in result.errors or []}
            outcome = ", ".join(sorted(codes)) or "valid"
        median, worst = statistics.median(times), max(times)
        print(f"{label:30} {tokens:>7} {median * 1000:>9.2f} {worst * 1000:>9.2f}  {outcome}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    asyncio.run(main(parser.parse_args().repeat))

"""GraphQL fuzzing: schemathesis generates documents for every operation in the SDL.

Every Query and Mutation field of ``schema/schema.graphql`` gets ``LOYALTY_FUZZ_EXAMPLES``
generated documents (default 100) for each caller allowed to call it: an admin key, a pos key,
an app key and a member token. A caller that the field's permission class turns away gets a
tenth of that: its documents stop at the same FORBIDDEN gate, which a few confirm, and the
admin run already covers the field's arguments, which graphql-core coerces before the gate.
That keeps a full run near 7,500 requests.

The documents go in-process to the real ASGI app (``create_app``) over a seeded SQLite
database: a member with points, a purchase, a redemption, a tier, a reward, an earning rule and
an event, so generated IDs sometimes name something. Custom scalars (and ID, String, Int) have
strategies below that mix valid, malformed and huge values; about half the root-field arguments
are sent as variables rather than inline literals, which takes the other coercion path.
``test_fuzz_member_token_subjects`` signs member tokens with odd ``sub`` claims.

A case fails on an HTTP 5xx (or an exception out of the app), a body that is not a GraphQL
response, a GraphQL error whose ``extensions.code`` is ``INTERNAL``, or an error that has a
``path`` but no ``extensions.code`` (a resolver error with no client code, e.g. a null for a
non-null field). An error without ``path`` and without code comes from graphql-core's parse,
validation or variable coercion, before any resolver ran ("Expected value of type ...",
"Variable '$input' got invalid value ..."): the client's fault, so it passes.

Failures are grouped by signature (operation and exception site, or operation and message);
the test reports each group once with its shortest reproducer (document, variables, caller,
response and traceback), then fails. One backend is enough: what fuzzing hunts, input the code
does not expect, is handled by the same code on both; SQLite in /dev/shm is the fastest and
needs no server, and the rest of the suite runs every path on PostgreSQL too.

Quick run: ``LOYALTY_FUZZ_EXAMPLES=10 pytest tests/test_fuzz.py``.
"""

import asyncio
import json
import logging
import os
import re
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import graphql
import httpx
import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from loyalty.app import create_app
from loyalty.auth import service as auth
from loyalty.auth.models import Role
from loyalty.config import Settings
from loyalty.db import Database
from loyalty.graphql.schema import build_schema
from loyalty.ids import encode_id
from tests.conftest import TEST_SECRET_KEY, make_key

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "100"))
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema" / "schema.graphql"
ROLES = ("admin", "pos", "app", "member")
REPO_ROOT = str(Path(__file__).resolve().parents[1])
PACKAGE_ROOT = os.path.join(REPO_ROOT, "loyalty") + os.sep
SHOWN_RESPONSE_CHARS = 1500
SHOWN_VALUE_CHARS = 300
GATED_FRACTION = 10
LIBRARY_FRAMES = 2


# ---------------------------------------------------------------- the seeded program


@dataclass
class Seed:
    """What the seeded database holds, by GraphQL ID and by the strings that find it."""

    ids: list[str]
    strings: list[str]
    member_id: str


async def _call(http: httpx.AsyncClient, token: str, document: str, **variables: Any) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    (payload,) = body["data"].values()
    assert not payload.get("errors"), payload
    return payload


async def seed_program(http: httpx.AsyncClient, admin: str) -> Seed:
    """A tier, a reward, two members (one with points, a purchase, a redemption), a rule."""
    suffix = uuid.uuid4().hex[:8]
    tier = await _call(
        http,
        admin,
        "mutation($i: CreateTierInput!) { createTier(input: $i) { tier { id } errors { code } } }",
        i={"name": "Silver", "rank": 1, "threshold": 100, "multiplier": "1.5"},
    )
    reward = await _call(
        http,
        admin,
        "mutation($i: CreateRewardInput!) {"
        " createReward(input: $i) { reward { id } errors { code } } }",
        i={"name": "Coffee", "costPoints": 10, "stock": 50},
    )
    members = []
    for external_id in (f"fuzz-{suffix}", f"other-{suffix}"):
        enrolled = await _call(
            http,
            admin,
            "mutation($i: EnrollMemberInput!) {"
            " enrollMember(input: $i) { member { id } errors { code } } }",
            i={"externalId": external_id, "email": f"{external_id}@example.com"},
        )
        members.append(enrolled["member"]["id"])
    member_id = members[0]
    await _call(
        http,
        admin,
        "mutation($i: AdjustPointsInput!) { adjustPoints(input: $i) { errors { code } } }",
        i={"idempotencyKey": "seed-adjust", "memberId": member_id, "points": 500, "reason": "seed"},
    )
    purchase = await _call(
        http,
        admin,
        "mutation($i: RecordPurchaseInput!) {"
        " recordPurchase(input: $i) { purchase { id } errors { code } } }",
        i={
            "idempotencyKey": "seed-purchase",
            "memberId": member_id,
            "orderId": f"order-{suffix}",
            "channel": "IN_STORE",
            "storeId": "store-1",
            "total": {"amount": "40.00", "currency": "USD"},
        },
    )
    redemption = await _call(
        http,
        admin,
        "mutation($i: RedeemRewardInput!) {"
        " redeemReward(input: $i) { redemption { id code } errors { code } } }",
        i={
            "idempotencyKey": "seed-redeem",
            "memberId": member_id,
            "rewardId": reward["reward"]["id"],
            "channel": "IN_STORE",
        },
    )
    rule = await _call(
        http,
        admin,
        "mutation($i: CreateEarningRuleInput!) {"
        " createEarningRule(input: $i) { earningRule { id } errors { code } } }",
        i={"name": "Double", "effect": {"kind": "MULTIPLY", "value": "2"}},
    )
    event = await _call(
        http,
        admin,
        "mutation($i: RecordEventInput!) {"
        " recordEvent(input: $i) { event { id } errors { code } } }",
        i={"idempotencyKey": "seed-event", "memberId": member_id, "type": "app_installed"},
    )
    return Seed(
        ids=[
            tier["tier"]["id"],
            reward["reward"]["id"],
            *members,
            purchase["purchase"]["id"],
            redemption["redemption"]["id"],
            rule["earningRule"]["id"],
            event["event"]["id"],
        ],
        strings=[f"fuzz-{suffix}", f"order-{suffix}", redemption["redemption"]["code"], "USD"],
        member_id=member_id,
    )


# ---------------------------------------------------------------- scalar strategies


def _strings(values: list[str]) -> st.SearchStrategy[graphql.ValueNode]:
    return st.sampled_from(values).map(nodes.String)


HUGE = 20_000
"""Characters in a huge string: far over any column, yet cheap for graphql-core's lexer."""

_odd_text = st.sampled_from(
    ["", " ", "\x00", "\u202e", "🎉" * 3, "١٢", "²", "null", "'; DROP TABLE members; --", "\ud7ff"]
)
_huge_text = st.sampled_from(["x", "9", "é", "🎉"]).map(lambda c: c * HUGE)

DECIMALS = st.one_of(
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(str),
    st.sampled_from(["0", "1", "1.5", "12.50", "0.01", "-1", "100", "1E+2", "1e-2", "0.001"]),
    st.sampled_from(
        [
            "",
            "abc",
            "1,5",
            "NaN",
            "-NaN",
            "sNaN",
            "Infinity",
            "-Infinity",
            "inf",
            " 1 ",
            "0x10",
            "1e999999999",
            "1E-999999999",
            "1e-9999",
            "½",
            "١٢",
            "1_000",
            "+-1",
            "--1",
            ".",
        ]
    ),
    st.sampled_from(["9" * 40, "9" * 400, "1" + "0" * 30 + ".5", "0." + "0" * 300 + "1"]),
    st.integers(min_value=1, max_value=4000).map(lambda n: "9" * n),
).map(nodes.String)
"""Decimal strings: valid, malformed and huge (and, below, literals of the wrong kind)."""

_NOW = datetime.now(UTC).replace(tzinfo=None)
DATETIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda value: value.isoformat()),
    st.datetimes(_NOW - timedelta(days=40), _NOW + timedelta(days=40), timezones=st.just(UTC)).map(
        lambda value: value.isoformat()
    ),
    st.datetimes(_NOW - timedelta(days=3), _NOW, timezones=st.just(UTC)).map(
        lambda value: value.isoformat()
    ),
    st.datetimes().map(lambda value: value.isoformat()),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+00:00",
            "2026-06-15T12:30:00+14:00",
            "0001-01-01T00:00:00+00:00",
            "0001-01-01T00:00:00-14:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999+00:00",
            "9999-12-31T23:59:59-14:00",
            "1970-01-01",
            "2026-02-30T00:00:00Z",
            "2026-01-01T25:00:00Z",
            "now",
            "",
            "2026-01-01 00:00",
            "1700000000",
            "2026-01-01T00:00:00+25:00",
            "+002026-01-01T00:00:00Z",
        ]
    ),
).map(nodes.String)

DATES = st.one_of(
    st.dates().map(str),
    st.sampled_from(
        [
            "0001-01-01",
            "9999-12-31",
            "2024-02-29",
            "2023-02-29",
            "2026-13-01",
            "",
            "today",
            "2026-01-01T00:00:00Z",
            "20260101",
            "1900-01-01",
        ]
    ),
).map(nodes.String)


DEEP_JSON = "deep-json:"
"""A string "deep-json:N" in the variables is sent as N nested objects: too deep to build as an
AST (graphql-core's own parser refuses such a document) or for json.dumps, so it is spliced
into the request body as text."""


def _deep_json(depth: int) -> graphql.ValueNode:
    node: graphql.ValueNode = nodes.Int(1)
    for _ in range(depth):
        node = nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value="a"), value=node)])
    return node


def request_body(document: str, variables: dict[str, Any]) -> str:
    """The JSON body, with every "deep-json:N" string replaced by N nested objects."""
    body = json.dumps({"query": document, "variables": variables})
    return re.sub(
        r'"' + DEEP_JSON + r'(\d+)"',
        lambda match: '{"a":' * int(match.group(1)) + "1" + "}" * int(match.group(1)),
        body,
    )


def _json_object(pairs: list[tuple[str, graphql.ValueNode]]) -> graphql.ValueNode:
    names = dict(pairs)
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)
            for name, value in names.items()
        ]
    )


_json_leaves = st.one_of(
    st.just(nodes.Null),
    st.booleans().map(nodes.Boolean),
    st.integers().map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.text(max_size=20).map(nodes.String),
    st.just(nodes.List([])),
    st.just(nodes.Object([])),
)
JSON_VALUES = st.one_of(
    st.recursive(
        _json_leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=4).map(nodes.List),
            st.lists(
                st.tuples(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z"), children),
                min_size=1,
                max_size=4,
            ).map(_json_object),
        ),
        max_leaves=12,
    ),
    st.sampled_from([20, 100]).map(_deep_json),
    st.sampled_from([1000, 100_000]).map(lambda depth: nodes.String(f"{DEEP_JSON}{depth}")),
    _huge_text.map(nodes.String),
)


def register_scalars(seed: Seed) -> None:
    """Strategies for the SDL's custom scalars, and for ID, String and Int with seeded values.

    A value graphql-core refuses (a DateTime that is not ISO-8601, a literal of the wrong kind)
    refuses the whole document before any resolver runs, so such values stay rare: most
    documents must reach the services to be worth sending.
    """
    wrong_kind = st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.booleans().map(nodes.Boolean),
        st.just(nodes.Object([])),
        st.just(nodes.List([nodes.String("1")])),
    )
    seeded = st.sampled_from(seed.ids)
    ids = st.one_of(
        seeded,
        seeded,
        seeded,
        st.sampled_from(
            ["Member", "Tier", "Reward", "Purchase", "Redemption", "EarningRule"]
        ).flatmap(
            lambda kind: st.sampled_from([0, -1, 1, 2, 999_999, 10**18, 10**19, 2**63]).map(
                lambda pk: encode_id(kind, pk)
            )
        ),
        st.sampled_from(["", "1", "-1", "Member:1", "TWVtYmVyOi0x", "TWVtYmVyOjE=", "%%%", "=="]),
        st.text(max_size=80),
        _odd_text,
        _huge_text,
    ).map(nodes.String)
    strings = st.one_of(
        st.text(max_size=40),
        st.sampled_from(seed.strings),
        _odd_text,
        _huge_text,
        st.integers(min_value=1, max_value=400).map(lambda n: "a" * n),
    ).map(nodes.String)
    ints = st.one_of(
        st.sampled_from([0, 1, 2, 3, -1, 10, 100]),
        st.integers(min_value=-5, max_value=400),
        st.sampled_from([0, -1, 1, 100, 101, 3650, 3651, 2**31 - 1, -(2**31)]),
        st.integers(min_value=-(2**31), max_value=2**31 - 1),
    ).map(nodes.Int)
    schemathesis.graphql.scalar("Decimal", st.one_of(*[DECIMALS] * 5, wrong_kind))
    schemathesis.graphql.scalar("DateTime", st.one_of(*[DATETIMES] * 5, wrong_kind))
    schemathesis.graphql.scalar("Date", st.one_of(*[DATES] * 5, wrong_kind))
    schemathesis.graphql.scalar("JSON", JSON_VALUES)
    schemathesis.graphql.scalar("ID", ids)
    schemathesis.graphql.scalar("String", strings)
    schemathesis.graphql.scalar("Int", ints)


# ---------------------------------------------------------------- requests and outcomes


def hoist_arguments(
    document: str, schema: graphql.GraphQLSchema, choose: Callable[[str], bool]
) -> tuple[str, dict[str, Any]]:
    """Move the chosen root-field arguments into variables: the parse_value path, not literals."""
    tree = graphql.parse(document)
    operation = tree.definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    root = schema.mutation_type if operation.operation.value == "mutation" else schema.query_type
    assert root is not None
    variables: dict[str, Any] = {}
    definitions: list[graphql.VariableDefinitionNode] = []
    selections = []
    for selection in operation.selection_set.selections:
        assert isinstance(selection, graphql.FieldNode)
        arguments = []
        for argument in selection.arguments or ():
            name = argument.name.value
            if name in variables or not choose(name):
                arguments.append(argument)
                continue
            variables[name] = graphql.value_from_ast_untyped(argument.value)
            type_ = root.fields[selection.name.value].args[name].type
            definitions.append(
                graphql.VariableDefinitionNode(
                    variable=graphql.VariableNode(name=graphql.NameNode(value=name)),
                    type=graphql.parse_type(str(type_)),
                )
            )
            arguments.append(
                graphql.ArgumentNode(
                    name=argument.name,
                    value=graphql.VariableNode(name=graphql.NameNode(value=name)),
                )
            )
        selections.append(
            graphql.FieldNode(
                alias=selection.alias,
                name=selection.name,
                arguments=tuple(arguments),
                directives=selection.directives,
                selection_set=selection.selection_set,
            )
        )
    if not variables:
        return document, {}
    operation = graphql.OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=tuple(definitions),
        directives=operation.directives,
        selection_set=graphql.SelectionSetNode(selections=tuple(selections)),
    )
    return graphql.print_ast(graphql.DocumentNode(definitions=(operation,))), variables


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_server_errors() -> Iterator[_Collect]:
    """The app's "unexpected error" records, kept here; strawberry's per-error logs muted."""
    handler = _Collect()
    ours = logging.getLogger("loyalty.graphql")
    strawberry_logger = logging.getLogger("strawberry.execution")
    saved = ours.propagate, strawberry_logger.disabled
    ours.addHandler(handler)
    ours.propagate = False
    strawberry_logger.disabled = True
    try:
        yield handler
    finally:
        ours.removeHandler(handler)
        ours.propagate, strawberry_logger.disabled = saved


def _ours(frame: traceback.FrameSummary) -> bool:
    return frame.filename.startswith(PACKAGE_ROOT)


def _site(error: BaseException) -> str:
    """The innermost frame in the project's code: where the fault is (or surfaces)."""
    frames = traceback.extract_tb(error.__traceback__)
    frame = ([frame for frame in frames if _ours(frame)] or frames or [None])[-1]
    if frame is None:
        return "?"
    return f"{os.path.relpath(frame.filename, REPO_ROOT)}:{frame.lineno} in {frame.name}"


def _format_exception(error: BaseException) -> str:
    """The project's frames and the innermost library frames: the fault, not the framework."""
    frames = traceback.extract_tb(error.__traceback__)
    kept = [
        frame
        for number, frame in enumerate(frames)
        if _ours(frame) or number >= len(frames) - LIBRARY_FRAMES
    ]
    return (
        "Traceback (the project's frames and the innermost library frames):\n"
        + "".join(traceback.format_list(kept))
        + "".join(traceback.format_exception_only(error))
    ).rstrip()


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[
        :SHOWN_VALUE_CHARS
    ]


_NOISE = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


@dataclass
class Failure:
    signature: str
    what: str
    operation: str
    role: str
    document: str
    variables: dict[str, Any]
    response: str
    detail: str = ""
    count: int = 1
    previous: str = ""
    """The request before, when this one failed before its document was read."""

    @property
    def size(self) -> int:
        return len(self.document) + len(json.dumps(self.variables, default=str))


@dataclass
class Findings:
    cases: int = 0
    executed: int = 0
    """Cases that got past parsing, validation and variable coercion (``data`` not null)."""
    unauthenticated: int = 0
    """HTTP 401s: for the four callers, a sign that a credential stopped working mid-run."""
    app_seconds: float = 0.0
    """Time inside the app, the rest being generation."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent on each operation."""
    by_signature: dict[str, Failure] = field(default_factory=dict)

    def count(self, outcome: httpx.Response | BaseException) -> None:
        self.cases += 1
        if isinstance(outcome, httpx.Response) and outcome.status_code == 401:
            self.unauthenticated += 1
        if isinstance(outcome, httpx.Response) and outcome.status_code == 200:
            with suppress(ValueError, AttributeError):
                self.executed += outcome.json().get("data") is not None

    def add(self, failure: Failure) -> None:
        known = self.by_signature.get(failure.signature)
        if known is None:
            self.by_signature[failure.signature] = failure
            return
        failure.count = known.count + 1
        if failure.size < known.size:
            self.by_signature[failure.signature] = failure
        else:
            known.count = failure.count


@dataclass
class Harness:
    """The app over a seeded SQLite copy, and one credential per caller."""

    http: httpx.AsyncClient
    db: Database
    tokens: dict[str, str]
    seed: Seed
    directory: Path
    last_request: tuple[str, str, dict[str, Any]] = ("", "", {})

    async def send(self, role: str, document: str, variables: dict[str, Any]) -> httpx.Response:
        self.last_request = (role, document, variables)
        return await self.http.post(
            "/graphql",
            content=request_body(document, variables),
            headers={
                "Authorization": f"Bearer {self.tokens[role]}",
                "Content-Type": "application/json",
            },
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.dispose()
        if str(self.directory).startswith("/dev/shm/"):
            shutil.rmtree(self.directory, ignore_errors=True)


def _database_copy(template: Path, directory: Path) -> Path:
    """A copy of the migrated template, in memory-backed /dev/shm where there is one."""
    if Path("/dev/shm").is_dir():
        directory = Path(tempfile.mkdtemp(prefix="loyalty-fuzz-", dir="/dev/shm"))
    path = directory / "fuzz.db"
    shutil.copy(template, path)
    return path


async def start_harness(path: Path) -> Harness:
    directory = path.parent
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}", secret_key=TEST_SECRET_KEY, debug=False
    )
    db = Database(settings.database_url, busy_timeout=settings.sqlite_busy_timeout_seconds)
    app = create_app(settings, db=db)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://loyalty.test")
    tokens = {role: await make_key(db, role, f"fuzz {role}") for role in ("admin", "pos", "app")}
    seed = await seed_program(http, tokens["admin"])
    issued = await _call(
        http,
        tokens["admin"],
        "mutation($i: IssueMemberTokenInput!) {"
        " issueMemberToken(input: $i) { token errors { code } } }",
        i={"memberId": seed.member_id},
    )
    tokens["member"] = issued["token"]
    return Harness(http=http, db=db, tokens=tokens, seed=seed, directory=directory)


def judge(
    operation: str,
    role: str,
    document: str,
    variables: dict[str, Any],
    outcome: httpx.Response | BaseException,
    logged: list[logging.LogRecord],
) -> Failure | None:
    """The failure this response shows, or None when the server answered like it should."""

    def failure(signature: str, what: str, response: str, detail: str = "") -> Failure:
        return Failure(
            signature=f"{operation}: {signature}",
            what=what,
            operation=operation,
            role=role,
            document=document,
            variables=variables,
            response=response,
            detail=detail,
        )

    if isinstance(outcome, BaseException):
        site = _site(outcome)
        return failure(
            f"unhandled {type(outcome).__name__} at {site}",
            f"HTTP 500: unhandled {_first_line(outcome)}",
            "(the exception escaped the app; the client sees HTTP 500)",
            _format_exception(outcome),
        )
    text = outcome.text
    shown = text if len(text) <= SHOWN_RESPONSE_CHARS else text[:SHOWN_RESPONSE_CHARS] + " ..."
    if outcome.status_code >= 500:
        return failure(f"HTTP {outcome.status_code}", f"HTTP {outcome.status_code}", shown)
    try:
        body = outcome.json()
    except ValueError:
        return failure(
            "not JSON", f"HTTP {outcome.status_code} with a body that is not JSON", shown
        )
    if not isinstance(body, dict):
        return failure("not a GraphQL response", "a JSON body that is not an object", shown)
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code == "INTERNAL":
            exceptions = [r.exc_info[1] for r in logged if r.exc_info and r.exc_info[1]]
            if exceptions:
                cause = exceptions[0]
                return failure(
                    f"INTERNAL {type(cause).__name__} at {_site(cause)}",
                    f"INTERNAL error: {_first_line(cause)}",
                    shown,
                    _format_exception(cause),
                )
            return failure("INTERNAL", "INTERNAL error (no exception was logged)", shown)
        if code is None and error.get("path"):
            message = str(error.get("message", ""))
            return failure(
                f"no code: {_NOISE.sub('_', message)[:200]}",
                f"error without extensions.code at {error.get('path')}: {message[:300]}",
                shown,
            )
    return None


# ---------------------------------------------------------------- the fuzz run


def _load_operations() -> list[Any]:
    schema = schemathesis.graphql.from_path(SCHEMA_PATH)
    return [result.ok() for result in schema.get_all_operations()]


def _roles_allowed() -> dict[str, frozenset[str]]:
    """Who may call each root field, read from the fields' permission classes."""
    schema = build_schema(Settings(database_url="sqlite+aiosqlite://", secret_key=TEST_SECRET_KEY))
    allowed = {}
    for root in ("Query", "Mutation"):
        for field_ in schema.get_type_by_name(root).fields:
            roles = {str(role) for role in Role}
            for permission in field_.permission_classes:
                roles &= {str(role) for role in permission.roles}
            allowed[f"{root}.{schema.config.name_converter.from_field(field_)}"] = frozenset(roles)
    return allowed


def examples_for(role: str, label: str, allowed: dict[str, frozenset[str]]) -> int:
    """All examples where the role may call the field; a tenth where it meets FORBIDDEN."""
    if role in allowed.get(label, frozenset(ROLES)):
        return EXAMPLES
    return max(1, EXAMPLES // GATED_FRACTION)


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHOWN_VALUE_CHARS:
        return f"{value[:40]}... ({len(value)} characters: {value[:1]!r} * {len(value)}?)"
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    return value


def _describe(role: str, document: str, variables: dict[str, Any]) -> str:
    return (
        f"as {role}:\n{_shorten_document(document)}\n"
        f"variables: {json.dumps(_shorten(variables), ensure_ascii=False)}"
    )


class _ShortStrings(graphql.Visitor):
    def enter_string_value(self, node: graphql.StringValueNode, *_: Any) -> Any:
        if len(node.value) <= SHOWN_VALUE_CHARS:
            return None
        return graphql.StringValueNode(
            value=f"{node.value[:40]}... (a string of {len(node.value)} characters)"
        )


def _shorten_document(document: str) -> str:
    """The document with each huge string literal cut, and said so."""
    try:
        tree = graphql.parse(document)
    except graphql.GraphQLError:
        return document[:SHOWN_RESPONSE_CHARS]
    return graphql.print_ast(graphql.visit(tree, _ShortStrings()))


def render(role: str, findings: Findings, seconds: float) -> str:
    failures = sorted(findings.by_signature.values(), key=lambda item: item.signature)
    lines = [
        f"GraphQL fuzzing as {role}: {findings.cases} cases ({findings.executed} executed,"
        f" the rest refused before execution) in {seconds:.0f} s"
        f" ({findings.app_seconds:.0f} s of it in the app), {findings.unauthenticated} HTTP 401,"
        f" {len(failures)} distinct failure(s).",
        "Each shows its shortest reproducer: POST /graphql with this document and variables"
        " as the caller shown. In variables, a string"
        f' "{DEEP_JSON}N" stands for N nested objects {{"a": {{"a": ... 1}}}}.',
    ]
    for number, item in enumerate(failures, 1):
        lines += [
            "",
            f"[{number}] {item.signature}  (seen {item.count}x)",
            f"    what:      {item.what}",
            f"    caller:    {item.role}",
            "    document:",
            *("        " + line for line in _shorten_document(item.document).splitlines()),
            f"    variables: {json.dumps(_shorten(item.variables), ensure_ascii=False)}",
            f"    response:  {item.response}",
        ]
        if item.previous:
            lines += [
                "    request before:",
                *("        " + line for line in item.previous.splitlines()),
            ]
        if item.detail:
            lines += ["    traceback:", *("        " + line for line in item.detail.splitlines())]
    return "\n".join(lines)


def fuzz_operation(
    runner: asyncio.Runner,
    harness: Harness,
    role: str,
    operation: Any,
    findings: Findings,
    logs: _Collect,
    examples: int,
) -> None:
    client_schema = operation.schema.client_schema

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        document, variables = hoist_arguments(
            case.body,
            client_schema,
            lambda name: data.draw(st.booleans(), label=f"${name} as a variable"),
        )
        logs.records.clear()
        previous = harness.last_request
        sent = time.perf_counter()
        try:
            outcome: httpx.Response | BaseException = runner.run(
                harness.send(role, document, variables)
            )
        except Exception as error:
            outcome = error
        findings.app_seconds += time.perf_counter() - sent
        findings.count(outcome)
        found = judge(operation.label, role, document, variables, outcome, logs.records)
        if found is not None:
            if "in _authenticate" in found.detail:
                found.what += (
                    " -- while authenticating, before the document was read: the request before"
                    " (shown) probably left a broken connection in the pool"
                )
                found.previous = _describe(*previous)
            # A fresh pool, so that a connection this case broke fails no case after it.
            runner.run(harness.db.dispose())
            findings.add(found)

    started = time.perf_counter()
    run()
    findings.seconds[operation.label] = time.perf_counter() - started


@pytest.fixture(scope="module")
def operations() -> list[Any]:
    return _load_operations()


@pytest.fixture(scope="module")
def roles_allowed() -> dict[str, frozenset[str]]:
    return _roles_allowed()


@pytest.mark.parametrize("role", ROLES)
def test_fuzz(
    role: str,
    operations: list[Any],
    roles_allowed: dict[str, frozenset[str]],
    sqlite_template: Path,
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    findings = Findings()
    with asyncio.Runner() as runner, captured_server_errors() as logs:
        harness = runner.run(start_harness(_database_copy(sqlite_template, tmp_path)))
        try:
            register_scalars(harness.seed)
            for operation in operations:
                examples = examples_for(role, operation.label, roles_allowed)
                fuzz_operation(runner, harness, role, operation, findings, logs, examples)
        finally:
            runner.run(harness.close())
    report = render(role, findings, time.perf_counter() - started)
    slowest = sorted(findings.seconds.items(), key=lambda item: -item[1])[:5]
    print(report.splitlines()[0])
    print("slowest operations:", ", ".join(f"{label} {sec:.1f} s" for label, sec in slowest))
    if findings.by_signature:
        pytest.fail(report, pytrace=False)


ODD_SUBJECTS = ["1", "0", "-1", "²", "١", "٣٤", "𝟗", "1" * 19, "9" * 30, "9" * 5000, " 1", ""]
"""Tried every run: digits str.isdigit accepts but int() or the database may not."""
SUBJECTS = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def test_fuzz_member_token_subjects(sqlite_template: Path, tmp_path: Path) -> None:
    """Correctly signed member tokens with odd ``sub`` claims: 200 or 401, never a 5xx."""
    findings = Findings()
    document = "query Me { me { id externalId points { available } } }"
    with asyncio.Runner() as runner:
        harness = runner.run(start_harness(_database_copy(sqlite_template, tmp_path)))
        template, _ = auth.issue_member_token(
            member_id=1, secret=TEST_SECRET_KEY, ttl=timedelta(minutes=5)
        )
        claims = jwt.decode(template, options={"verify_signature": False})

        def check(subject: Any) -> None:
            caller = f"a member token signed with the right key, sub={subject!r}"
            harness.tokens[caller] = jwt.encode(
                {**claims, "sub": subject}, TEST_SECRET_KEY, algorithm="HS256"
            )
            try:
                outcome: httpx.Response | BaseException = runner.run(
                    harness.send(caller, document, {})
                )
            except Exception as error:
                outcome = error
            findings.count(outcome)
            found = judge("Query.me", caller[:200], document, {}, outcome, [])
            if found is not None:
                findings.add(found)

        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(subject=SUBJECTS)
        def run(subject: Any) -> None:
            check(subject)

        try:
            for subject in ODD_SUBJECTS:
                check(subject)
            run()
        finally:
            runner.run(harness.close())
    if findings.by_signature:
        pytest.fail(render("member token", findings, 0), pytrace=False)


def _response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("outcome", "fails"),
    [
        (_response(200, {"data": {"tiers": []}}), False),
        (
            _response(
                200,
                {
                    "data": {"m": None},
                    "errors": [
                        {"message": "No.", "path": ["m"], "extensions": {"code": "FORBIDDEN"}}
                    ],
                },
            ),
            False,
        ),
        (
            _response(
                200, {"data": None, "errors": [{"message": "Variable '$input' got invalid value"}]}
            ),
            False,
        ),
        (
            _response(400, {"data": None, "errors": [{"message": "Unable to parse request body"}]}),
            False,
        ),
        (
            _response(
                401,
                {
                    "data": None,
                    "errors": [{"message": "Unknown.", "extensions": {"code": "UNAUTHENTICATED"}}],
                },
            ),
            False,
        ),
        (
            _response(
                200,
                {
                    "data": None,
                    "errors": [
                        {
                            "message": "Internal error.",
                            "path": ["m"],
                            "extensions": {"code": "INTERNAL"},
                        }
                    ],
                },
            ),
            True,
        ),
        (
            _response(
                200,
                {
                    "data": None,
                    "errors": [
                        {
                            "message": "Cannot return null for non-nullable field Query.tiers.",
                            "path": ["tiers"],
                        }
                    ],
                },
            ),
            True,
        ),
        (_response(502, {}), True),
        (httpx.Response(200, text="<html>"), True),
        (RecursionError("too deep"), True),
    ],
)
def test_judge_classifies_outcomes(outcome: httpx.Response | BaseException, fails: bool) -> None:
    """The failure rule of the module docstring, on canned responses."""
    found = judge("Query.x", "admin", "{ x }", {}, outcome, [])
    assert (found is not None) == fails, found

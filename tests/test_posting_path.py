"""One posting path: only ``loyalty/ledger/`` writes the ledger's tables and the balances.

Two checks. At run time, the guard of ``tests/posting_guard.py`` sees every statement of the
session and fails it on a write from elsewhere; the first tests show it catches one, lets the
ledger's own through and ignores writes that touch no balance. Statically, a search of every
module's source for a write it could build covers code the suite does not run (or runs in a
subprocess, as the CLI tests do).
"""

import ast
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text

from loyalty.db import Database
from tests.helpers import enroll, grant
from tests.posting_guard import (
    BALANCE_COLUMNS,
    GUARD,
    LEDGER,
    LEDGER_TABLES,
    PACKAGE,
    _guarded_table,
)

WRITE = """
async def write(db, sql):
    async with db.transaction() as session:
        await session.execute(sql)
"""


def _module_at(relative: str) -> Any:
    """A function compiled as if it lived at ``loyalty/<relative>`` (the file need not exist)."""
    namespace: dict[str, Any] = {}
    exec(compile(WRITE, os.path.join(PACKAGE, relative), "exec"), namespace)
    return namespace["write"]


BALANCE_UPDATE = text("UPDATE members SET points_available = points_available + 0 WHERE id = 0")


async def test_a_balance_update_outside_the_ledger_is_caught(db: Database) -> None:
    # given a module of the members package
    write = _module_at("members/offender.py")
    # when it updates a balance, and a lot
    with GUARD.capture() as caught:
        await write(db, BALANCE_UPDATE)
        await write(db, text("UPDATE point_lots SET remaining = remaining WHERE id = 0"))
    # then both writes are recorded against it
    assert [(v.module, v.table) for v in caught] == [
        (os.path.join("loyalty", "members", "offender.py"), "members (balances)"),
        (os.path.join("loyalty", "members", "offender.py"), "point_lots"),
    ]


async def test_the_ledger_package_may_write(db: Database) -> None:
    write = _module_at("ledger/fake.py")
    before = GUARD.ledger_writes
    with GUARD.capture() as caught:
        await write(db, BALANCE_UPDATE)
    assert caught == []
    assert GUARD.ledger_writes == before + 1


async def test_other_member_columns_are_not_balance_writes(db: Database) -> None:
    write = _module_at("members/offender.py")
    with GUARD.capture() as caught:
        await write(db, text("UPDATE members SET first_name = 'x' WHERE points_available = 0"))
    assert caught == []


async def test_the_api_posts_through_the_ledger_package(admin: Any, pos: Any) -> None:
    # given a member enrolled through the API (a member row starting at zero is no posting)
    before = GUARD.ledger_writes
    with GUARD.capture() as caught:
        member_id = await enroll(pos)
        # when an admin grants points
        await grant(admin, member_id, 50)
    # then the ledger package wrote them, and nothing else did
    assert caught == []
    assert GUARD.ledger_writes > before


LEDGER_MODELS = {"LedgerTransaction", "LedgerEntry", "PointLot", "LotConsumption"}
WRITES = {"insert", "update", "delete"}


def _names(node: ast.AST) -> set[str]:
    return {
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    }


def _static_writes(tree: ast.AST) -> list[str]:
    """What in a module's source builds a write to the ledger or the balances: ``insert``,
    ``update`` or ``delete`` of a ledger model or table, ``update(Member)`` setting a balance,
    a ledger row built as an ORM object, a balance attribute assigned, SQL text writing them."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = node.func.id if isinstance(node.func, ast.Name) else None
            if called in LEDGER_MODELS:
                found.append(f"line {node.lineno}: {called}(...)")
            verb = called or (node.func.attr if isinstance(node.func, ast.Attribute) else None)
            if verb in WRITES and node.args:
                target = _names(node.args[0]) | {
                    a.value for a in ast.walk(node.args[0]) if isinstance(a, ast.Constant)
                }
                if target & (LEDGER_MODELS | set(LEDGER_TABLES)):
                    found.append(f"line {node.lineno}: {verb}({ast.unparse(node.args[0])})")
            if isinstance(node.func, ast.Attribute) and node.func.attr == "values":
                keys = {k.arg for k in node.keywords} | {
                    k.value
                    for d in node.args
                    if isinstance(d, ast.Dict)
                    for k in d.keys
                    if isinstance(k, ast.Constant)
                }
                if keys & set(BALANCE_COLUMNS) and "Member" in _names(node.func.value):
                    found.append(f"line {node.lineno}: values({sorted(keys)})")
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in BALANCE_COLUMNS:
                    found.append(f"line {node.lineno}: .{target.attr} assigned")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _guarded_table(node.value, None)
        ):
            found.append(f"line {node.lineno}: SQL text {node.value[:60]!r}")
    return found


def test_no_module_outside_the_ledger_builds_a_ledger_write() -> None:
    """The static half of the guard: it reads every module, run by the suite or not."""
    # given every module of the package outside loyalty/ledger/
    offenders = {}
    for path in Path(PACKAGE).rglob("*.py"):
        if str(path).startswith(LEDGER):
            continue
        # when its source is searched for ledger and balance writes
        found = _static_writes(ast.parse(path.read_text(), str(path)))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    # then there are none
    assert offenders == {}


def test_the_static_check_finds_each_kind_of_write() -> None:
    source = """
update(Member).where(Member.id == 1).values(points_available=Member.points_available + 1)
insert(PointLot).from_select(["member_id"], chosen)
session.add(LedgerEntry(points=1))
member.points_pending += 1
text("DELETE FROM ledger_entries")
update(Member).values(first_name=None)
"""
    assert len(_static_writes(ast.parse(source))) == 5

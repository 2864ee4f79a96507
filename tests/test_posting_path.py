"""One posting path: the guard of ``tests/posting_guard.py`` sees writes and names their module.

The guard runs over the whole session and fails it on any write to the ledger's tables or the
balances from outside ``loyalty/ledger/``; these tests show it catches one, lets the ledger's
own through, and ignores writes that touch no balance.
"""

import os
from typing import Any

from sqlalchemy import text

from loyalty.db import Database
from tests.helpers import enroll, grant
from tests.posting_guard import GUARD, PACKAGE

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

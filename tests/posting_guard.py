"""The posting-path guard: only ``loyalty.ledger`` writes the ledger's tables and the balances.

A ``before_cursor_execute`` listener on ``Engine`` (so on every engine the suite creates, the
async ones included) sees each statement as the database gets it, however it was built: ORM
flush, Core, ``text()``. A write is an ``INSERT``, ``UPDATE`` or ``DELETE`` on
``ledger_transactions``, ``ledger_entries``, ``point_lots`` or ``lot_consumptions``, an
``UPDATE members`` whose ``SET`` names a balance column, or an ``INSERT`` into ``members`` with
a balance other than zero. Each write is attributed to the innermost calling frame that lies
in this repository: under ``loyalty/`` it must be under ``loyalty/ledger/``, or it is recorded
as a violation; a frame of the tests, a benchmark or a migration ends the search (tests damage
the ledger on purpose, migrations backfill it). SQLAlchemy runs the driver in a greenlet whose
own stack ends in SQLAlchemy, so the search goes on through the parent greenlets' frames,
which hold the awaiting coroutines (the service, the resolver, the test).

``tests/conftest.py`` fails the session when any violation was recorded and lists them, with
the test that caused each one. It sees what the suite runs, which is every posting path.
"""

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import greenlet
from sqlalchemy import event
from sqlalchemy.engine import Engine

import loyalty

PACKAGE = os.path.dirname(os.path.abspath(loyalty.__file__)) + os.sep
REPOSITORY = os.path.dirname(PACKAGE.rstrip(os.sep)) + os.sep
LEDGER = PACKAGE + "ledger" + os.sep
_THIS_FILE = os.path.abspath(__file__)
RUNNER = PACKAGE + "hot_statements.py"
"""Runs statements for its callers, as SQLAlchemy does: the write is its caller's."""
LEDGER_TABLES = frozenset(
    {"ledger_transactions", "ledger_entries", "point_lots", "lot_consumptions"}
)
BALANCE_COLUMNS = (
    "points_available",
    "points_pending",
    "lifetime_earned",
    "points_redeemed",
    "points_expired",
)

_WRITE = re.compile(r'\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
_SET_CLAUSE = re.compile(r"\bSET\b(.*?)(?:\bFROM\b|\bWHERE\b|\bRETURNING\b|$)", re.I | re.S)
_ASSIGNS_BALANCE = re.compile(rf'(?<![\w."])"?(?:{"|".join(BALANCE_COLUMNS)})"?\s*=(?!=)')


@dataclass(frozen=True)
class Violation:
    module: str
    table: str
    statement: str
    test: str

    def __str__(self) -> str:
        return f"{self.module} wrote {self.table} in {self.test}: {self.statement}"


class PostingGuard:
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.ledger_writes = 0
        """Writes attributed to ``loyalty/ledger/``: proof the listener sees the suite."""
        self.test = "(outside a test)"

    def install(self) -> None:
        event.listen(Engine, "before_cursor_execute", self._before)

    def uninstall(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._before)

    @contextmanager
    def capture(self) -> Iterator[list[Violation]]:
        """Violations recorded inside the block go to the yielded list, not the session's."""
        kept = self.violations
        self.violations = []
        try:
            yield self.violations
        finally:
            self.violations = kept

    def _before(
        self, _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        table = _guarded_table(statement, context)
        if table is None:
            return
        module = _caller()
        if module is None:
            return
        if module.startswith(LEDGER):
            self.ledger_writes += 1
            return
        self.violations.append(
            Violation(
                module=os.path.relpath(module, REPOSITORY),
                table=table,
                statement=" ".join(statement.split())[:120],
                test=self.test,
            )
        )


def _guarded_table(statement: str, context: Any) -> str | None:
    """The table a write to the ledger or the balances goes to; None for anything else."""
    for match in _WRITE.finditer(statement):
        verb, table = match.group(1).split()[0].upper(), match.group(2).lower()
        if table in LEDGER_TABLES:
            return table
        if table != "members":
            continue
        if verb == "UPDATE":
            assignments = _SET_CLAUSE.search(statement, match.end())
            if assignments and _ASSIGNS_BALANCE.search(assignments.group(1)):
                return "members (balances)"
        elif verb == "INSERT" and _inserts_balance(context):
            return "members (balances)"
    return None


def _inserts_balance(context: Any) -> bool:
    """A new member row that does not start at zero points."""
    for parameters in getattr(context, "compiled_parameters", None) or [{}]:
        if any(parameters.get(column) for column in BALANCE_COLUMNS):
            return True
    return False


def _frames() -> Iterator[FrameType]:
    """The calling frames, innermost first, through the greenlets SQLAlchemy's asyncio layer
    runs the driver in (a parent's suspended frame leads to the coroutines awaiting it)."""
    current: Any = greenlet.getcurrent()
    frame: FrameType | None = sys._getframe(1)
    while True:
        while frame is not None:
            yield frame
            frame = frame.f_back
        current = current.parent
        if current is None:
            return
        frame = current.gr_frame


def _caller() -> str | None:
    """The file of the innermost frame under ``loyalty/``; None when code of this repository
    outside the package (a test, a benchmark, a migration) comes first, or no code of it."""
    for frame in _frames():
        filename = frame.f_code.co_filename
        if filename in (_THIS_FILE, RUNNER):
            continue
        if filename.startswith(PACKAGE):
            return filename
        if filename.startswith(REPOSITORY) and "site-packages" not in filename:
            return None
    return None


GUARD = PostingGuard()

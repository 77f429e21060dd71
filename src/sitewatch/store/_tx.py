"""Write transactions that wait for each other instead of failing.

SQLite: a transaction opened with a plain ``BEGIN`` that reads, then writes, must upgrade its lock
mid-way; when another writer holds it, SQLite fails at once with "database is locked" whatever the
busy timeout (waiting could deadlock). Every write transaction therefore starts with
``BEGIN IMMEDIATE``: the write lock is taken first, under the busy timeout, and the BEGIN itself is
retried with back-off if the timeout runs out. PostgreSQL: every write transaction first takes one
transaction-scoped advisory lock of the store, so read-then-write steps (replace a rescanned pass,
apply a migration) never interleave.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

#: Execution option marking a connection whose transactions write.
WRITE_OPTION = "sitewatch_write"

#: Attempts at ``BEGIN IMMEDIATE`` (each waits up to the busy timeout) before giving up.
BEGIN_ATTEMPTS = 5

#: Key of the PostgreSQL advisory lock that serialises the store's write transactions.
PG_WRITE_LOCK = 0x517E


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction (committed on success, rolled back on error).

    Raises:
        sqlalchemy.exc.OperationalError: the write lock could not be had (callers turn it into a StoreError).
    """
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")
            yield conn


def _busy(e: Exception) -> bool:
    text = str(getattr(e, "orig", e)).lower()
    return "locked" in text or "busy" in text


def begin_sqlite(conn: Connection) -> None:
    """The SQLite ``begin`` hook: ``BEGIN IMMEDIATE`` for write transactions (retried), ``BEGIN`` for
    reads."""
    if not conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN")
        return
    for attempt in range(1, BEGIN_ATTEMPTS + 1):
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as e:
            if not _busy(e) or attempt == BEGIN_ATTEMPTS:
                raise
            wait = 0.05 * 2**attempt * (1 + random.random())  # noqa: S311 - jitter, not security
            log.info("store busy (attempt %d of %d), retrying in %.2f s", attempt, BEGIN_ATTEMPTS, wait)
            time.sleep(wait)

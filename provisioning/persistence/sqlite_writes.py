"""One SQLite writer at a time per process, handed over at once instead of slept for.

SQLite lets one connection write at a time. A connection that finds the write lock taken
waits in SQLite's busy handler, which sleeps and retries with growing pauses (1, 2, 5 …
up to 100 ms) however soon the lock is free. With a hundred workflows writing their steps
that handler is where the time goes: in a bulk run of 100 requests, one system-database
write in a hundred took 0.6 to 1 s and the slowest 3 s, while a write itself takes well under
a millisecond.

``serialized_writes`` returns a ``sqlite3.Connection`` subclass, for ``sqlite3.connect``'s
``factory`` argument, whose connections first take a lock shared by every connection of
that class, in this process, before they start to write; the lock is given back when the
transaction ends. Writers in this process then queue on a lock that wakes the next one the
moment it is released, and only writers in *other* processes (the CLI next to the server)
meet SQLite's busy handler. Reads never take the lock: in WAL mode they do not block.

A connection that cannot get the lock within ``wait_s`` (a writer that never ended its
transaction) writes without it, so the lock can make writes slower, never stuck: SQLite's
busy timeout still applies.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["is_write", "serialized_writes"]

logger = logging.getLogger(__name__)

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_WRITE_BEGINS = ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")


def is_write(sql: str) -> bool:
    """Whether ``sql`` takes SQLite's write lock (a change, or a ``BEGIN IMMEDIATE``).

    A write it misses (one behind a ``WITH``, say) only goes through SQLite's busy handler,
    as every write did before; a read taken for a write would queue for nothing.
    """
    head = " ".join(sql.lstrip().split()[:2]).upper()
    return head.startswith(_WRITES) or head.startswith(_WRITE_BEGINS)


def serialized_writes(wait_s: float) -> type[sqlite3.Connection]:
    """A connection class whose connections write one at a time (see the module)."""
    lock = threading.Lock()

    class SerializedCursor(sqlite3.Cursor):
        connection: SerializedConnection

        def execute(self, sql: str, parameters: Any = (), /) -> SerializedCursor:
            with self.connection.writing(sql):
                super().execute(sql, parameters)
            return self

        def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> SerializedCursor:
            with self.connection.writing(sql):
                super().executemany(sql, seq_of_parameters)
            return self

    class SerializedConnection(sqlite3.Connection):
        _holds_lock = False

        def cursor(self, factory: Any = None) -> Any:
            return super().cursor(factory or SerializedCursor)

        # The C ``execute`` shortcuts make their cursor without calling ``cursor()``.
        def execute(self, sql: str, parameters: Any = (), /) -> SerializedCursor:
            cursor: SerializedCursor = self.cursor()
            return cursor.execute(sql, parameters)

        def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> SerializedCursor:
            cursor: SerializedCursor = self.cursor()
            return cursor.executemany(sql, seq_of_parameters)

        @contextmanager
        def writing(self, sql: str) -> Iterator[None]:
            if is_write(sql):
                self.take_lock()
            try:
                yield
            finally:
                # A write outside a transaction (autocommit), or one that failed before
                # its transaction began, is over now.
                self.give_back_lock()

        def take_lock(self) -> None:
            # Also inside a read transaction: its first write needs the write lock too.
            if self._holds_lock:
                return
            self._holds_lock = lock.acquire(timeout=wait_s)
            if not self._holds_lock:
                logger.warning("no SQLite write turn after %.0f s; writing without one", wait_s)

        def give_back_lock(self, *, even_in_transaction: bool = False) -> None:
            if self._holds_lock and (even_in_transaction or not self.in_transaction):
                self._holds_lock = False
                lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.give_back_lock()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.give_back_lock()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.give_back_lock(even_in_transaction=True)

    return SerializedConnection

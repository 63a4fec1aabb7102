"""Writers of one process take turns on a lock instead of in SQLite's busy handler.

Every connection here has SQLite's busy timeout at 0: a writer that met the write lock
held would fail at once with "database is locked". So a second writer that succeeds after
the first commits proves it waited its turn on the lock, not in SQLite.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from provisioning.persistence.sqlite_writes import is_write, serialized_writes

JOIN_S = 10.0


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "writes.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE t (x INTEGER)")
    return path


class Connections:
    def __init__(self, database: Path, wait_s: float) -> None:
        self._database = database
        self._factory = serialized_writes(wait_s=wait_s)
        self._opened: list[sqlite3.Connection] = []

    def open(
        self, *, isolation_level: Literal["IMMEDIATE"] | None = "IMMEDIATE"
    ) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._database,
            factory=self._factory,
            isolation_level=isolation_level,
            check_same_thread=False,
            timeout=0,
        )
        self._opened.append(connection)
        return connection

    def close(self) -> None:
        for connection in self._opened:
            connection.close()


@pytest.fixture
def connections(database: Path) -> Iterator[Connections]:
    opened = Connections(database, wait_s=JOIN_S)
    yield opened
    opened.close()


def _in_thread(work: object) -> tuple[threading.Thread, list[BaseException], threading.Event]:
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors, done


def _rows(database: Path) -> list[int]:
    with sqlite3.connect(database) as reader:
        return sorted(x for (x,) in reader.execute("SELECT x FROM t"))


def test_a_second_writer_waits_for_the_first_to_commit(
    connections: Connections, database: Path
) -> None:
    first, second = connections.open(), connections.open()
    first.execute("INSERT INTO t VALUES (1)")  # holds the write lock until its commit

    def write() -> None:
        second.execute("INSERT INTO t VALUES (2)")
        second.commit()

    thread, errors, done = _in_thread(write)
    assert not done.wait(0.2), "the second writer went ahead while the first held the lock"
    first.commit()
    thread.join(JOIN_S)

    assert errors == []
    assert _rows(database) == [1, 2]


def test_readers_do_not_wait_for_a_writer(connections: Connections) -> None:
    writer, reader = connections.open(), connections.open()
    writer.execute("INSERT INTO t VALUES (1)")
    seen: list[int] = []

    def read() -> None:
        seen.extend(x for (x,) in reader.execute("SELECT x FROM t"))

    thread, errors, done = _in_thread(read)
    assert done.wait(JOIN_S), "a read waited for the writer's transaction"
    thread.join(JOIN_S)
    writer.commit()

    assert errors == []
    assert seen == []  # the writer had not committed yet


@pytest.mark.parametrize("ending", ["rollback", "close", "failed statement"])
def test_the_turn_is_given_back_however_the_transaction_ends(
    connections: Connections, database: Path, ending: str
) -> None:
    first = connections.open()
    first.execute("INSERT INTO t VALUES (1)")
    if ending == "rollback":
        first.rollback()
    elif ending == "close":
        first.close()
    else:
        first.rollback()
        with pytest.raises(sqlite3.OperationalError):
            first.execute("INSERT INTO no_such_table VALUES (1)")

    second = connections.open()
    second.execute("INSERT INTO t VALUES (2)")
    second.commit()

    assert _rows(database) == [2]


def test_an_explicit_begin_immediate_takes_the_turn(
    connections: Connections, database: Path
) -> None:
    # The store turns pysqlite's implicit BEGIN off and issues its own.
    first = connections.open(isolation_level=None)
    first.execute("BEGIN IMMEDIATE")
    second = connections.open(isolation_level=None)

    def write() -> None:
        second.execute("BEGIN IMMEDIATE")
        second.execute("INSERT INTO t VALUES (2)")
        second.execute("COMMIT")

    thread, errors, done = _in_thread(write)
    assert not done.wait(0.2)
    first.execute("INSERT INTO t VALUES (1)")
    first.execute("COMMIT")
    thread.join(JOIN_S)

    assert errors == []
    assert _rows(database) == [1, 2]


def test_a_turn_never_given_back_slows_writers_but_does_not_stop_them(
    database: Path,
) -> None:
    stuck = Connections(database, wait_s=0.2)
    try:
        holder = stuck.open()
        holder.execute("INSERT INTO t VALUES (1)")
        holder.commit()
        # A connection that took the turn and then lost track of it (no commit, no close
        # reached the lock): the next writer waits wait_s, then meets SQLite as before.
        holder.take_lock()  # type: ignore[attr-defined]
        other = stuck.open()
        other.execute("INSERT INTO t VALUES (2)")
        other.commit()
    finally:
        stuck.close()

    assert _rows(database) == [1, 2]


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ("INSERT INTO t VALUES (1)", True),
        ("  update t SET x = 2", True),
        ("DELETE FROM t", True),
        ("REPLACE INTO t VALUES (1)", True),
        ("CREATE TABLE u (y)", True),
        ("BEGIN IMMEDIATE", True),
        ("begin   exclusive", True),
        ("BEGIN", False),
        ("SELECT * FROM t", False),
        ("PRAGMA journal_mode", False),
        ("COMMIT", False),
    ],
)
def test_which_statements_take_the_turn(sql: str, writes: bool) -> None:
    assert is_write(sql) is writes

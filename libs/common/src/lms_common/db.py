"""Database plumbing shared by every service: the declarative base, engines and sessions.

SQLite (WAL, busy timeout) is the zero-setup default; PostgreSQL through psycopg 3 is the real
thing. Schemas are created by each service's Alembic migrations, never by ``create_all``.
"""

from __future__ import annotations

import inspect
import select as selectors
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    MetaData,
    Select,
    Table,
    any_,
    bindparam,
    column,
    create_engine,
    event,
    func,
    insert,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql.selectable import FromClause, TableValuedAlias
from sqlalchemy.types import TypeDecorator, TypeEngine

from lms_common import metrics

# A pooled PostgreSQL connection idle longer than this is pinged before use: a firewall or a
# proxy may have dropped it without a word. Younger ones are pinged only when their socket has
# something to say (see ``_ping_if_suspect``).
PING_AFTER_IDLE_SECONDS = 10.0
# Connections are replaced after this long whatever happens, so none outlives a server's or a
# proxy's own limit on a connection's age.
RECYCLE_SECONDS = 1800

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its time zone and always handed back in UTC.

    SQLite keeps no zone, so values are normalised on the way in and out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        # SQLAlchemy 2.1 answers ``object`` for a TypeDecorator; the cursor decoder needs this.
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base of every service's models (one service per process)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def is_postgres(bind: Engine | Session) -> bool:
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


class BinaryList(list[Any]):
    """A list psycopg sends as a binary array.

    psycopg sends a plain list as an array in text, which it builds element by element in
    Python, quoting and escaping each one: twice the CPU of binary for 100 short ids, and a
    hundred times for 100 bodies of bytes. It keeps text for plain lists since text can mix
    element types; a batch's arrays never do.
    """


psycopg.adapters.register_dumper(BinaryList, ListBinaryDumper)


class BinaryArray(TypeDecorator[Sequence[Any]]):
    """``postgresql.ARRAY`` of ``item_type`` bound as a :class:`BinaryList` (PostgreSQL only).

    The statement still casts the parameter to the array type (``%(keys)s::VARCHAR[]``).
    """

    impl = postgresql.ARRAY
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Sequence[Any] | None], BinaryList | None]:
        items = self.impl_instance.bind_processor(dialect)

        def process(value: Sequence[Any] | None) -> BinaryList | None:
            if value is None:
                return None
            return BinaryList(items(value) if items else value)

        return process


def unnested(
    name: str, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[Sequence[Any]] | None = None
) -> TableValuedAlias:
    """``rows`` as a table to join on PostgreSQL: one array parameter per column, unnested.

    A ``VALUES`` list puts its rows into the statement's text, so each batch's statement is new
    to SQLAlchemy's compiled cache, to psycopg's and to the server's prepared statements: its
    compilation alone was a sixth of enrollment's CPU. Arrays keep one statement for every batch
    (a lookup of 100 keys: 0.8 ms against 4.9 with ``VALUES``, database time included), and
    travel in binary (:class:`BinaryArray`).

    Without ``rows`` the arrays are parameters named ``<name>_<column>`` whose values
    :func:`unnested_values` gives on each execution: for a statement built once and kept.
    """
    arrays = [
        bindparam(f"{name}_{column_name}", type_=BinaryArray(type_))
        if rows is None
        else bindparam(f"{name}_{column_name}", [row[n] for row in rows], type_=BinaryArray(type_), unique=True)
        for n, (column_name, type_) in enumerate(columns)
    ]
    table = func.unnest(*arrays).table_valued(*(column(column_name, type_) for column_name, type_ in columns))
    return table.render_derived(name=name)


def one_of(column: Any, name: str, *, postgres: bool) -> ColumnElement[bool]:
    """``column`` is one of the list bound as ``name`` when the statement runs: an array in
    binary on PostgreSQL (one statement text whatever the list's length), elsewhere an expanding
    ``IN``. For statements built once and kept."""
    if postgres:
        return cast(ColumnElement[bool], column == any_(bindparam(name, type_=BinaryArray(column.type))))
    return cast(ColumnElement[bool], column.in_(bindparam(name, expanding=True)))


def unnested_values(
    name: str, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[Sequence[Any]]
) -> dict[str, list[Any]]:
    """The parameters of ``unnested(name, columns)`` (built without rows) for ``rows``."""
    return {f"{name}_{column_name}": [row[n] for row in rows] for n, (column_name, _) in enumerate(columns)}


def insert_rows(session: Session, table: FromClause, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts by column key, all naming the same columns) into ``table`` (a
    model's ``__table__``).

    On PostgreSQL one statement per table and set of columns, every column an array in binary
    (``INSERT ... SELECT FROM unnest(...)``): an ``executemany`` runs the insert once per row,
    which for 100 users cost 2.7 ms of the worker's CPU and 2.9 of the server's against 1.2 and
    1.9. Python-side column defaults fill the columns the rows leave out, each value goes
    through its type's own processing, and a failed insert raises as SQLAlchemy's would.
    Elsewhere, SQLAlchemy's ``executemany``.
    """
    if not rows:
        return
    target = cast(Table, table)
    plan = _insert_plan(session, target, tuple(rows[0]))
    if plan is None:
        session.execute(insert(target), list(rows))
        return
    session.connection().exec_driver_sql(plan.sql, plan.arrays(rows))


class _InsertPlan:
    """The array insert of one table and set of given columns, and how to fill each array."""

    def __init__(self, table: Table, given: tuple[str, ...], dialect: Dialect):
        columns = [c for c in table.columns if c.key in given or _python_default(c) is not None]
        self.fill = [(c.key, c.key in given, _python_default(c), _bind_processor(c, dialect)) for c in columns]
        # Names and types from the table's own metadata, quoted by the dialect; values are parameters.
        into = f"{dialect.identifier_preparer.format_table(table)} ({', '.join(_quoted(c, dialect) for c in columns)})"
        arrays = ", ".join(f"%({c.key})b::{c.type.compile(dialect=dialect)}[]" for c in columns)
        self.sql = f"INSERT INTO {into} SELECT * FROM unnest({arrays})"  # noqa: S608

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, BinaryList]:
        parameters = {}
        for key, given, default, process in self.fill:
            values = [row[key] for row in rows] if given else [default() for _ in rows]  # type: ignore[misc]
            parameters[key] = BinaryList(values if process is None else [process(value) for value in values])
        return parameters


_INSERT_PLANS: dict[tuple[Table, tuple[str, ...], str], _InsertPlan | None] = {}


def _insert_plan(session: Session, table: Table, given: tuple[str, ...]) -> _InsertPlan | None:
    dialect = session.get_bind().dialect
    key = (table, given, dialect.name)
    if key not in _INSERT_PLANS:  # two threads building one each is harmless
        unknown = set(given) - set(table.columns.keys())
        if unknown:
            raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
        supported = dialect.name == "postgresql" and all(_default_supported(c) for c in table.columns)
        _INSERT_PLANS[key] = _InsertPlan(table, given, dialect) if supported else None
    return _INSERT_PLANS[key]


def _python_default(column: Column[Any]) -> Callable[[], Any] | None:
    """The column's Python-side default as a function of nothing, if it has one."""
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):  # type: ignore[attr-defined]
        return None
    if default.is_scalar:  # type: ignore[attr-defined]
        value = default.arg  # type: ignore[attr-defined]
        return lambda: value
    return lambda: default.arg(None)  # type: ignore[attr-defined]


def _default_supported(column: Column[Any]) -> bool:
    """Whether the array insert can fill this column as SQLAlchemy's insert would: no SQL
    expression or sequence as a default (server defaults apply either way), and no function of
    the insert's execution context, which only SQLAlchemy's own insert has to give."""
    default = column.default
    if default is None or default.is_scalar:  # type: ignore[attr-defined]
        return True
    return bool(default.is_callable) and _takes_no_context(default.arg)  # type: ignore[attr-defined]


def _takes_no_context(function: Callable[..., Any]) -> bool:
    """SQLAlchemy wraps a default function of no arguments in one that takes the context and
    ignores it (keeping the function as ``__wrapped__``); a function it did not wrap wants it."""
    wrapped = getattr(function, "__wrapped__", None)
    if wrapped is None:
        return False
    try:
        return not any(
            p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            for p in inspect.signature(wrapped).parameters.values()
        )
    except (TypeError, ValueError):  # a builtin without a signature (dict, list): called bare
        return True


def _quoted(column: Column[Any], dialect: Dialect) -> str:
    return dialect.identifier_preparer.format_column(column)


def _bind_processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or omits)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_before_savepoint(connection: Connection, _name: str) -> None:
    # pysqlite begins a transaction only before DML: a SAVEPOINT issued first would itself be
    # the outermost transaction, and releasing it would commit the unit of work early.
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN")


def _mark_checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_suspect(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Pessimistic disconnect handling at a fraction of ``pool_pre_ping``'s cost.

    A round trip on every checkout was a large share of every API request. An idle connection in
    the pool receives nothing, so when the server goes away (restart, crash, terminated backend)
    its closing message or the socket's end makes the socket readable: only then, or after a
    long idle time, is the connection pinged. A failed ping raises DisconnectionError, on which
    the pool drops the connection and checks out another (a fresh one when all are stale).
    """
    now = time.monotonic()
    idle = now - record.info.get("checked_in_at", now)  # a connection just made is not pinged
    if idle < PING_AFTER_IDLE_SECONDS and not _socket_has_news(dbapi_connection):
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as exc:
        metrics.DATABASE_DISCONNECTS.inc()
        raise DisconnectionError(f"pooled connection lost: {exc!r}") from exc


def _socket_has_news(dbapi_connection: Any) -> bool:
    """Whether an idle connection's socket is readable or closed (both mean: look closer)."""
    try:
        poller = selectors.poll()  # not select(): it fails on descriptors past 1024
        poller.register(dbapi_connection.fileno(), selectors.POLLIN | selectors.POLLPRI)
        return bool(poller.poll(0))
    except Exception:  # a closed connection has no socket; psycopg says so with its own error
        return True


def _count_lost_connection(context: ExceptionContext) -> None:
    """A connection lost in the middle of work (the pool's ping counts those lost while idle)."""
    if context.is_disconnect:
        metrics.DATABASE_DISCONNECTS.inc()


def _install_disconnect_handling(engine: Engine) -> None:
    event.listen(engine, "checkin", _mark_checked_in)
    event.listen(engine, "checkout", _ping_if_suspect)
    event.listen(engine, "handle_error", _count_lost_connection)


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL and a busy timeout, their folder is created."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "savepoint", _begin_before_savepoint)
        return engine
    options.setdefault("pool_recycle", RECYCLE_SECONDS)
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 20)
    options["connect_args"] = _with_planner_settings(options.get("connect_args", {}))
    engine = create_engine(url, **options)
    if not options.get("pool_pre_ping"):
        _install_disconnect_handling(engine)
    return engine


# PostgreSQL's default cost of a random page read (4.0) is a spinning disk's. A batch looks up
# its keys (100 event ids, users by email, runs by natural key) in tables that grow by
# thousands of rows a minute; at that default the planner takes a sequential scan of a
# few-thousand-row table over 100 index probes, a cost per batch that grows with the table
# (31 ms for one look-up of 100 ids in 3,861 source events, under load). Databases on SSD or
# in memory read a random page nearly as fast as the next one: 1.1 is the usual setting there.
PLANNER_SETTINGS = {"random_page_cost": "1.1"}


def _with_planner_settings(connect_args: dict[str, Any]) -> dict[str, Any]:
    """``connect_args`` with :data:`PLANNER_SETTINGS` as each connection's defaults; a setting
    the caller's own ``options`` name is left to it."""
    given = str(connect_args.get("options", ""))
    ours = " ".join(f"-c {name}={value}" for name, value in PLANNER_SETTINGS.items() if f"{name}=" not in given)
    return {**connect_args, "options": f"{given} {ours}".strip()} if ours else connect_args


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for units of work that only read: their statements run in autocommit mode.

    A transaction costs two round trips of its own (BEGIN, COMMIT), more than a one-statement
    read does. Under READ COMMITTED, the isolation every engine here uses, each statement
    sees its own snapshot inside a transaction too, so a read sees the same without one. A
    flush, the ORM's way to write, is refused: writes belong in a unit of work.
    """
    factory = sessionmaker(bind=engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
    event.listen(factory, "before_flush", _refuse_writes)
    return factory


def _refuse_writes(session: Session, *_args: Any) -> None:
    raise RuntimeError("a read-only session cannot write: use a unit of work")


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit when the block ends normally, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- hot reads on the DBAPI cursor --------------------------------------------------------------


AnySelect = Select[*tuple[Any, ...]]


class ReadStatement:
    """A SELECT compiled once per dialect and run on a pooled connection's own cursor (see
    :func:`raw_reads`), its rows handed back as tuples.

    For a read served hundreds of times a second, building the statement, its cache key, a
    Session and SQLAlchemy's result machinery cost several times the query itself. Here only
    the type processing stays: each column's and each bound parameter's own processors, so the
    values are those a Session would give. Parameters are passed by the statement's
    ``bindparam`` names; literal values of the statement travel with it.
    """

    def __init__(self, statement: AnySelect):
        self.statement = statement
        self._plans: dict[str, _ReadPlan] = {}

    def rows(self, reads: RawReads, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        plan = self._plans.get(reads.dialect.name)
        if plan is None:  # two threads building one each is harmless
            plan = self._plans[reads.dialect.name] = _ReadPlan(self.statement, reads.dialect)
        return plan.run(reads.cursor, params)


class RawReads:
    """One pooled connection's cursor, for :class:`ReadStatement` reads."""

    def __init__(self, dialect: Dialect, cursor: Any):
        self.dialect = dialect
        self.cursor = cursor


@contextmanager
def raw_reads(engine: Engine) -> Iterator[RawReads]:
    """A pooled connection for :class:`ReadStatement` reads, in autocommit on PostgreSQL: no
    BEGIN and COMMIT around reads (see :func:`make_read_session_factory`). A connection found
    lost is dropped from the pool, as SQLAlchemy's own execution does."""
    connection = engine.raw_connection()
    autocommit = engine.dialect.name == "postgresql"  # pysqlite begins no transaction for a SELECT
    try:
        dbapi_connection: Any = connection.driver_connection
        if autocommit:
            dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        try:
            yield RawReads(engine.dialect, cursor)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, cursor):
                metrics.DATABASE_DISCONNECTS.inc()
                connection.invalidate(exc)
            raise
        finally:
            if connection.is_valid:
                cursor.close()
                if autocommit:
                    _end_autocommit(connection)
    finally:
        connection.close()


@contextmanager
def session_cursor(session: Session) -> Iterator[Any]:
    """A cursor of the driver's connection in the session's transaction, for statements sent
    without SQLAlchemy (``COPY``, reads compiled once). Its errors are raised as SQLAlchemy
    raises a failed statement's, so the processor's handling applies: a lost connection is
    dropped from the pool and counted, as in :func:`raw_reads`."""
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor:
            yield cursor
    except driver.Error as exc:
        lost = connection.dialect.is_disconnect(exc, driver, None)
        if lost:
            metrics.DATABASE_DISCONNECTS.inc()
            connection.invalidate(exc)
        raise DBAPIError.instance(None, None, exc, type(exc), connection_invalidated=lost) from exc


def _end_autocommit(connection: PoolProxiedConnection) -> None:
    """Hand the connection back as the pool handed it out, or not at all when its state is lost."""
    dbapi_connection: Any = connection.driver_connection
    if dbapi_connection.info.transaction_status == TransactionStatus.IDLE:
        dbapi_connection.autocommit = False
    else:
        connection.invalidate()


class _ReadPlan:
    def __init__(self, statement: AnySelect, dialect: Dialect):
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.defaults = dict(compiled.params)
        self.positions = compiled.positiontup if compiled.positional else None
        self.binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in statement.selected_columns
        ]
        self.results: list[tuple[int, Callable[[Any], Any]]] = [
            (i, processor) for i, processor in enumerate(processors) if processor is not None
        ]

    def run(self, cursor: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        values = {**self.defaults, **params}
        for name, processor in self.binds.items():
            values[name] = processor(values[name])
        cursor.execute(self.sql, values if self.positions is None else [values[name] for name in self.positions])
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        if self.results:
            rows = [_processed(row, self.results) for row in rows]
        return rows


def _processed(row: tuple[Any, ...], processors: list[tuple[int, Callable[[Any], Any]]]) -> tuple[Any, ...]:
    values = list(row)
    for i, processor in processors:
        values[i] = processor(values[i])
    return tuple(values)

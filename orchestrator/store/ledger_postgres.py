"""The rollout ledger in a PostgreSQL database, for fleets driven from several machines or CI.

Tables live in their own schema, `patchring`, created on first use under an advisory lock so two
processes opening a new database at once create them once. A write is one transaction (a single
statement in autocommit, or an explicit transaction when it reads first) with
`synchronous_commit=on`, so it is durable when the call returns. One active rollout per inventory
is a unique partial index. A driver lease is taken by one conditional upsert, with the server's
clock deciding expiry (so drivers on machines whose clocks disagree still agree on it). A ledger of
an older schema version is upgraded in place on open. The only module besides `ledger_sqlite` that
holds SQL; imports psycopg, the standard library and `ledger`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from orchestrator.store.ledger import (
    ACTIVE_STATUSES,
    SCHEMA_VERSION,
    UNSET,
    ActiveRolloutError,
    BatchState,
    GateRecord,
    Lease,
    LeaseHeldError,
    LeaseHolder,
    LeaseLostError,
    LedgerError,
    NewRollout,
    Position,
    RingDeployment,
    Rollout,
    RolloutEventLog,
    RolloutStatus,
    WaitReason,
    _Unset,
    check_schema_version,
    deployment_from_row,
    deployment_row,
    gate_row,
    lease_from_row,
    lease_row,
    new_rollout_id,
    rollout_from_row,
    rollout_row,
    unknown_rollout,
    updated_rollout,
    utc_now,
)

CONNECT_TIMEOUT_SECONDS = 10
_LOCK_KEY = 0x70617463  # "patc": serializes schema creation between processes
_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)
_SCHEMA_V1 = (
    "CREATE SCHEMA IF NOT EXISTS patchring",
    "CREATE TABLE patchring.schema_version (version integer NOT NULL)",
    """CREATE TABLE patchring.rollouts (
        id text PRIMARY KEY, inventory_key text NOT NULL, commit_sha text NOT NULL,
        status text NOT NULL, wait_reason text, wait_until timestamptz, emergency_reason text,
        started_by text NOT NULL, started_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL, ring_index integer NOT NULL,
        batch_index integer NOT NULL, plan jsonb NOT NULL)""",
    f"CREATE UNIQUE INDEX rollouts_one_active ON patchring.rollouts (inventory_key) "
    f"WHERE status IN ({_ACTIVE})",
    "CREATE INDEX rollouts_by_inventory ON patchring.rollouts (inventory_key, started_at)",
    """CREATE TABLE patchring.batch_marks (
        rollout_id text NOT NULL REFERENCES patchring.rollouts (id), ring text NOT NULL,
        batch integer NOT NULL, state text NOT NULL, at timestamptz NOT NULL,
        PRIMARY KEY (rollout_id, ring, batch))""",
    """CREATE TABLE patchring.host_outcomes (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        rollout_id text NOT NULL REFERENCES patchring.rollouts (id), ring text NOT NULL,
        batch integer NOT NULL, host text NOT NULL, phase text NOT NULL, status text NOT NULL,
        detail text NOT NULL, at timestamptz NOT NULL)""",
    "CREATE INDEX host_outcomes_by_rollout ON patchring.host_outcomes (rollout_id, seq)",
    """CREATE TABLE patchring.gate_results (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        rollout_id text NOT NULL REFERENCES patchring.rollouts (id), ring text NOT NULL,
        outcome text NOT NULL, reasons jsonb NOT NULL, at timestamptz NOT NULL)""",
    """CREATE TABLE patchring.approvals (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        rollout_id text NOT NULL REFERENCES patchring.rollouts (id), ring text NOT NULL,
        who text NOT NULL, reason text NOT NULL, at timestamptz NOT NULL)""",
    """CREATE TABLE patchring.ring_deployments (
        inventory_key text NOT NULL, ring text NOT NULL, commit_sha text NOT NULL,
        rollout_id text NOT NULL REFERENCES patchring.rollouts (id), at timestamptz NOT NULL,
        PRIMARY KEY (inventory_key, ring))""",
)
_UPGRADES: dict[int, tuple[str, ...]] = {
    2: (
        """CREATE TABLE patchring.leases (
            rollout_id text PRIMARY KEY REFERENCES patchring.rollouts (id), token text NOT NULL,
            operator text NOT NULL, hostname text NOT NULL, pid integer NOT NULL, scope text,
            taken_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL)""",
    ),
    3: ("ALTER TABLE patchring.rollouts ADD COLUMN change_ticket text",),
}
"""Statements that bring a ledger of version n-1 to version n; a new ledger runs them all."""
_TAKE_LEASE = """
    INSERT INTO patchring.leases AS held
        (rollout_id, token, operator, hostname, pid, scope, taken_at, heartbeat_at, expires_at)
    SELECT %(rollout_id)s, %(token)s, %(operator)s, %(hostname)s, %(pid)s, %(scope)s,
        now.t, now.t, now.t + %(ttl)s
    FROM (SELECT clock_timestamp() AS t) AS now
    ON CONFLICT (rollout_id) DO UPDATE SET
        token = excluded.token, operator = excluded.operator, hostname = excluded.hostname,
        pid = excluded.pid, scope = excluded.scope,
        taken_at = CASE WHEN held.token = excluded.token THEN held.taken_at
                        ELSE excluded.taken_at END,
        heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
    WHERE held.expires_at <= excluded.heartbeat_at OR held.token = excluded.token
        OR held.token = %(replacing)s
    RETURNING held.*, held.heartbeat_at AS observed_at"""
_RENEW_LEASE = """
    UPDATE patchring.leases SET heartbeat_at = now.t, expires_at = now.t + %(ttl)s
    FROM (SELECT clock_timestamp() AS t) AS now
    WHERE rollout_id = %(rollout_id)s AND token = %(token)s
    RETURNING patchring.leases.*, now.t AS observed_at"""
_SELECT_LEASE = (
    "SELECT *, clock_timestamp() AS observed_at FROM patchring.leases WHERE rollout_id = %s"
)
_SELECT_ROLLOUT = "SELECT * FROM patchring.rollouts"
_Row = dict[str, Any]


class PostgresLedger(RolloutEventLog):
    """The ledger in the PostgreSQL database at `url` (`postgresql://user@host:port/db`)."""

    def __init__(self, url: str) -> None:
        self.where = redact_url(url)
        self._lock = threading.Lock()
        try:
            given = conninfo_to_dict(url)
            defaults: dict[str, str | int] = {
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": "patchring",
            }
            missing = {name: value for name, value in defaults.items() if name not in given}
            self._db: psycopg.Connection[_Row] = psycopg.connect(
                make_conninfo(url, **missing), autocommit=True, row_factory=dict_row
            )
        except psycopg.Error as exc:
            raise LedgerError(
                f"cannot connect to the ledger database {self.where}: {_first_line(exc)}",
                hint="check that the server is running and reachable, and the URL's host, port, "
                "user, password and database (postgresql://user:password@host:port/database)",
            ) from exc
        try:
            with self._errors():
                self._db.execute("SET synchronous_commit = on")
                self._db.execute("SET TIME ZONE 'UTC'")
                self._prepare_schema()
        except BaseException:
            self._db.close()
            raise

    # --- rollouts ---

    def start_rollout(self, rollout: NewRollout) -> Rollout:
        now = utc_now()
        record = Rollout(
            id=new_rollout_id(now),
            status="running",
            started_at=now,
            updated_at=now,
            **rollout.model_dump(),
        )
        try:
            self._write(*_insert("rollouts", rollout_row(record)))
        except pg_errors.UniqueViolation as exc:
            existing = self.active_rollout(rollout.inventory_key)
            if existing is None:  # pragma: no cover - a primary key clash of random ids
                raise
            raise ActiveRolloutError(existing) from exc
        return record

    def active_rollout(self, inventory_key: str) -> Rollout | None:
        rows = self._read(
            f"{_SELECT_ROLLOUT} WHERE inventory_key = %s AND status IN ({_ACTIVE})",
            (inventory_key,),
        )
        return rollout_from_row(rows[0]) if rows else None

    def get_rollout(self, rollout_id: str) -> Rollout:
        rows = self._read(f"{_SELECT_ROLLOUT} WHERE id = %s", (rollout_id,))
        if not rows:
            raise unknown_rollout(rollout_id, self.where)
        return rollout_from_row(rows[0])

    def recent_rollouts(self, inventory_key: str, limit: int = 10) -> list[Rollout]:
        rows = self._read(
            f"{_SELECT_ROLLOUT} WHERE inventory_key = %s "
            "ORDER BY started_at DESC, id DESC LIMIT %s",
            (inventory_key, limit),
        )
        return [rollout_from_row(row) for row in rows]

    def update_rollout(
        self,
        rollout_id: str,
        *,
        status: RolloutStatus | _Unset = UNSET,
        position: Position | _Unset = UNSET,
        wait_reason: WaitReason | _Unset | None = UNSET,
        wait_until: datetime | _Unset | None = UNSET,
        expect: Collection[str] | None = None,
    ) -> Rollout:
        changes = {
            "status": status,
            "position": position,
            "wait_reason": wait_reason,
            "wait_until": wait_until,
        }
        try:
            with self._lock, self._errors(), self._db.transaction():
                row = self._db.execute(
                    f"{_SELECT_ROLLOUT} WHERE id = %s FOR UPDATE", (rollout_id,)
                ).fetchone()
                if row is None:
                    raise unknown_rollout(rollout_id, self.where)
                record = updated_rollout(rollout_from_row(row), changes, utc_now(), expect)
                values = rollout_row(record)
                assignments = ", ".join(f"{name} = %({name})s" for name in values if name != "id")
                self._db.execute(
                    f"UPDATE patchring.rollouts SET {assignments} WHERE id = %(id)s", values
                )
        except pg_errors.UniqueViolation as exc:
            existing = self.active_rollout(record.inventory_key)
            if existing is None:  # pragma: no cover
                raise
            raise ActiveRolloutError(existing) from exc
        return record

    # --- batches, hosts, gates, approvals ---

    def mark_batch(self, rollout_id: str, ring: str, batch: int, state: BatchState) -> None:
        if state not in ("started", "completed"):
            raise ValueError(f"not a batch state: {state!r}")
        self._write_for(
            rollout_id,
            "INSERT INTO patchring.batch_marks (rollout_id, ring, batch, state, at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (rollout_id, ring, batch) "
            "DO UPDATE SET state = excluded.state, at = excluded.at",
            (rollout_id, ring, batch, state, utc_now()),
        )

    def completed_batches(self, rollout_id: str) -> set[tuple[str, int]]:
        rows = self._read(
            "SELECT ring, batch FROM patchring.batch_marks "
            "WHERE rollout_id = %s AND state = 'completed'",
            (rollout_id,),
        )
        return {(row["ring"], row["batch"]) for row in rows}

    # --- ring deployments ---

    def set_ring_deployment(
        self, inventory_key: str, ring: str, commit: str, rollout_id: str
    ) -> None:
        deployment = RingDeployment(
            inventory_key=inventory_key,
            ring=ring,
            commit=commit,
            rollout_id=rollout_id,
            at=utc_now(),
        )
        self._write_for(rollout_id, *_upsert_deployment(deployment))

    def ring_deployments(self, inventory_key: str) -> dict[str, RingDeployment]:
        rows = self._read(
            "SELECT * FROM patchring.ring_deployments WHERE inventory_key = %s ORDER BY ring",
            (inventory_key,),
        )
        deployments = [deployment_from_row(row) for row in rows]
        return {deployment.ring: deployment for deployment in deployments}

    def record_gate_passed(
        self, rollout_id: str, inventory_key: str, ring: str, commit: str, reasons: Sequence[str]
    ) -> None:
        now = utc_now()
        gate = GateRecord(
            rollout_id=rollout_id, ring=ring, outcome="passed", reasons=tuple(reasons), at=now
        )
        deployment = RingDeployment(
            inventory_key=inventory_key, ring=ring, commit=commit, rollout_id=rollout_id, at=now
        )
        try:
            with self._lock, self._errors(), self._db.transaction():
                self._db.execute(*_insert("gate_results", gate_row(gate)))
                self._db.execute(*_upsert_deployment(deployment))
        except pg_errors.ForeignKeyViolation as exc:
            raise unknown_rollout(rollout_id, self.where) from exc

    # --- the driver lease ---

    def take_lease(
        self, rollout_id: str, holder: LeaseHolder, ttl: timedelta, *, replacing: str | None = None
    ) -> Lease:
        values = {**lease_row(rollout_id, holder), "ttl": ttl, "replacing": replacing}
        for _ in range(3):  # a holder that releases between our two statements: try again
            try:
                with self._lock, self._errors():
                    row = self._db.execute(_TAKE_LEASE, values).fetchone()
                    if row is not None:
                        return lease_from_row(row, row["observed_at"])
                    held = self._db.execute(_SELECT_LEASE, (rollout_id,)).fetchone()
            except pg_errors.ForeignKeyViolation as exc:
                raise unknown_rollout(rollout_id, self.where) from exc
            if held is not None:
                raise LeaseHeldError(lease_from_row(held, held["observed_at"]))
        raise LedgerError(  # pragma: no cover - three releases in a row
            f"could not take the lease on rollout {rollout_id}: its holder keeps changing",
            hint="try again",
        )

    def renew_lease(self, rollout_id: str, token: str, ttl: timedelta) -> Lease:
        values = {"rollout_id": rollout_id, "token": token, "ttl": ttl}
        with self._lock, self._errors():
            row = self._db.execute(_RENEW_LEASE, values).fetchone()
            if row is not None:
                return lease_from_row(row, row["observed_at"])
            held = self._db.execute(_SELECT_LEASE, (rollout_id,)).fetchone()
        now_held = lease_from_row(held, held["observed_at"]) if held else None
        raise LeaseLostError(rollout_id, now_held)

    def release_lease(self, rollout_id: str, token: str) -> None:
        self._write(
            "DELETE FROM patchring.leases WHERE rollout_id = %s AND token = %s",
            (rollout_id, token),
        )

    def lease(self, rollout_id: str) -> Lease | None:
        rows = self._read(_SELECT_LEASE, (rollout_id,))
        return lease_from_row(rows[0], rows[0]["observed_at"]) if rows else None

    # --- connection ---

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _prepare_schema(self) -> None:
        """Create the schema in one transaction, or check the version of an existing ledger and
        upgrade it if it is older (serialized between processes by an advisory lock)."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            found = self._db.execute("SELECT to_regclass('patchring.schema_version') AS t")
            if (row := found.fetchone()) is None or row["t"] is None:
                for statement in _SCHEMA_V1:
                    self._db.execute(statement)
                self._db.execute("INSERT INTO patchring.schema_version (version) VALUES (1)")
                version: int | None = 1
            else:
                read = self._db.execute("SELECT max(version) AS v FROM patchring.schema_version")
                version = (read.fetchone() or {}).get("v")
                check_schema_version(version, self.where)
            assert version is not None  # check_schema_version refuses a missing one
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _UPGRADES[target]:
                    self._db.execute(statement)
            if version < SCHEMA_VERSION:
                self._db.execute(
                    "UPDATE patchring.schema_version SET version = %s", (SCHEMA_VERSION,)
                )

    def _write(self, sql: str, params: tuple[object, ...] | Mapping[str, object]) -> None:
        """One statement, in autocommit: its own transaction, committed when this returns."""
        with self._lock, self._errors():
            self._db.execute(sql, params)

    def _write_for(
        self, rollout_id: str, sql: str, params: tuple[object, ...] | Mapping[str, object]
    ) -> None:
        try:
            self._write(sql, params)
        except pg_errors.ForeignKeyViolation as exc:
            raise unknown_rollout(rollout_id, self.where) from exc

    def _insert_for(self, rollout_id: str, table: str, row: Mapping[str, object]) -> None:
        self._write_for(rollout_id, *_insert(table, row))

    def _select_for(self, rollout_id: str, table: str) -> list[_Row]:
        rows = self._read(
            f"SELECT * FROM patchring.{table} WHERE rollout_id = %s ORDER BY seq", (rollout_id,)
        )
        return [{k: v for k, v in row.items() if k != "seq"} for row in rows]

    def _read(self, sql: str, params: tuple[object, ...]) -> list[_Row]:
        with self._lock, self._errors():
            return self._db.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.IntegrityError:
            raise
        except psycopg.OperationalError as exc:
            raise LedgerError(
                f"lost the ledger database {self.where}: {_first_line(exc)}",
                hint="check that the server is up; a write in flight either completed or left "
                "no trace, so running the command again resumes from what was recorded",
            ) from exc
        except psycopg.Error as exc:
            raise LedgerError(
                f"ledger database {self.where}: {_first_line(exc)}",
                hint="check the database user's rights on the schema 'patchring'",
            ) from exc


def _insert(table: str, row: Mapping[str, object]) -> tuple[str, Mapping[str, object]]:
    names = ", ".join(row)
    marks = ", ".join(f"%({name})s" for name in row)
    return f"INSERT INTO patchring.{table} ({names}) VALUES ({marks})", row


def _upsert_deployment(deployment: RingDeployment) -> tuple[str, Mapping[str, object]]:
    sql, values = _insert("ring_deployments", deployment_row(deployment))
    return (
        f"{sql} ON CONFLICT (inventory_key, ring) DO UPDATE SET "
        "commit_sha = excluded.commit_sha, rollout_id = excluded.rollout_id, at = excluded.at",
        values,
    )


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "(an unparsable URL)"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

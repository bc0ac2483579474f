"""The rollout ledger in one SQLite file: the default, with no server to run.

Created on first use (its folder too). WAL journal with `synchronous=FULL`, so a write is on disk
when the call returns and readers never block the writer; `busy_timeout`, so a second patchring
process waits for the lock instead of failing. Each write is one `BEGIN IMMEDIATE` transaction. One
active rollout per inventory is a unique partial index, so two processes racing cannot both win. A
lease (one driver per rollout) is taken inside one such transaction, so it is atomic. A ledger of
an older schema version is upgraded in place on open. The only module besides `ledger_postgres`
that holds SQL; imports `sqlite3`, the standard library and `ledger`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

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
    LedgerSchemaError,
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
from orchestrator.store.runs import _fix as fix_folder

BUSY_TIMEOUT_SECONDS = 60.0
_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)
_SCHEMA_V1 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE rollouts (
        id TEXT PRIMARY KEY, inventory_key TEXT NOT NULL, commit_sha TEXT NOT NULL,
        status TEXT NOT NULL, wait_reason TEXT, wait_until TEXT, emergency_reason TEXT,
        started_by TEXT NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        ring_index INTEGER NOT NULL, batch_index INTEGER NOT NULL, plan TEXT NOT NULL)""",
    f"CREATE UNIQUE INDEX rollouts_one_active ON rollouts (inventory_key) "
    f"WHERE status IN ({_ACTIVE})",
    "CREATE INDEX rollouts_by_inventory ON rollouts (inventory_key, started_at)",
    """CREATE TABLE batch_marks (
        rollout_id TEXT NOT NULL REFERENCES rollouts (id), ring TEXT NOT NULL,
        batch INTEGER NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (rollout_id, ring, batch))""",
    """CREATE TABLE host_outcomes (
        seq INTEGER PRIMARY KEY, rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        ring TEXT NOT NULL, batch INTEGER NOT NULL, host TEXT NOT NULL, phase TEXT NOT NULL,
        status TEXT NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL)""",
    "CREATE INDEX host_outcomes_by_rollout ON host_outcomes (rollout_id, seq)",
    """CREATE TABLE gate_results (
        seq INTEGER PRIMARY KEY, rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        ring TEXT NOT NULL, outcome TEXT NOT NULL, reasons TEXT NOT NULL, at TEXT NOT NULL)""",
    """CREATE TABLE approvals (
        seq INTEGER PRIMARY KEY, rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        ring TEXT NOT NULL, who TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL)""",
    """CREATE TABLE ring_deployments (
        inventory_key TEXT NOT NULL, ring TEXT NOT NULL, commit_sha TEXT NOT NULL,
        rollout_id TEXT NOT NULL REFERENCES rollouts (id), at TEXT NOT NULL,
        PRIMARY KEY (inventory_key, ring))""",
)
_UPGRADES: dict[int, tuple[str, ...]] = {
    2: (
        """CREATE TABLE leases (
            rollout_id TEXT PRIMARY KEY REFERENCES rollouts (id), token TEXT NOT NULL,
            operator TEXT NOT NULL, hostname TEXT NOT NULL, pid INTEGER NOT NULL, scope TEXT,
            taken_at TEXT NOT NULL, heartbeat_at TEXT NOT NULL, expires_at TEXT NOT NULL)""",
    ),
    3: ("ALTER TABLE rollouts ADD COLUMN change_ticket TEXT",),
}
"""Statements that bring a ledger of version n-1 to version n; a new ledger runs them all."""
_SELECT_ROLLOUT = "SELECT * FROM rollouts"
_UPSERT_DEPLOYMENT = (
    "INSERT INTO ring_deployments (inventory_key, ring, commit_sha, rollout_id, at) "
    "VALUES (:inventory_key, :ring, :commit_sha, :rollout_id, :at) "
    "ON CONFLICT (inventory_key, ring) DO UPDATE SET commit_sha = excluded.commit_sha, "
    "rollout_id = excluded.rollout_id, at = excluded.at"
)


class SqliteLedger(RolloutEventLog):
    """The ledger in the SQLite file `path`."""

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger folder {path.parent}: {exc.strerror or exc}",
                hint=fix_folder(path.parent, exc),
            ) from exc
        try:
            self._db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        self._db.row_factory = sqlite3.Row
        try:
            with self._errors():
                self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                self._db.execute("PRAGMA foreign_keys = ON")
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = FULL")
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
            with self._write() as db:
                _insert(db, "rollouts", rollout_row(record))
        except sqlite3.IntegrityError as exc:
            existing = self.active_rollout(rollout.inventory_key)
            if existing is None:  # pragma: no cover - a primary key clash of random ids
                raise
            raise ActiveRolloutError(existing) from exc
        return record

    def active_rollout(self, inventory_key: str) -> Rollout | None:
        rows = self._read(
            f"{_SELECT_ROLLOUT} WHERE inventory_key = ? AND status IN ({_ACTIVE})",
            (inventory_key,),
        )
        return rollout_from_row(dict(rows[0])) if rows else None

    def get_rollout(self, rollout_id: str) -> Rollout:
        rows = self._read(f"{_SELECT_ROLLOUT} WHERE id = ?", (rollout_id,))
        if not rows:
            raise unknown_rollout(rollout_id, str(self.path))
        return rollout_from_row(dict(rows[0]))

    def recent_rollouts(self, inventory_key: str, limit: int = 10) -> list[Rollout]:
        rows = self._read(
            f"{_SELECT_ROLLOUT} WHERE inventory_key = ? ORDER BY started_at DESC, id DESC LIMIT ?",
            (inventory_key, limit),
        )
        return [rollout_from_row(dict(row)) for row in rows]

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
            with self._write() as db:
                row = db.execute(f"{_SELECT_ROLLOUT} WHERE id = ?", (rollout_id,)).fetchone()
                if row is None:
                    raise unknown_rollout(rollout_id, str(self.path))
                current = rollout_from_row(dict(row))
                record = updated_rollout(current, changes, utc_now(), expect)
                values = _sqlite_values(rollout_row(record))
                assignments = ", ".join(f"{name} = :{name}" for name in values if name != "id")
                db.execute(f"UPDATE rollouts SET {assignments} WHERE id = :id", values)
        except sqlite3.IntegrityError as exc:
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
            "INSERT INTO batch_marks (rollout_id, ring, batch, state, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (rollout_id, ring, batch) DO UPDATE SET state = excluded.state, "
            "at = excluded.at",
            (rollout_id, ring, batch, state, _sqlite_value(utc_now())),
        )

    def completed_batches(self, rollout_id: str) -> set[tuple[str, int]]:
        rows = self._read(
            "SELECT ring, batch FROM batch_marks WHERE rollout_id = ? AND state = 'completed'",
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
        values = _sqlite_values(deployment_row(deployment))
        self._write_for(rollout_id, _UPSERT_DEPLOYMENT, values)

    def ring_deployments(self, inventory_key: str) -> dict[str, RingDeployment]:
        rows = self._read(
            "SELECT * FROM ring_deployments WHERE inventory_key = ? ORDER BY ring",
            (inventory_key,),
        )
        deployments = [deployment_from_row(dict(row)) for row in rows]
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
            with self._write() as db:
                _insert(db, "gate_results", gate_row(gate))
                db.execute(_UPSERT_DEPLOYMENT, _sqlite_values(deployment_row(deployment)))
        except sqlite3.IntegrityError as exc:
            raise unknown_rollout(rollout_id, str(self.path)) from exc

    # --- the driver lease ---

    def take_lease(
        self, rollout_id: str, holder: LeaseHolder, ttl: timedelta, *, replacing: str | None = None
    ) -> Lease:
        try:
            with self._write() as db:
                now = utc_now()
                row = db.execute("SELECT * FROM leases WHERE rollout_id = ?", (rollout_id,))
                found = row.fetchone()
                current = lease_from_row(dict(found), now) if found is not None else None
                mine = current is not None and current.holder.token in {holder.token, replacing}
                if current is not None and current.live and not mine:
                    raise LeaseHeldError(current)
                kept = current is not None and current.holder.token == holder.token
                taken_at = current.taken_at if current is not None and kept else now
                values = {
                    **lease_row(rollout_id, holder),
                    "taken_at": taken_at,
                    "heartbeat_at": now,
                    "expires_at": now + ttl,
                }
                db.execute("DELETE FROM leases WHERE rollout_id = ?", (rollout_id,))
                _insert(db, "leases", values)
        except sqlite3.IntegrityError as exc:
            raise unknown_rollout(rollout_id, str(self.path)) from exc
        return lease_from_row(values, now)

    def renew_lease(self, rollout_id: str, token: str, ttl: timedelta) -> Lease:
        with self._write() as db:
            now = utc_now()
            found = db.execute(
                "UPDATE leases SET heartbeat_at = ?, expires_at = ? "
                "WHERE rollout_id = ? AND token = ? RETURNING *",
                (_sqlite_value(now), _sqlite_value(now + ttl), rollout_id, token),
            ).fetchone()
            if found is not None:
                return lease_from_row(dict(found), now)
            other = db.execute("SELECT * FROM leases WHERE rollout_id = ?", (rollout_id,))
            current = other.fetchone()
        raise LeaseLostError(rollout_id, lease_from_row(dict(current), now) if current else None)

    def release_lease(self, rollout_id: str, token: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE rollout_id = ? AND token = ?", (rollout_id, token))

    def lease(self, rollout_id: str) -> Lease | None:
        rows = self._read("SELECT * FROM leases WHERE rollout_id = ?", (rollout_id,))
        return lease_from_row(dict(rows[0]), utc_now()) if rows else None

    # --- connection ---

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _prepare_schema(self) -> None:
        """Check the version of an existing ledger (a read: no wait for writers), or create the
        tables in one transaction (re-checked under the write lock: another process may win);
        upgrade an older ledger in one transaction the same way."""
        if not self._has_schema(self._db):
            with self._write() as db:
                if not self._has_schema(db):
                    for statement in _SCHEMA_V1:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version VALUES (1)")
                    self._upgrade(db, 1)
                    return
        version = self._version(self._db)
        check_schema_version(version, str(self.path))
        if version is not None and version < SCHEMA_VERSION:
            with self._write() as db:
                self._upgrade(db, self._version(db) or SCHEMA_VERSION)

    @staticmethod
    def _version(db: sqlite3.Connection) -> int | None:
        found: int | None = db.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return found

    @staticmethod
    def _upgrade(db: sqlite3.Connection, version: int) -> None:
        """From `version` to SCHEMA_VERSION, inside the caller's transaction."""
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _UPGRADES[target]:
                db.execute(statement)
        db.execute("UPDATE schema_version SET version = ?", (max(version, SCHEMA_VERSION),))

    def _has_schema(self, db: sqlite3.Connection) -> bool:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if tables and "schema_version" not in tables:
            raise LedgerSchemaError(
                f"{self.path} is a SQLite database but not a patchring ledger",
                hint="point the ledger at a new file; this one holds other data",
            )
        return bool(tables)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock at once (so it waits, not fails)."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def _write_for(
        self, rollout_id: str, sql: str, params: tuple[object, ...] | Mapping[str, object]
    ) -> None:
        try:
            with self._write() as db:
                db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise unknown_rollout(rollout_id, str(self.path)) from exc

    def _insert_for(self, rollout_id: str, table: str, row: Mapping[str, object]) -> None:
        try:
            with self._write() as db:
                _insert(db, table, row)
        except sqlite3.IntegrityError as exc:
            raise unknown_rollout(rollout_id, str(self.path)) from exc

    def _select_for(self, rollout_id: str, table: str) -> list[dict[str, object]]:
        rows = self._read(f"SELECT * FROM {table} WHERE rollout_id = ? ORDER BY seq", (rollout_id,))
        return [{k: v for k, v in dict(row).items() if k != "seq"} for row in rows]

    def _read(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]:
        with self._lock, self._errors():
            return self._db.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> LedgerError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            hint = "another patchring process held the ledger too long; try again when it is done"
        elif "not a database" in text or "malformed" in text:
            hint = f"{self.path} is not a readable SQLite ledger: move it away or use another path"
        elif "readonly" in text or "unable to open" in text:
            hint = f"this user may not write {self.path} or its folder: fix owner or permissions"
        else:
            hint = f"check {self.path} and the disk holding it"
        return LedgerError(f"ledger {self.path}: {text}", hint=hint)


def _insert(db: sqlite3.Connection, table: str, row: Mapping[str, object]) -> None:
    names = ", ".join(row)
    marks = ", ".join(f":{name}" for name in row)
    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", _sqlite_values(row))


def _sqlite_values(row: Mapping[str, object]) -> dict[str, object]:
    return {name: _sqlite_value(value) for name, value in row.items()}


def _sqlite_value(value: object) -> object:
    """Times as fixed-width UTC ISO text, so they sort as text and read back exactly."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value

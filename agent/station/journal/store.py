"""The journal's file: its lock, its one connection, transactions and when they are durable.

One object owns the connection; every thread goes through it, holding its lock. The file
lives in a 0700 directory, is created 0600, and uses `secure_delete`, so a job's images,
dropped once the job is terminal, are overwritten rather than left in free pages. The
other parts of the journal (outbox, jobs, cards, hand-backs, control, retention) each hold
this store and write through `tx()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from printstation.agent import contract

from .errors import JournalError, JournalLocked
from .schema import SCHEMA_VERSION, migrate

LOCK_NAME = "agent.lock"


class Signal(threading.Event):
    """An event that also calls its wakers when set.

    The publisher waits for new events inside pika's I/O loop (which must keep servicing
    heartbeats); a waker posts a thread-safe callback into that loop, so it wakes at once
    instead of polling.
    """

    def __init__(self) -> None:
        super().__init__()
        self._wakers: tuple[Callable[[], None], ...] = ()
        #: Two connections (publisher, consumer) add and remove theirs from their own
        #: threads: a read-modify-write unguarded could drop the other's waker.
        self._wakers_lock = threading.Lock()

    def add_waker(self, waker: Callable[[], None]) -> None:
        with self._wakers_lock:
            self._wakers = (*self._wakers, waker)

    def remove_waker(self, waker: Callable[[], None]) -> None:
        with self._wakers_lock:
            self._wakers = tuple(w for w in self._wakers if w is not waker)

    def set(self) -> None:
        super().set()
        for waker in self._wakers:
            waker()


def _lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on the state folder for as long as this process runs.

    `flock` is released by the kernel when the holder dies, however it dies, so a lock
    file left behind by a killed agent never blocks the next one. The holder's pid is
    written into the file, for the message the second agent gives.
    """
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise JournalLocked(
            f"another agent (pid {holder}) is running on the state folder {state_dir}; "
            "stop it first (systemctl stop printstation), or give this one its own "
            "--state-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


#: SQLite's own fsync of the journal failed (`sqlite_errorcode`): as with ours (`sync`), what
#: it wrote may be gone from the disk whatever a later fsync says.
_FAILED_SYNC = (sqlite3.SQLITE_IOERR_FSYNC, sqlite3.SQLITE_IOERR_DIR_FSYNC)


def station_fault(exc: sqlite3.Error) -> bool:
    """A failure of the station's own storage (full disk, I/O error, read-only), not a bug."""
    return isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not \
        isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError)


class Store:
    def __init__(self, state_dir: Path, station_id: str):
        self.station_id = station_id
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state_dir, 0o700)
        self.path = state_dir / "journal.sqlite3"
        self._lock_fd = _lock_state_dir(state_dir)
        #: Why the last write failed (disk full, I/O error), None once one succeeds.
        self.write_error: str | None = None
        old_umask = os.umask(0o077)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA secure_delete=ON")
            self.db.execute("PRAGMA foreign_keys=ON")
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise JournalError(
                    f"journal {self.path} is corrupt ({check}); stop the agent, move the "
                    "file aside for inspection, and restore the last backup"
                )
            migrate(self.db, self.path)
        except sqlite3.DatabaseError as exc:
            os.close(self._lock_fd)
            raise JournalError(
                f"journal {self.path} cannot be opened ({exc}); if it is corrupt, move it "
                "aside for inspection and restore the last backup"
            ) from None
        except BaseException:
            os.close(self._lock_fd)
            raise
        finally:
            os.umask(old_umask)
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                os.chmod(p, 0o600)
        self.lock = threading.RLock()
        #: Grows with every write transaction: what is read and kept (the stock counts)
        #: is kept only while it has not moved.
        self.generation = 0
        #: Events up to this seq are on disk and may be published; see `tx(durable=False)`.
        self.synced_seq = 0
        #: Write transactions committed by this process, and how many of the first are
        #: known to be on disk: -1 at first, as a killed predecessor's last commits may
        #: still be in the page cache only. Counted, not flagged, because `sync` fsyncs
        #: outside the lock and a commit may come in meanwhile.
        self._commits = 0
        #: What the transaction under way changed in memory, undone if it does not commit.
        self._undo: list[Callable[[], object]] = []
        self._on_disk = -1
        #: The last seq committed, on disk or not: read without the lock, so the publisher
        #: need not wait for a job being stored to learn whether anything waits.
        self._stored_seq = 0
        #: Guards `_on_disk` and `synced_seq` after a sync, which runs outside `lock`, and
        #: `_sync_fds`.
        self._sync_lock = threading.Lock()
        #: The log's and the database's descriptors for `sync`, opened once, closed by
        #: `close`: closing a descriptor of the database drops every POSIX lock this
        #: process holds on it, SQLite's among them (sqlite.org/howtocorrupt.html, 2.2).
        self._sync_fds: dict[str, int] = {}
        #: Why the journal cannot be trusted to be on disk any more in this run: set by
        #: the first failed fsync, for good. Linux reports a failed write-back once to
        #: each open file and drops the pages that failed, so a later fsync that succeeds
        #: proves nothing of them, and nothing committed since may be published.
        self._sync_broken: str | None = None
        self.outbox_event = Signal()
        self.job_event = threading.Event()
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                       (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', '0')")
        self.outbox_event.set()
        self.job_event.set()

    def close(self) -> None:
        with self.lock:
            try:
                with contextlib.suppress(sqlite3.Error):
                    self.sync()
                self.db.close()
            finally:
                for fd in self._sync_fds.values():
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._sync_fds.clear()
                os.close(self._lock_fd)

    @contextmanager
    def tx(self, *, durable: bool = True, wake: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction.

        A durable one is on disk when it returns: SQLite fsyncs the write-ahead log, which
        also makes every earlier commit durable. A non-durable one skips that fsync (it
        survives the agent being killed, not the machine losing power) until the next
        durable commit or `sync()`; the events it stores are not published before then, so
        nobody hears of what a power cut could still undo. It wakes the publisher, which
        makes them durable at once (`sync_events`) off the committing thread: a card's
        `printed` does not wait for the next card's start, which may be a decode away. A
        durable commit that wrote rows had SQLite fsync the write-ahead log, which holds
        every earlier commit too (a checkpoint syncs what it copies): no second fsync of
        the log and the database is added between two cards.

        `wake=False` (non-durable only) leaves the publisher asleep: the caller makes a
        durable commit at once (the printer thread, whose next card is prepared, commits
        its start), which publishes these events too; the publisher's fsync would only
        stand beside that commit's, between two cards.

        After a failed fsync (`_sync_broken`) nothing is written any more in this run: a
        commit that went in and was then reported failed would leave a job `printing`
        that never started, or the space probe's rows on a failing disk.
        """
        with self.lock:
            self._refuse_if_broken()
            self.generation += 1  # any write may change what was read: read it again
            before = self._commits
            changes = self.db.total_changes
            try:
                if not durable:
                    self.db.execute("PRAGMA synchronous=NORMAL")
                try:
                    self.db.execute("BEGIN IMMEDIATE")
                    self._undo = []
                    try:
                        yield self.db
                        self.db.execute("COMMIT")
                    except BaseException:
                        # SQLite may already have rolled back (a full disk, an I/O error).
                        if self.db.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                self.db.execute("ROLLBACK")
                        for undo in reversed(self._undo):
                            undo()
                        raise
                    finally:
                        self._undo = []
                        self.generation += 1
                finally:
                    if not durable:
                        self.db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                self._note_failed_sync(exc)
                if station_fault(exc):
                    self.write_error = self._sync_broken or str(exc)[:200]
                raise
            self.write_error = None
            # Both only after the commit: whatever `sync` reads of them (without the lock)
            # was committed before its fsync starts.
            self._commits += 1
            seq = self._stored_seq = self._last_seq()
            if not durable:
                if wake and seq > self.synced_seq:
                    self.outbox_event.set()  # the publisher syncs them (`sync_events`)
            elif self._on_disk < before and self.db.total_changes == changes:
                # SQLite skips the fsync of a commit that wrote nothing: sync explicitly.
                self.sync()
            else:
                # Every commit before had its fsync, or this one's covered them (it wrote).
                with self._sync_lock:
                    self._on_disk = self._commits
                    self._publishable(seq)

    def on_rollback(self, undo: Callable[[], object]) -> None:
        """Within `tx`: what to do in memory if the transaction does not commit (an armed
        job withdrawn in it is armed again: `ArmedJobs`)."""
        self._undo.append(undo)

    def sync(self) -> None:
        """Make every commit durable (and its events publishable) now.

        Neither the fsync nor what comes before it takes the lock (unless the caller holds
        it): a commit that comes meanwhile waits for nothing, and is covered by the next
        sync or its own fsync. The commits counted and the seq are read before the fsync
        starts, and both were committed by then, so both are on disk after it."""
        self._refuse_if_broken()
        target = self._commits
        seq = self._stored_seq
        if self._on_disk >= target and self.synced_seq >= seq:
            return
        # Commits live in the write-ahead log until a checkpoint, which syncs the log
        # before copying it and the database after; syncing both therefore covers every
        # commit up to `target`, wherever it is now.
        for name in (f"{self.path}-wal", str(self.path)):
            fd = self._sync_fd(name)
            if fd is None:
                continue
            try:
                os.fsync(fd)
            except OSError as exc:
                self._sync_broken = self.write_error = (
                    f"journal cannot be synced: {exc.strerror}; what was written since the "
                    "last sync may be lost: check the disk, then restart the agent")
                raise sqlite3.OperationalError(self._sync_broken) from None
        with self._sync_lock:
            self._on_disk = max(self._on_disk, target)
            self._publishable(seq)

    def _note_failed_sync(self, exc: sqlite3.Error) -> None:
        """SQLite's fsync failed in a commit or a checkpoint: the journal is failed as it
        is when ours fails (`_sync_broken`), and raises saying so from now on."""
        if getattr(exc, "sqlite_errorcode", None) in _FAILED_SYNC:
            self._sync_broken = self.write_error = (
                f"journal cannot be synced: {exc}; what was written since the last sync "
                "may be lost: check the disk, then restart the agent")

    def _refuse_if_broken(self) -> None:
        """After a failed fsync (`_sync_broken`) neither a write nor a sync is done."""
        if self._sync_broken is not None:
            self.write_error = self._sync_broken
            raise sqlite3.OperationalError(self._sync_broken)

    def _sync_fd(self, name: str) -> int | None:
        """The descriptor `sync` uses for `name` (kept: see `_sync_fds`); None while the
        file does not exist (the log, before the first write)."""
        with self._sync_lock:
            fd = self._sync_fds.get(name)
            if fd is None:
                try:
                    fd = os.open(name, os.O_RDONLY)
                except FileNotFoundError:
                    return None
                except OSError as exc:  # too many open files, say: try again next time
                    self.write_error = f"journal cannot be synced: {exc.strerror}"
                    raise sqlite3.OperationalError(self.write_error) from None
                self._sync_fds[name] = fd
            return fd

    def unsynced_events(self) -> bool:
        """Events are stored that are not on disk yet (committed without an fsync)."""
        return self._stored_seq > self.synced_seq

    def sync_events(self) -> None:
        """The publisher's side of `tx(durable=False)`: events stored without an fsync are
        made durable now, so that they can be published; nothing when there are none."""
        if self.unsynced_events():
            self.sync()

    def _last_seq(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0])

    def _publishable(self, seq: int) -> None:
        """Events up to `seq` are on disk: the publisher may send them."""
        if seq > self.synced_seq:
            self.synced_seq = seq
            self.outbox_event.set()

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Fold the write-ahead log into the database (TRUNCATE also empties it).

        Deleted rows are zeroed in the database (`secure_delete`), but their old pages can
        linger in the WAL until a checkpoint: the printer thread truncates it when it runs
        out of work, so a terminal job's images do not outlive it anywhere on disk.
        """
        assert mode in ("PASSIVE", "TRUNCATE")
        with self.lock:
            self._refuse_if_broken()
            try:
                self.db.execute(f"PRAGMA wal_checkpoint({mode})")
            except sqlite3.Error as exc:
                self._note_failed_sync(exc)
                raise

    def can_store(self, size: int) -> bool:
        """Whether the journal takes a message of `size` bytes now, tried for real.

        After a full disk, a small write may succeed long before a job's 300 KB would; a
        station that took jobs again on such a probe would return each one to the queue,
        and every return counts against the queue's delivery limit. So twice the size is
        written into the journal itself, committed and deleted: a journal that fails for
        another reason (an I/O error, damage) fails this too.
        """
        try:
            with self.tx() as db:
                db.execute("INSERT INTO space_probe (data) VALUES (zeroblob(?))",
                           (2 * size + 65536,))
            with self.tx() as db:
                db.execute("DELETE FROM space_probe")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error), self.lock:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            return False
        return True

    # ------------------------------------------------------------------ settings, actions

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                       "value=excluded.value", (key, value))

    def record_action(self, who: str, action: str, target: str | None, why: str | None) -> None:
        """An operator's (or the central system's) action, with who and why."""
        with self.tx() as db:
            db.execute("INSERT INTO actions (at, who, action, target, why) VALUES (?, ?, ?, ?, ?)",
                       (contract.now().isoformat(), who, action, target, why))

    def newest_created(self) -> datetime | None:
        """The central system's time as far as this station knows it (see `retention`)."""
        with self.lock:
            return newest_created(self.db)

    def ids_kept_since(self, days: float) -> datetime | None:
        """`ids_kept_since` for this journal, read now."""
        return ids_kept_since(self.newest_created(), days)


def newest_created(db: sqlite3.Connection) -> datetime | None:
    """The newest `created_at` of any job taken: the central system's clock, as signed."""
    row = db.execute("SELECT value FROM meta WHERE key='newest_created_at'").fetchone()
    return datetime.fromisoformat(row[0]) if row else None


def ids_kept_since(newest: datetime | None, days: float) -> datetime | None:
    """The oldest signed time (a job's `created_at`, a command's `issued_at`) whose ids the
    journal still holds after `days` of retention: anything older could be a replay it
    cannot tell from a new message. None before the first job."""
    return None if newest is None else newest - timedelta(days=days)

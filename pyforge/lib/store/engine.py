"""SQLite connections and transactions for one store.

A file store opens one connection per thread and per process. WAL
mode lets readers run while a writer commits. The connection is
reopened after os.fork() because SQLite connections must not cross a
fork. Every
write runs inside BEGIN IMMEDIATE, which takes the database's write
lock up front, so a read-modify-write such as $inc cannot interleave
with another process's. Transactions nest: an inner one joins the
outer one.

Each connection caches the catalog (catalog.Catalog). A transaction
checks the cache once against the schema version, so a collection or
an index that another process created or dropped is seen by the next
transaction or statement.

An in-memory store has a single connection, shared by the threads of
one process under a lock.

By default the commit that grows the WAL past SQLite's auto-checkpoint
size (1,000 pages) copies the WAL back into the database file and syncs
it, which delays that commit by milliseconds. A process that commits
often and needs low latency, such as a worker, calls
FileEngine.checkpoint_in_background() so that a thread of its own does
the copying instead.
"""

import contextlib
import logging
import os
import sqlite3
import threading

from pymongo.errors import InvalidOperation

from pyforge.lib.store import catalog

log = logging.getLogger(__name__)

# How long a write waits for another connection's write lock, in
# seconds, before sqlite3 raises OperationalError('database is locked').
BUSY_TIMEOUT = 30.0

# SQLite's own default for PRAGMA wal_autocheckpoint, in pages.
DEFAULT_AUTOCHECKPOINT = 1000

# Seconds between two checkpoints of a background checkpointer. A
# worker recording 1,000 messages a second writes about five pages a
# message (seen with bench/reactor_bench.py), so it fills SQLite's
# auto-checkpoint size in about 200 ms.
CHECKPOINT_INTERVAL = 0.1

# Held by a checkpointer thread while it runs SQLite code, and by a
# thread that calls os.fork() until the fork is done. A child forked
# while another thread holds one of SQLite's process-wide mutexes (the
# allocator's, for example) inherits it locked, so it hangs at its
# first SQLite call.
_fork_guard = threading.Lock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(before=_fork_guard.acquire,
                        after_in_parent=_fork_guard.release,
                        after_in_child=_fork_guard.release)

# Connections inherited from the parent process over os.fork(). They
# are kept referenced, never used or closed, so that garbage
# collection in the child does not close the parent's SQLite handles.
_inherited_connections = []


class _State:
    """The connection of one thread, its transaction depth and catalog."""

    __slots__ = ('connection', 'pid', 'generation', 'depth', 'writing',
                 'catalog', 'autocheckpoint')

    def __init__(self, connection, generation):
        self.connection = connection
        self.pid = os.getpid()
        self.generation = generation
        self.depth = 0
        self.writing = False
        self.catalog = catalog.Catalog(connection)
        #: The connection's PRAGMA wal_autocheckpoint, in pages.
        self.autocheckpoint = DEFAULT_AUTOCHECKPOINT


class Engine:
    """Base of the file and memory engines: transactions on a state."""

    busy_timeout = BUSY_TIMEOUT

    def _state(self):
        raise NotImplementedError

    def _lock(self):
        return contextlib.nullcontext()

    def connection(self):
        """Return the calling thread's connection, opening it if needed."""
        return self._state().connection

    @contextlib.contextmanager
    def session(self):
        """Yield the calling thread's state without opening a transaction.

        Statements run in the block each form their own transaction,
        unless the thread is inside one already. On the in-memory store
        the block holds the lock that transactions hold.
        """
        with self._lock():
            yield self._state()

    @contextlib.contextmanager
    def write(self, savepoint=False):
        """Run the block in a write transaction and yield the state.

        The outermost call runs BEGIN IMMEDIATE and commits when the
        block ends, or rolls back if it raises. A nested call joins the
        outer transaction; with savepoint=True it also rolls back its
        own writes, and only those, when its block raises.
        """
        with self._lock():
            state = self._state()
            if state.depth == 0:
                with self._outermost(state, 'BEGIN IMMEDIATE', True):
                    yield state
                return
            if not state.writing:
                raise InvalidOperation(
                    'cannot write inside a read transaction; finish '
                    'iterating the read before writing')
            state.depth += 1
            try:
                if savepoint:
                    with _savepoint(state):
                        yield state
                else:
                    yield state
            finally:
                state.depth -= 1

    @contextlib.contextmanager
    def read(self):
        """Run the block in a read transaction and yield the state.

        All reads of the block see one snapshot of the database. Inside
        a write transaction the block joins it and sees its writes.
        """
        with self._lock():
            state = self._state()
            if state.depth:
                state.depth += 1
                try:
                    yield state
                finally:
                    state.depth -= 1
                return
            with self._outermost(state, 'BEGIN', False):
                yield state

    @contextlib.contextmanager
    def _outermost(self, state, begin, writing):
        connection = state.connection
        connection.execute(begin)
        state.depth = 1
        state.writing = writing
        try:
            yield
            connection.execute('COMMIT')
        except BaseException:
            if connection.in_transaction:
                connection.execute('ROLLBACK')
            state.catalog.rolled_back()
            raise
        finally:
            state.depth = 0
            state.writing = False
            state.catalog.end_transaction()

    @contextlib.contextmanager
    def count_steps(self):
        """Count the SQLite virtual machine steps run inside the block.

        Yields a one-item list whose item is the count so far. Tests use
        it to show that a lookup does not scan: the count depends on the
        query plan and not on timing.
        """
        connection = self.connection()
        counter = [0]

        def count():
            counter[0] += 1
            return 0

        connection.set_progress_handler(count, 1)
        try:
            yield counter
        finally:
            connection.set_progress_handler(None, 1)


@contextlib.contextmanager
def _savepoint(state):
    connection = state.connection
    name = 'store_%d' % state.depth
    connection.execute('SAVEPOINT %s' % name)
    try:
        yield
    except BaseException:
        connection.execute('ROLLBACK TO %s' % name)
        connection.execute('RELEASE %s' % name)
        state.catalog.rolled_back()
        raise
    connection.execute('RELEASE %s' % name)


class FileEngine(Engine):
    """Connections to one SQLite database file."""

    def __init__(self, path):
        self.path = path
        self._local = threading.local()
        self._guard = threading.Lock()
        self._generation = 0
        self._opened = []
        self._checkpointer = None

    def _state(self):
        state = getattr(self._local, 'state', None)
        if state is None or state.pid != os.getpid() \
                or state.generation != self._generation:
            if state is not None and state.pid != os.getpid():
                _inherited_connections.append(state.connection)
            state = _State(self._open(), self._generation)
            self._local.state = state
        if state.depth == 0:
            self._set_autocheckpoint(state)
        return state

    def _set_autocheckpoint(self, state):
        checkpointer = self._checkpointer
        # A checkpointer thread does not survive os.fork(), so a child
        # process checkpoints on commit again until it starts its own.
        setting = (0 if checkpointer is not None
                   and checkpointer.pid == state.pid
                   else DEFAULT_AUTOCHECKPOINT)
        if state.autocheckpoint != setting:
            state.connection.execute('PRAGMA wal_autocheckpoint=%d'
                                     % setting)
            state.autocheckpoint = setting

    def checkpoint_in_background(self, interval=CHECKPOINT_INTERVAL):
        """Checkpoint the WAL every `interval` seconds in a thread of this
        process, and no longer on this process's commits.

        Other processes keep checkpointing on commit. A second call in
        the same process does nothing; close() stops the thread.
        """
        with self._guard:
            current = self._checkpointer
            if current is not None and current.pid == os.getpid():
                return
            self._checkpointer = _Checkpointer(self.path, interval)
            self._checkpointer.start()

    def _open(self):
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None,
            check_same_thread=False)
        # WAL lets readers run while one writer commits; NORMAL sync in
        # WAL mode can lose the last commits on power loss, not corrupt.
        connection.execute('PRAGMA journal_mode=WAL')
        connection.execute('PRAGMA synchronous=NORMAL')
        catalog.create_catalog(connection)
        with self._guard:
            self._opened.append((os.getpid(), connection))
        log.debug('opened SQLite store %s in process %d, thread %s',
                  self.path, os.getpid(), threading.current_thread().name)
        return connection

    def close(self):
        """Close this process's connections and stop its background
        checkpointer; later calls reopen connections."""
        with self._guard:
            opened, self._opened = self._opened, []
            self._generation += 1
            checkpointer, self._checkpointer = self._checkpointer, None
        pid = os.getpid()
        if checkpointer is not None and checkpointer.pid == pid:
            checkpointer.stop()
        for owner, connection in opened:
            if owner == pid:
                connection.close()


class _Checkpointer(threading.Thread):
    """A daemon thread that checkpoints one database file's WAL.

    PASSIVE checkpoints neither wait for nor block readers and writers.
    Once a checkpoint has copied every frame, the next write transaction
    starts the WAL over from its beginning, so the file stops growing.
    """

    def __init__(self, path, interval):
        super().__init__(name='sqlite-checkpoint', daemon=True)
        self.path = path
        self.interval = interval
        self.pid = os.getpid()
        self._stopped = threading.Event()
        self._failures = 0

    def run(self):
        with _fork_guard:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT,
                                         isolation_level=None,
                                         check_same_thread=False)
        try:
            while not self._stopped.wait(self.interval):
                with _fork_guard:
                    self._checkpoint(connection)
            # Copy the rest back, so that the next process to open the file
            # has no WAL frames left to read.
            with _fork_guard:
                self._checkpoint(connection)
        finally:
            with _fork_guard:
                connection.close()

    def stop(self, timeout=5.0):
        """Stop after one last checkpoint; wait up to `timeout` seconds."""
        self._stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout)

    def _checkpoint(self, connection):
        try:
            connection.execute('PRAGMA wal_checkpoint(PASSIVE)').fetchall()
        except sqlite3.Error as exc:
            self._failures += 1
            # Logged on the first failure and then every hundredth, so
            # that a file gone for good does not flood the log. The WAL
            # only grows meanwhile; no write is lost.
            if self._failures % 100 == 1:
                log.warning('checkpointing %s failed (%d time(s)): %s',
                            self.path, self._failures, exc)
            return
        self._failures = 0


class MemoryEngine(Engine):
    """A private in-memory database, shared by the threads of a process.

    The process-wide lock is re-entrant, so a thread in a transaction
    can run store calls, and other threads wait for the transaction to
    end for at most busy_timeout seconds.
    """

    path = ':memory:'

    def __init__(self):
        self._pid = os.getpid()
        self._mutex = threading.RLock()
        connection = sqlite3.connect(
            ':memory:', isolation_level=None, check_same_thread=False)
        catalog.create_catalog(connection)
        self._shared = _State(connection, 0)

    @contextlib.contextmanager
    def _lock(self):
        if not self._mutex.acquire(timeout=self.busy_timeout):
            raise sqlite3.OperationalError(
                'database is locked: another thread kept the in-memory '
                'store for more than %s seconds' % self.busy_timeout)
        try:
            yield
        finally:
            self._mutex.release()

    def _state(self):
        if os.getpid() != self._pid:
            raise InvalidOperation(
                'an in-memory store cannot be used after os.fork(); use '
                'a sqlite:/// file URL to share a store between processes')
        if self._shared is None:
            raise InvalidOperation(
                'this in-memory store was closed and its documents '
                'discarded; call connect() again for a new one')
        return self._shared

    def connection(self):
        """Return the shared connection; hold the lock while using it."""
        with self._lock():
            return self._state().connection

    def close(self):
        """Close the database, which discards every document in it."""
        with self._lock():
            if self._shared is not None:
                self._shared.connection.close()
                self._shared = None

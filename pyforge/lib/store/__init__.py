"""pyforge's document store: MongoDB, mongomock or embedded SQLite.

connect() takes a store URL and returns an object with the part of
pymongo's Database API that pyforge uses. transaction() groups writes
on the SQLite store into one atomic transaction. docs/store.md
describes the URLs, the supported API and the limits.
"""

import contextlib
import logging
import os
import sqlite3
import urllib.parse
import weakref

import pymongo
import pymongo.database
import pymongo.errors

from pyforge.exceptions import ConfigurationError
from pyforge.lib.store import engine, sqlite

__all__ = ['DEFAULT_DATABASE', 'SUPPORTED_SCHEMES', 'TRANSIENT_ERRORS',
           'checkpoint_in_background', 'connect', 'transaction']

log = logging.getLogger(__name__)

DEFAULT_DATABASE = 'pyforge'
SUPPORTED_SCHEMES = ('mongodb', 'mongodb+srv', 'mongomock', 'sqlite')

# One engine per database file in this process, so that every Database
# on a file shares the thread's connection and its transaction.
_file_engines = weakref.WeakValueDictionary()


#: Errors of a database that is unreachable or busy for now, after which
#: the same work may succeed: a MongoDB connection failure, or a SQLite
#: file still locked by another process after the busy timeout.
TRANSIENT_ERRORS = (pymongo.errors.ConnectionFailure,
                    sqlite3.OperationalError)


def connect(url, database=None):
    """Return a database object for a store URL.

    mongodb:// and mongodb+srv:// give a pymongo Database named by the
    URL's path, else by database, else 'pyforge'. mongomock://[name]
    gives a new mongomock database. sqlite:///absolute/path/file.sqlite
    opens a SQLite store file, creating the file and its folders.
    sqlite:// and sqlite:///:memory: give a new, empty in-memory store.
    A SQLite database is named database, else 'pyforge'.

    Raises ConfigurationError for an invalid or unsupported URL, with
    any password in the URL masked.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(
            'store URL must be a non-empty string, got %r; supported '
            'schemes: %s' % (url, _schemes()))
    scheme, separator, rest = url.partition('://')
    scheme = scheme.lower()
    if not separator or scheme not in SUPPORTED_SCHEMES:
        raise ConfigurationError(
            'unsupported store URL %r; supported schemes: %s'
            % (mask_password(url), _schemes()))
    if scheme == 'sqlite':
        return _connect_sqlite(url, rest, database)
    if scheme == 'mongomock':
        return _connect_mongomock(rest, database)
    return _connect_mongodb(url, database)


def checkpoint_in_background(db):
    """Take WAL checkpoints of a SQLite store file off this process's
    commits, into a thread; do nothing for other stores.

    Workers call it so that the commit that fills the WAL is not delayed
    while the WAL is copied back and synced.
    """
    if isinstance(db, sqlite.Database) \
            and isinstance(db._engine, engine.FileEngine):
        db._engine.checkpoint_in_background()


@contextlib.contextmanager
def transaction(db):
    """Run the block's writes to db as one transaction; yield db.

    On the SQLite store the block runs in one BEGIN IMMEDIATE ...
    COMMIT transaction that rolls back if the block raises. A nested
    transaction() joins the outer one: its writes commit with the
    outer block, and if the nested block raises, only its own writes
    roll back. On MongoDB and mongomock the block runs without a
    transaction, because MongoDB offers multi-document transactions
    only on replica sets.
    """
    if isinstance(db, sqlite.Database):
        with db._engine.write(savepoint=True):
            yield db
        return
    if not _is_mongo_database(db):
        raise TypeError(
            'transaction() needs a database returned by connect(), '
            'got %r' % (db,))
    yield db


def mask_password(url):
    """Return url with the password of its user information masked.

    Masks from the first ':' after '//' to the last '@', so a password
    containing '@', '/', '?' or '#' is masked whole. A URL whose query
    holds an '@' may be masked more than needed, never less.
    """
    scheme, separator, rest = url.partition('://')
    if not separator:
        return url
    at = rest.rfind('@')
    if at == -1:
        return url
    colon = rest.find(':', 0, at)
    if colon == -1:
        return url
    return '%s://%s:***%s' % (scheme, rest[:colon], rest[at:])


def _schemes():
    return ', '.join('%s://' % scheme for scheme in SUPPORTED_SCHEMES)


def _connect_sqlite(url, rest, database):
    name = database or DEFAULT_DATABASE
    path = urllib.parse.unquote(rest)
    if rest in ('', '/:memory:'):
        log.debug('opened in-memory store, database %s', name)
        return sqlite.Database(engine.MemoryEngine(), name)
    if not rest.startswith('/'):
        # A relative path would depend on the working directory of each
        # process, so two processes could silently use two stores.
        raise ConfigurationError(
            'invalid store URL %r: a sqlite URL takes an absolute path '
            'after three slashes, like sqlite:///var/lib/pyforge/store.'
            'sqlite, or nothing (sqlite://) for an in-memory store'
            % mask_password(url))
    if '?' in rest or path.endswith('/'):
        raise ConfigurationError(
            'invalid store URL %r: a sqlite URL must end with a file name '
            'and takes no query parameters' % mask_password(url))
    return sqlite.Database(_file_engine(url, path), name)


def _file_engine(url, path):
    path = os.path.realpath(path)
    found = _file_engines.get(path)
    if found is not None:
        return found
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        file_engine = engine.FileEngine(path)
        file_engine.connection()
    except (OSError, sqlite3.Error) as error:
        raise ConfigurationError(
            'cannot open the SQLite store of URL %r at %s: %s; check that '
            'the path is a writable file or a new name'
            % (mask_password(url), path, error)) from error
    _file_engines[path] = file_engine
    log.debug('opened SQLite store %s', path)
    return file_engine


def _connect_mongomock(rest, database):
    try:
        import mongomock
    except ImportError as error:
        raise ConfigurationError(
            'mongomock:// needs the mongomock package, which is not '
            'installed; install it with "pip install mongomock" or '
            '"pip install pyforge[test]"') from error
    name = urllib.parse.unquote(rest.strip('/')) or database
    return mongomock.MongoClient()[name or DEFAULT_DATABASE]


def _connect_mongodb(url, database):
    try:
        client = pymongo.MongoClient(url)
        return client.get_default_database(database or DEFAULT_DATABASE)
    except (pymongo.errors.ConfigurationError, ValueError) as error:
        raise ConfigurationError(
            'invalid MongoDB URL %r: %s' % (mask_password(url), error)
        ) from error


def _is_mongo_database(db):
    if isinstance(db, pymongo.database.Database):
        return True
    try:
        import mongomock
    except ImportError:
        return False
    return isinstance(db, mongomock.Database)

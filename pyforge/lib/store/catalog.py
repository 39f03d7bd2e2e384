"""The catalog: which collections and indexes a store file contains.

Each collection has a documents table, WITHOUT ROWID and keyed by the
canonical encoding of _id, and one table per secondary index that maps
index keys to _id keys. Table names use numbers, not collection names,
so any collection name MongoDB accepts is safe in SQL. One file can
contain several databases, which the catalog's database column
distinguishes.

Each connection caches the catalog in a Catalog object. Every catalog
change creates or drops a table in the same transaction, and SQLite
increments the database's schema version on every schema change
(PRAGMA schema_version in SQLite's documentation), so the cache is
valid while that version is unchanged.
"""

import collections
import json
import logging

log = logging.getLogger(__name__)

IndexInfo = collections.namedtuple(
    'IndexInfo', ('name', 'keys', 'unique', 'table'))
IndexInfo.__doc__ = """A secondary index: keys is a tuple of (field,
direction) pairs and table the SQL table holding its entries."""

CollectionInfo = collections.namedtuple(
    'CollectionInfo', ('database', 'name', 'tag', 'table', 'indexes'))
CollectionInfo.__doc__ = """A collection's SQL tables: table holds the
documents and indexes lists its secondary indexes in creation order."""

_CATALOG_DDL = (
    'CREATE TABLE IF NOT EXISTS store_collections ('
    ' database TEXT NOT NULL,'
    ' name TEXT NOT NULL,'
    ' tag INTEGER NOT NULL UNIQUE,'
    ' PRIMARY KEY (database, name)'
    ') WITHOUT ROWID',
    'CREATE TABLE IF NOT EXISTS store_indexes ('
    ' collection_tag INTEGER NOT NULL,'
    ' number INTEGER NOT NULL,'
    ' name TEXT NOT NULL,'
    ' keys TEXT NOT NULL,'
    ' is_unique INTEGER NOT NULL,'
    ' PRIMARY KEY (collection_tag, number),'
    ' UNIQUE (collection_tag, name)'
    ') WITHOUT ROWID',
)


def create_catalog(connection):
    """Create the catalog tables unless the database has them."""
    found = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
        "AND name IN ('store_collections', 'store_indexes')").fetchone()
    if found[0] == 2:
        return
    connection.execute('BEGIN IMMEDIATE')
    try:
        for statement in _CATALOG_DDL:
            connection.execute(statement)
    except BaseException:
        connection.execute('ROLLBACK')
        raise
    connection.execute('COMMIT')


def documents_table(tag):
    """Return the name of the documents table of collection number tag."""
    return 'store_docs_%d' % tag


def index_table(tag, number):
    """Return the name of index number of collection number tag."""
    return 'store_index_%d_%d' % (tag, number)


def load_collection(connection, database, name):
    """Return the CollectionInfo of a collection, or None if missing."""
    row = connection.execute(
        'SELECT tag FROM store_collections WHERE database = ? AND name = ?',
        (database, name)).fetchone()
    if row is None:
        return None
    tag = row[0]
    indexes = []
    for number, index_name, keys, unique in connection.execute(
            'SELECT number, name, keys, is_unique FROM store_indexes '
            'WHERE collection_tag = ? ORDER BY number', (tag,)):
        indexes.append(IndexInfo(
            index_name, _decode_keys(keys), bool(unique),
            index_table(tag, number)))
    return CollectionInfo(
        database, name, tag, documents_table(tag), tuple(indexes))


def _decode_keys(text):
    return tuple((field, direction) for field, direction in json.loads(text))


def collection_names(connection, database):
    """Return the names of a database's collections, sorted."""
    rows = connection.execute(
        'SELECT name FROM store_collections WHERE database = ? '
        'ORDER BY name', (database,))
    return [row[0] for row in rows]


def create_collection(connection, database, name):
    """Create a collection's tables; call inside a write transaction."""
    tag = connection.execute(
        'SELECT coalesce(max(tag), 0) + 1 FROM store_collections'
    ).fetchone()[0]
    table = documents_table(tag)
    # seq numbers documents in insertion order, MongoDB's natural order.
    connection.execute(
        'CREATE TABLE %s (id BLOB PRIMARY KEY, seq INTEGER NOT NULL, '
        'document BLOB NOT NULL) WITHOUT ROWID' % table)
    connection.execute('CREATE UNIQUE INDEX %s_seq ON %s (seq)'
                       % (table, table))
    connection.execute(
        'INSERT INTO store_collections (database, name, tag) '
        'VALUES (?, ?, ?)', (database, name, tag))
    log.debug('created collection %s.%s in table %s', database, name, table)
    return CollectionInfo(database, name, tag, table, ())


def drop_collection(connection, info):
    """Drop a collection's tables; call inside a write transaction."""
    for index in info.indexes:
        connection.execute('DROP TABLE %s' % index.table)
    connection.execute('DROP TABLE %s' % info.table)
    connection.execute('DELETE FROM store_indexes WHERE collection_tag = ?',
                       (info.tag,))
    connection.execute('DELETE FROM store_collections WHERE tag = ?',
                       (info.tag,))
    log.debug('dropped collection %s.%s', info.database, info.name)


def add_index(connection, info, name, keys, unique):
    """Create an empty index table and return the collection's new info.

    The caller fills the table from the existing documents in the same
    write transaction.
    """
    number = connection.execute(
        'SELECT coalesce(max(number), 0) + 1 FROM store_indexes '
        'WHERE collection_tag = ?', (info.tag,)).fetchone()[0]
    table = index_table(info.tag, number)
    if unique:
        connection.execute(
            'CREATE TABLE %s (key BLOB PRIMARY KEY, id BLOB NOT NULL) '
            'WITHOUT ROWID' % table)
    else:
        connection.execute(
            'CREATE TABLE %s (key BLOB NOT NULL, id BLOB NOT NULL, '
            'PRIMARY KEY (key, id)) WITHOUT ROWID' % table)
    connection.execute(
        'INSERT INTO store_indexes '
        '(collection_tag, number, name, keys, is_unique) '
        'VALUES (?, ?, ?, ?, ?)',
        (info.tag, number, name, json.dumps(list(keys)), int(unique)))
    log.debug('created index %s on %s.%s', name, info.database, info.name)
    index = IndexInfo(name, tuple(keys), unique, table)
    return info._replace(indexes=info.indexes + (index,))


def remove_index(connection, info, index):
    """Drop one secondary index; call inside a write transaction."""
    connection.execute('DROP TABLE %s' % index.table)
    connection.execute(
        'DELETE FROM store_indexes WHERE collection_tag = ? AND name = ?',
        (info.tag, index.name))
    log.debug('dropped index %s on %s.%s', index.name, info.database,
             info.name)


class _Unknown:
    """Marker for a collection that a Catalog has not read yet."""

    __slots__ = ()

    def __repr__(self):
        return 'UNKNOWN'


UNKNOWN = _Unknown()


class Catalog:
    """The catalog of one connection, cached across transactions.

    The cache contains the CollectionInfo, or None for a missing
    collection, of every collection read since the schema version in
    version. A transaction checks that version once, before it first
    uses the cache, because only its own changes, which clear the
    cache, can change the schema it sees. A statement outside a
    transaction reads the version together with its rows and passes it
    to matches().
    """

    def __init__(self, connection):
        self.connection = connection
        self.version = None
        # Whether the current transaction has checked the version, and
        # whether it has changed the catalog, which a rollback undoes.
        self.checked = False
        self.changed = False
        self._collections = {}

    def cached(self, database, name):
        """Return the cached entry of a collection, or UNKNOWN.

        The entry may be out of date: use it only for a statement that
        also reads the schema version, and check it with matches().
        """
        return self._collections.get((database, name), UNKNOWN)

    def matches(self, version):
        """Return whether the cache is valid at a schema version.

        Drops the cached entries when it is not, so that they are read
        again at that version.
        """
        if version == self.version:
            return True
        self._collections.clear()
        self.version = version
        return False

    def clear(self):
        """Drop every cached entry and the version they were read at."""
        self._collections.clear()
        self.version = None
        self.checked = False

    def collection(self, database, name):
        """Return a collection's CollectionInfo, or None if it is missing.

        Call inside a transaction: the result is valid until it ends.
        """
        if not self.checked:
            version = self.connection.execute(
                'PRAGMA schema_version').fetchone()[0]
            self.matches(version)
            self.checked = True
        key = (database, name)
        info = self._collections.get(key, UNKNOWN)
        if info is UNKNOWN:
            info = load_collection(self.connection, database, name)
            self._collections[key] = info
        return info

    def create_collection(self, database, name):
        """Create a collection; call inside a write transaction."""
        info = create_collection(self.connection, database, name)
        self._note_change()
        return info

    def drop_collection(self, info):
        """Drop a collection; call inside a write transaction."""
        drop_collection(self.connection, info)
        self._note_change()

    def add_index(self, info, name, keys, unique):
        """Create an empty index and return the collection's new info."""
        info = add_index(self.connection, info, name, keys, unique)
        self._note_change()
        return info

    def remove_index(self, info, index):
        """Drop one secondary index; call inside a write transaction."""
        remove_index(self.connection, info, index)
        self._note_change()

    def _note_change(self):
        # The next use in this transaction reads the catalog again, and
        # a rollback drops what it read (rolled_back).
        self.changed = True
        self.clear()

    def rolled_back(self):
        """Forget entries that a rollback may have made wrong.

        Called after a ROLLBACK or a ROLLBACK TO a savepoint. Entries
        read after a change of this transaction are tagged with a
        schema version that the rollback undid, and another
        connection's different change can produce that version again.
        """
        if self.changed:
            self.clear()

    def end_transaction(self):
        """Reset the per-transaction state after COMMIT or ROLLBACK."""
        self.checked = False
        self.changed = False

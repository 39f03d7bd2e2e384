"""Rows of one collection: documents and their index entries.

A Table works on one connection inside a transaction opened by the
caller. Every write keeps the secondary indexes in step with the
document, and a write that violates a unique index raises MongoDB's
DuplicateKeyError after undoing its own changes. Writes undo their
statements themselves when one raises, instead of running them in a
savepoint, which would cost two statements more on every write.
"""

import collections
import sqlite3

from pymongo.errors import DuplicateKeyError

from pyforge.lib.store.documents import decode_document
from pyforge.lib.store.indexes import (
    ID_INDEX_KEYS, ID_INDEX_NAME, index_entries, key_pattern)
from pyforge.lib.store.keys import encode_key

DUPLICATE_KEY = 11000

Lookup = collections.namedtuple('Lookup', ('index', 'low', 'high'))
Lookup.__doc__ = """Rows to read by key. With index None, the document
whose encoded _id is low; else the documents with an entry in index
from low to high, high excluded."""

# A one-row table function of SQLite's PRAGMA schema_version, joined so
# that a lookup returns one row with the version even when it finds no
# document.
_VERSIONED_LOOKUP = (
    'SELECT d.seq, d.id, d.document, v.schema_version '
    'FROM pragma_schema_version AS v ')


class Row:
    """A stored document: natural-order position, _id key and BSON."""

    __slots__ = ('seq', 'id_key', 'data', '_document')

    def __init__(self, seq, id_key, data):
        self.seq = seq
        self.id_key = id_key
        self.data = data
        self._document = None

    @property
    def document(self):
        """The decoded document; decode again for a copy to modify."""
        if self._document is None:
            self._document = decode_document(self.data)
        return self._document


class Table:
    """Reads and writes the SQL tables of one collection."""

    def __init__(self, catalog, info):
        """Wrap the tables of info on the connection of a Catalog."""
        self.catalog = catalog
        self.connection = catalog.connection
        self.info = info

    def lookup(self, lookup):
        """Return the Rows that a Lookup finds."""
        if lookup.index is None:
            cursor = self.connection.execute(
                'SELECT seq, id, document FROM %s WHERE id = ?'
                % self.info.table, (lookup.low,))
        else:
            cursor = self.connection.execute(
                'SELECT d.seq, d.id, d.document FROM %s AS i '
                'JOIN %s AS d ON d.id = i.id '
                'WHERE i.key >= ? AND i.key < ?'
                % (lookup.index.table, self.info.table),
                (lookup.low, lookup.high))
        return [Row(*found) for found in cursor]

    def versioned_lookup(self, lookup):
        """Return (schema version, Rows) of a Lookup, in one statement.

        The version shows whether self.info was valid for the rows
        (catalog.Catalog.matches). Raises sqlite3.OperationalError, no
        such table, when a table that self.info names was dropped.
        """
        if lookup.index is None:
            sql = _VERSIONED_LOOKUP + (
                'LEFT JOIN %s AS d ON d.id = ?' % self.info.table)
            parameters = (lookup.low,)
        else:
            sql = _VERSIONED_LOOKUP + (
                'LEFT JOIN %s AS i ON i.key >= ? AND i.key < ? '
                'LEFT JOIN %s AS d ON d.id = i.id'
                % (lookup.index.table, self.info.table))
            parameters = (lookup.low, lookup.high)
        version = None
        rows = []
        for seq, id_key, data, version in self.connection.execute(
                sql, parameters):
            if id_key is not None:
                rows.append(Row(seq, id_key, data))
        return version, rows

    def all_rows(self):
        """Yield every Row in natural (insertion) order."""
        cursor = self.connection.execute(
            'SELECT seq, id, document FROM %s ORDER BY seq'
            % self.info.table)
        try:
            for found in cursor:
                yield Row(*found)
        finally:
            cursor.close()

    def insert(self, document, data):
        """Insert a validated document and its BSON bytes."""
        id_key = encode_key(document['_id'])
        try:
            # The unique seq index makes max(seq) one B-tree descent.
            self.connection.execute(
                'INSERT INTO %s (id, seq, document) '
                'SELECT ?, coalesce(max(seq), 0) + 1, ? FROM %s'
                % (self.info.table, self.info.table), (id_key, data))
        except sqlite3.IntegrityError:
            raise self._duplicate(
                ID_INDEX_NAME, ID_INDEX_KEYS, (document['_id'],)
            ) from None
        added = []
        try:
            for index in self.info.indexes:
                entries = index_entries(document, index.keys)
                added.append((index, entries))
                self._add_entries(index, id_key, entries)
        except BaseException:
            self._undo_insert(id_key, added)
            raise

    def replace(self, row, document, data):
        """Store a new version of a row's document, keeping its _id."""
        self.connection.execute(
            'UPDATE %s SET document = ? WHERE id = ?'
            % self.info.table, (data, row.id_key))
        changes = []
        try:
            for index in self.info.indexes:
                old = index_entries(row.document, index.keys)
                new = index_entries(document, index.keys)
                removed = [key for key in old if key not in new]
                added = {key: values for key, values in new.items()
                         if key not in old}
                changes.append((index, removed, added))
                self._remove_entries(index, row.id_key, removed)
                self._add_entries(index, row.id_key, added)
        except BaseException:
            self._undo_replace(row, changes)
            raise

    def delete(self, row):
        """Delete a row's document and its index entries."""
        self.connection.execute(
            'DELETE FROM %s WHERE id = ?' % self.info.table, (row.id_key,))
        for index in self.info.indexes:
            entries = index_entries(row.document, index.keys)
            self._remove_entries(index, row.id_key, list(entries))

    def fill_index(self, index):
        """Add the entries of every stored document to a new index."""
        for row in self.all_rows():
            self._add_entries(
                index, row.id_key, index_entries(row.document, index.keys))

    def _add_entries(self, index, id_key, entries):
        for key, values in entries.items():
            try:
                self.connection.execute(
                    'INSERT INTO %s (key, id) VALUES (?, ?)' % index.table,
                    (key, id_key))
            except sqlite3.IntegrityError:
                raise self._duplicate(
                    index.name, index.keys, values) from None

    def _remove_entries(self, index, id_key, keys):
        for key in keys:
            self.connection.execute(
                'DELETE FROM %s WHERE key = ? AND id = ?' % index.table,
                (key, id_key))

    def _undo_insert(self, id_key, added):
        """Delete a document that insert() wrote and its index entries.

        Deleting an entry that was not written yet changes nothing. An
        entry of the same key but another _id, the one that a unique
        index violation found, is kept.
        """
        # After errors such as SQLITE_FULL, SQLite may have rolled the
        # whole transaction back (see sqlite3_get_autocommit's docs).
        if not self.connection.in_transaction:
            return
        self.connection.execute(
            'DELETE FROM %s WHERE id = ?' % self.info.table, (id_key,))
        for index, entries in added:
            self._remove_entries(index, id_key, list(entries))

    def _undo_replace(self, row, changes):
        """Restore the document and index entries that replace() changed."""
        if not self.connection.in_transaction:
            return
        self.connection.execute(
            'UPDATE %s SET document = ? WHERE id = ?'
            % self.info.table, (row.data, row.id_key))
        for index, removed, added in changes:
            self._remove_entries(index, row.id_key, list(added))
            for key in removed:
                self.connection.execute(
                    'INSERT OR IGNORE INTO %s (key, id) VALUES (?, ?)'
                    % index.table, (key, row.id_key))

    def _duplicate(self, name, keys, values):
        pattern = key_pattern(keys)
        key_value = dict(zip(pattern, values))
        message = (
            'E11000 duplicate key error collection: %s.%s index: %s '
            'dup key: %r' % (self.info.database, self.info.name, name,
                             key_value))
        return DuplicateKeyError(message, DUPLICATE_KEY, {
            'index': 0, 'code': DUPLICATE_KEY, 'errmsg': message,
            'keyPattern': pattern, 'keyValue': key_value})

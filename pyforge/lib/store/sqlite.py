"""A document store on SQLite with pymongo's Database and Collection API.

It implements the part of pymongo's API that pyforge uses, with
MongoDB's semantics, error classes and error codes. docs/store.md
lists what is supported and what differs. Create a Database with
pyforge.lib.store.connect().
"""

import collections.abc
import contextlib

from bson.objectid import ObjectId
from pymongo.collection import ReturnDocument
from pymongo.errors import InvalidName, OperationFailure

from pyforge.lib.store import catalog, writes
from pyforge.lib.store.cursor import (
    Cursor, check_mapping, projection_spec, sort_spec)
from pyforge.lib.store.documents import encode_document, normalize
from pyforge.lib.store.indexes import (
    ID_INDEX_KEYS, ID_INDEX_NAME, IGNORED_OPTIONS, index_name,
    normalize_keys)
from pyforge.lib.store.keys import encode_key
from pyforge.lib.store.paths import present_values
from pyforge.lib.store.plan import matching_rows
from pyforge.lib.store.projection import Projection
from pyforge.lib.store.query import compile_filter
from pyforge.lib.store.results import (
    DeleteResult, InsertManyResult, InsertOneResult, UpdateResult)
from pyforge.lib.store.storage import Table
from pyforge.lib.store.update import Update

__all__ = [
    'Collection', 'Cursor', 'Database', 'DeleteResult', 'InsertManyResult',
    'InsertOneResult', 'UpdateResult']

# MongoDB's error codes for index and namespace errors.
NAMESPACE_NOT_FOUND = 26
INDEX_NOT_FOUND = 27
INVALID_OPTIONS = 72
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
INVALID_INDEX_SPECIFICATION_OPTION = 197

_DATABASE_NAME_FORBIDDEN = ' ./\\"$\x00'


class Database:
    """A database of collections kept in one SQLite store."""

    def __init__(self, engine, name):
        """Wrap an engine (see engine.py); name must be a MongoDB name."""
        if not isinstance(name, str):
            raise TypeError('name must be an instance of str, not %s'
                            % type(name))
        if not name or any(char in name for char in _DATABASE_NAME_FORBIDDEN):
            raise InvalidName(
                'invalid database name %r: it must be non-empty and '
                'contain none of %r' % (name, _DATABASE_NAME_FORBIDDEN))
        self._engine = engine
        self._name = name

    @property
    def name(self):
        """The name of this database."""
        return self._name

    def __repr__(self):
        return 'Database(%r, %r)' % (self._engine.path, self._name)

    def __eq__(self, other):
        if not isinstance(other, Database):
            return NotImplemented
        return (self._engine, self._name) == (other._engine, other._name)

    def __hash__(self):
        return hash((id(self._engine), self._name))

    def __bool__(self):
        raise NotImplementedError(
            'Database objects do not implement truth value testing or '
            'bool(); compare with None instead: database is not None')

    def __getitem__(self, name):
        return Collection(self, name)

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(
                'Database has no attribute %r. To access the %s '
                'collection, use database[%r].' % (name, name, name))
        return Collection(self, name)

    def get_collection(self, name):
        """Return the collection called name; it need not exist yet."""
        return Collection(self, name)

    def list_collection_names(self):
        """Return the names of the collections that exist, sorted."""
        with self._engine.read() as connection:
            return catalog.collection_names(connection, self._name)

    def drop_collection(self, name_or_collection):
        """Drop a collection, its documents and its indexes.

        Returns a server-style result; dropping a missing collection
        is not an error, as in MongoDB 7.0.
        """
        name = name_or_collection
        if isinstance(name_or_collection, Collection):
            name = name_or_collection.name
        if not isinstance(name, str):
            raise TypeError('name_or_collection must be an instance of str '
                            'or Collection, not %s' % type(name))
        with self._engine.write() as connection:
            info = catalog.load_collection(connection, self._name, name)
            if info is None:
                return {'ok': 1.0}
            catalog.drop_collection(connection, info)
        return {'ns': '%s.%s' % (self._name, name),
                'nIndexesWas': len(info.indexes) + 1, 'ok': 1.0}

    def close(self):
        """Close this process's SQLite connections to the store.

        A file store reopens them on the next call; an in-memory store
        is discarded and cannot be used again.
        """
        self._engine.close()


class Collection:
    """A collection of documents, with pymongo's Collection methods."""

    def __init__(self, database, name):
        """Validate name as pymongo does; the collection may not exist."""
        if not isinstance(name, str):
            raise TypeError('name must be an instance of str, not %s'
                            % type(name))
        if (not name or '..' in name or name[0] == '.' or name[-1] == '.'
                or '$' in name or '\x00' in name):
            raise InvalidName(
                'invalid collection name %r: it must be non-empty, must '
                'not start or end with "." and must not contain "..", '
                '"$" or NUL' % name)
        self._database = database
        self._name = name
        self._engine = database._engine

    @property
    def name(self):
        """The name of this collection."""
        return self._name

    @property
    def full_name(self):
        """The namespace: database name and collection name, dotted."""
        return '%s.%s' % (self._database.name, self._name)

    @property
    def database(self):
        """The Database this collection belongs to."""
        return self._database

    def __repr__(self):
        return 'Collection(%r, %r)' % (self._database, self._name)

    def __eq__(self, other):
        if not isinstance(other, Collection):
            return NotImplemented
        return (self._database, self._name) == (
            other._database, other._name)

    def __hash__(self):
        return hash((self._database, self._name))

    def __bool__(self):
        raise NotImplementedError(
            'Collection objects do not implement truth value testing or '
            'bool(); compare with None instead: collection is not None')

    @contextlib.contextmanager
    def _read_table(self):
        """Yield the collection's Table in a read transaction, or None."""
        with self._engine.read() as connection:
            info = catalog.load_collection(
                connection, self._database.name, self._name)
            yield Table(self._engine, connection, info) if info else None

    @contextlib.contextmanager
    def _write_table(self, create=False):
        """Yield the Table in a write transaction, creating it on request.

        Yields None when the collection is missing and create is False.
        """
        with self._engine.write() as connection:
            info = catalog.load_collection(
                connection, self._database.name, self._name)
            if info is None and create:
                info = catalog.create_collection(
                    connection, self._database.name, self._name)
            yield Table(self._engine, connection, info) if info else None

    def insert_one(self, document):
        """Insert a document, adding an ObjectId _id to it if missing."""
        _check_document(document)
        if '_id' not in document:
            document['_id'] = ObjectId()
        with self._write_table(create=True) as table:
            table.insert(document, encode_document(document))
        return InsertOneResult(document['_id'])

    def insert_many(self, documents, ordered=True):
        """Insert documents, adding an ObjectId _id to those without one.

        Raises BulkWriteError if any insert fails; with ordered=True
        the documents after the first failure are not inserted.
        """
        if (isinstance(documents, (str, bytes)) or
                isinstance(documents, dict) or not documents):
            raise TypeError('documents must be a non-empty list')
        documents = list(documents)
        for document in documents:
            _check_document(document)
            if '_id' not in document:
                document['_id'] = ObjectId()
        inserted = writes.insert_documents(self, documents, ordered)
        return InsertManyResult(inserted)

    def find(self, filter=None, projection=None, sort=None, skip=0,
             limit=0):
        """Return a Cursor over the documents that match filter."""
        return Cursor(self, filter, projection, sort, skip, limit)

    def find_one(self, filter=None, *args, **kwargs):
        """Return the first matching document, or None.

        filter may also be a plain _id value, as in pymongo.
        """
        if filter is not None and not isinstance(
                filter, collections.abc.Mapping):
            filter = {'_id': filter}
        for document in self.find(filter, *args, **kwargs).limit(-1):
            return document
        return None

    def count_documents(self, filter, skip=0, limit=None):
        """Return the number of documents that match filter."""
        check_mapping('filter', filter)
        if limit is not None and limit <= 0:
            raise OperationFailure('the limit must be positive, got %r'
                                   % (limit,), 15958)
        stop = None if limit is None else skip + limit
        query = normalize(filter)
        matcher = compile_filter(query)
        with self._read_table() as table:
            rows = matching_rows(table, query, matcher, stop)
        return len(rows[skip:])

    def estimated_document_count(self):
        """Return the number of documents in the collection."""
        with self._read_table() as table:
            if table is None:
                return 0
            return table.connection.execute(
                'SELECT count(*) FROM %s' % table.info.table).fetchone()[0]

    def distinct(self, key, filter=None):
        """Return the distinct values of key among matching documents.

        An array field contributes each of its elements, as in MongoDB.
        """
        if not isinstance(key, str):
            raise TypeError('key must be an instance of str')
        query = normalize(filter or {})
        matcher = compile_filter(query)
        with self._read_table() as table:
            rows = matching_rows(table, query, matcher)
        parts = key.split('.')
        seen = set()
        values = []
        for row in rows:
            for value in present_values(row.document, parts):
                items = value if isinstance(value, list) else [value]
                for item in items:
                    encoded = encode_key(item)
                    if encoded not in seen:
                        seen.add(encoded)
                        values.append(item)
        return values

    def update_one(self, filter, update, upsert=False):
        """Update the first document that matches filter."""
        check_mapping('filter', filter)
        return writes.update_documents(
            self, filter, Update(update), upsert, multi=False)

    def update_many(self, filter, update, upsert=False):
        """Update every document that matches filter."""
        check_mapping('filter', filter)
        return writes.update_documents(
            self, filter, Update(update), upsert, multi=True)

    def replace_one(self, filter, replacement, upsert=False):
        """Replace the first document that matches filter."""
        check_mapping('filter', filter)
        check_mapping('replacement', replacement)
        if replacement and next(iter(replacement)).startswith('$'):
            raise ValueError('replacement can not include $ operators')
        return writes.replace_document(self, filter, replacement, upsert)

    def find_one_and_update(self, filter, update, projection=None,
                            sort=None, upsert=False,
                            return_document=ReturnDocument.BEFORE):
        """Update the first match in sort order and return a document.

        Returns the document as it was before the update, or after it
        with return_document=ReturnDocument.AFTER; None if nothing
        matched (with an upsert and BEFORE, also None).
        """
        check_mapping('filter', filter)
        update = Update(update)
        spec = sort_spec(sort) if sort else None
        if projection is not None:
            projection = Projection(projection_spec(projection))
        document = writes.find_and_update(
            self, filter, update, spec, upsert, bool(return_document))
        if document is None or projection is None:
            return document
        return projection.apply(document)

    def delete_one(self, filter):
        """Delete the first document that matches filter."""
        check_mapping('filter', filter)
        return DeleteResult(writes.delete_documents(self, filter, False))

    def delete_many(self, filter):
        """Delete every document that matches filter."""
        check_mapping('filter', filter)
        return DeleteResult(writes.delete_documents(self, filter, True))

    def create_index(self, keys, unique=False, name=None, **options):
        """Create an index unless an identical one exists; return its name.

        Raises DuplicateKeyError when unique and two documents share a
        key, and OperationFailure when an index with the same name or
        the same keys but other options exists.
        """
        keys = normalize_keys(keys)
        for option in options:
            if option not in IGNORED_OPTIONS:
                raise OperationFailure(
                    'index option %r is not supported by this store; it '
                    'supports unique and name' % option,
                    INVALID_INDEX_SPECIFICATION_OPTION)
        name = name or index_name(keys)
        if keys == ID_INDEX_KEYS:
            # Every collection has a unique _id index already.
            return name
        with self._write_table(create=True) as table:
            existing = _conflicting_index(table.info, keys, unique, name)
            if existing is not None:
                return existing
            table.info = catalog.add_index(
                table.connection, table.info, name, keys, bool(unique))
            table.fill_index(table.info.indexes[-1])
        return name

    def index_information(self):
        """Return {name: {'key': [(field, direction)], ...}} per index."""
        with self._read_table() as table:
            if table is None:
                return {}
            indexes = table.info.indexes
        information = {ID_INDEX_NAME: {'v': 2, 'key': list(ID_INDEX_KEYS)}}
        for index in indexes:
            entry = {'v': 2, 'key': list(index.keys)}
            if index.unique:
                entry['unique'] = True
            information[index.name] = entry
        return information

    def drop_index(self, index_or_name):
        """Drop an index given by name or by its key pattern."""
        name = index_or_name
        if not isinstance(name, str):
            name = index_name(normalize_keys(index_or_name))
        if name == ID_INDEX_NAME:
            raise OperationFailure('cannot drop _id index', INVALID_OPTIONS)
        with self._write_table() as table:
            if table is None:
                raise OperationFailure(
                    'ns not found %s' % self.full_name, NAMESPACE_NOT_FOUND)
            for index in table.info.indexes:
                if index.name == name:
                    catalog.remove_index(table.connection, table.info, index)
                    return
        raise OperationFailure(
            'index not found with name [%s]' % name, INDEX_NOT_FOUND)

    def drop(self):
        """Drop this collection, its documents and its indexes."""
        self._database.drop_collection(self._name)


def _check_document(document):
    if not isinstance(document, dict):
        raise TypeError(
            'document must be an instance of dict, bson.son.SON, '
            'bson.raw_bson.RawBSONDocument, or a type that inherits from '
            'collections.MutableMapping, not %s' % type(document))


def _conflicting_index(info, keys, unique, name):
    """Return name if the index exists as requested, None if it does not.

    Raises OperationFailure when an index has the same name or keys
    but differs otherwise.
    """
    for index in info.indexes:
        same_keys = index.keys == keys
        if index.name == name:
            if same_keys and index.unique == bool(unique):
                return name
            raise OperationFailure(
                'An existing index has the same name as the requested '
                'index. Requested index: %s %s unique=%s, existing index: '
                '%s %s unique=%s' % (name, list(keys), bool(unique),
                                     index.name, list(index.keys),
                                     index.unique),
                INDEX_KEY_SPECS_CONFLICT)
        if same_keys:
            raise OperationFailure(
                'Index already exists with a different name: %s; requested '
                'name: %s' % (index.name, name), INDEX_OPTIONS_CONFLICT)
    if name == ID_INDEX_NAME:
        raise OperationFailure(
            'index name %r is reserved for the _id index' % name,
            INDEX_KEY_SPECS_CONFLICT)
    return None

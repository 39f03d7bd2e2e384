"""Collection: pymongo's Collection methods on the SQLite store."""

import collections.abc
import contextlib

from bson.objectid import ObjectId
from pymongo.collection import ReturnDocument
from pymongo.errors import InvalidName, OperationFailure

from pyforge.lib.store import indexes, writes
from pyforge.lib.store.cursor import (
    Cursor, check_mapping, projection_spec, sort_spec)
from pyforge.lib.store.documents import encode_document, normalize
from pyforge.lib.store.indexes import ID_INDEX_KEYS, ID_INDEX_NAME
from pyforge.lib.store.keys import encode_key
from pyforge.lib.store.paths import present_values
from pyforge.lib.store.plan import compile_matcher
from pyforge.lib.store.projection import Projection
from pyforge.lib.store.reads import read_rows
from pyforge.lib.store.results import (
    DeleteResult, InsertManyResult, InsertOneResult)
from pyforge.lib.store.storage import Table
from pyforge.lib.store.update import Update


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

    def _info(self, catalog, create=False):
        """Return the CollectionInfo, creating the collection on request.

        Call inside a transaction, with the catalog of its connection.
        Returns None when the collection is missing and create is False.
        """
        info = catalog.collection(self._database.name, self._name)
        if info is None and create:
            info = catalog.create_collection(self._database.name, self._name)
        return info

    @contextlib.contextmanager
    def _read_table(self):
        """Yield the collection's Table in a read transaction, or None."""
        with self._engine.read() as state:
            info = self._info(state.catalog)
            yield Table(state.catalog, info) if info else None

    @contextlib.contextmanager
    def _write_table(self, create=False, savepoint=False):
        """Yield the Table in a write transaction, creating it on request.

        Yields None when the collection is missing and create is False.
        With savepoint, a nested call undoes its writes if it raises.
        """
        with self._engine.write(savepoint) as state:
            info = self._info(state.catalog, create)
            yield Table(state.catalog, info) if info else None

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

    def find(self, filter=None, projection=None, skip=0, limit=0,
             sort=None):
        """Return a Cursor over the documents that match filter.

        The first four parameters have pymongo's positional order.
        """
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

    def count_documents(self, filter, *, skip=0, limit=None):
        """Return the number of documents that match filter."""
        check_mapping('filter', filter)
        if limit is not None and limit <= 0:
            raise OperationFailure('the limit must be positive, got %r'
                                   % (limit,), 15958)
        stop = None if limit is None else skip + limit
        query = normalize(filter)
        rows = read_rows(self, query, compile_matcher(query), stop)
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
        rows = read_rows(self, query, compile_matcher(query))
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

    def create_index(self, keys, *, unique=False, name=None, **options):
        """Create an index unless an identical one exists; return its name.

        keys is a field name or a list of (field, direction) pairs.
        Raises DuplicateKeyError when unique and two documents share a
        key, and OperationFailure when an index with the same name or
        the same keys but other options exists.
        """
        return indexes.create_index(self, keys, unique, name, options)

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
        indexes.drop_index(self, index_or_name)

    def drop(self):
        """Drop this collection, its documents and its indexes."""
        self._database.drop_collection(self._name)


def _check_document(document):
    if not isinstance(document, dict):
        raise TypeError(
            'document must be an instance of dict, bson.son.SON, '
            'bson.raw_bson.RawBSONDocument, or a type that inherits from '
            'collections.MutableMapping, not %s' % type(document))

"""A document store on SQLite with pymongo's Database and Collection API.

It implements the part of pymongo's API that pyforge uses, with
MongoDB's semantics, error classes and error codes. docs/store.md
lists what is supported and what differs. Create a Database with
pyforge.lib.store.connect().
"""

from pymongo.errors import InvalidName

from pyforge.lib.store import catalog
from pyforge.lib.store.collection import Collection
from pyforge.lib.store.cursor import Cursor
from pyforge.lib.store.results import (
    DeleteResult, InsertManyResult, InsertOneResult, UpdateResult)

__all__ = [
    'Collection', 'Cursor', 'Database', 'DeleteResult', 'InsertManyResult',
    'InsertOneResult', 'UpdateResult']

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
        with self._engine.read() as state:
            return catalog.collection_names(state.connection, self._name)

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
        with self._engine.write() as state:
            info = state.catalog.collection(self._name, name)
            if info is None:
                return {'ok': 1.0}
            state.catalog.drop_collection(info)
        return {'ns': '%s.%s' % (self._name, name),
                'nIndexesWas': len(info.indexes) + 1, 'ok': 1.0}

    def close(self):
        """Close this process's SQLite connections to the store.

        A file store reopens them on the next call; an in-memory store
        is discarded and cannot be used again.
        """
        self._engine.close()

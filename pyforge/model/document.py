"""A small base for documents kept in one collection."""

from pyforge.lib.context import session


class Document:
    """A MongoDB document with reads and buffered writes.

    Class methods read through the current session's database at once;
    instance methods that write are buffered in the current session.
    Fields are read as items (``doc['name']``) or through the properties
    that subclasses define.
    """

    #: Name of the collection the documents live in.
    collection_name = None

    def __init__(self, document):
        #: The document as a dict, as stored.
        self.document = document

    @classmethod
    def collection(cls, db=None):
        """Return the collection, of `db` or of the current session."""
        return (db if db is not None else session.db)[cls.collection_name]

    @classmethod
    def get(cls, _id, db=None):
        """Return the document with this ``_id``, or None."""
        return cls.find_one({'_id': _id}, db=db)

    @classmethod
    def find(cls, filter=None, sort=None, db=None):
        """Return the matching documents as a list."""
        cursor = cls.collection(db).find(filter or {}, sort=sort)
        return [cls(found) for found in cursor]

    @classmethod
    def find_one(cls, filter, db=None):
        """Return the first matching document, or None."""
        found = cls.collection(db).find_one(filter)
        return cls(found) if found is not None else None

    @property
    def _id(self):
        return self.document['_id']

    def __getitem__(self, key):
        return self.document[key]

    def __eq__(self, other):
        return (type(self) is type(other)
                and self.document == other.document)

    def insert(self):
        """Buffer the insert of this document; return its ``_id``."""
        return session.insert_one(self.collection_name, self.document)

    def update(self, update):
        """Buffer an update of this document, e.g. ``{'$inc': {...}}``.

        The document in hand is not changed; read it again after the flush
        to see the result.
        """
        session.update_one(self.collection_name, {'_id': self._id}, update)

    def delete(self):
        """Buffer the removal of this document."""
        session.delete_one(self.collection_name, {'_id': self._id})

    def __repr__(self):
        return '<%s %r>' % (type(self).__name__, self.document.get('_id'))

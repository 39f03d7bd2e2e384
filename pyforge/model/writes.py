"""The session: writes of one message, buffered until the flush.

Listeners write through the session of the message in hand (the
``session`` proxy of :mod:`pyforge.lib.context`). Nothing reaches the
database until the listener returned; then the worker flushes every write
at once, and drops them all if the listener raised.
"""

import copy
import dataclasses
import logging

from bson import ObjectId

from pyforge.lib.store import transaction

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Write:
    """One buffered call of a pymongo ``Collection`` method."""

    collection: str
    method: str
    args: tuple
    kwargs: dict


class Session:
    """Buffered writes, and messages to publish once they are persisted.

    Reads go straight to :attr:`db` and do not see the buffered writes.
    On the embedded SQLite store a flush is one transaction; on MongoDB
    it is a sequence of single-document writes, each atomic on its own.
    """

    def __init__(self, db):
        #: The database (pymongo or embedded) the writes go to.
        self.db = db
        self._writes = []
        #: Messages published while the listener ran, sent after the flush.
        self.outbox = []

    @property
    def pending(self):
        """Number of buffered writes."""
        return len(self._writes)

    @property
    def collections_written(self):
        """Names of the collections the buffered writes go to."""
        return {write.collection for write in self._writes}

    def insert_one(self, collection, document, copy=True):
        """Buffer an insert; return the ``_id``, set now when missing.

        With ``copy=False`` the caller hands `document` over and must not
        change it afterwards; it saves a deep copy.
        """
        _check_document(document)
        document.setdefault('_id', ObjectId())
        self._buffer(collection, 'insert_one', document,
                     copy_arguments=copy)
        return document['_id']

    def update_one(self, collection, filter, update, upsert=False,
                   copy=True):
        """Buffer ``Collection.update_one``.

        With ``copy=False`` the caller hands over `filter` and `update`
        and must not change them afterwards; it saves a deep copy.
        """
        _check_update(update)
        self._buffer(collection, 'update_one', filter, update,
                     upsert=upsert, copy_arguments=copy)

    def update_many(self, collection, filter, update, upsert=False):
        """Buffer ``Collection.update_many``."""
        _check_update(update)
        self._buffer(collection, 'update_many', filter, update,
                     upsert=upsert)

    def replace_one(self, collection, filter, replacement, upsert=False):
        """Buffer ``Collection.replace_one``."""
        _check_document(replacement)
        self._buffer(collection, 'replace_one', filter, replacement,
                     upsert=upsert)

    def delete_one(self, collection, filter):
        """Buffer ``Collection.delete_one``."""
        self._buffer(collection, 'delete_one', filter)

    def delete_many(self, collection, filter):
        """Buffer ``Collection.delete_many``."""
        self._buffer(collection, 'delete_many', filter)

    def flush(self):
        """Persist the buffered writes in order; return how many.

        The buffer is emptied even when a write fails, so a failed flush is
        never applied twice by a later one.
        """
        writes, self._writes = self._writes, []
        if len(writes) == 1 and writes[0].method in _SINGLE_DOCUMENT:
            # A write of one document is atomic by itself: it leaves
            # nothing behind when it fails, within a transaction too.
            _apply(self.db, writes[0])
            return 1
        with transaction(self.db):
            for write in writes:
                _apply(self.db, write)
        return len(writes)

    def clear(self):
        """Drop the buffered writes and the outbox."""
        self._writes = []
        self.outbox = []

    def _buffer(self, collection, method, *args, copy_arguments=True,
                **kwargs):
        if not isinstance(collection, str) or not collection:
            raise TypeError(
                'collection must be a non-empty name, not %r' % (collection,))
        if args and not isinstance(args[0], dict):
            raise TypeError('filter must be a dict, not %r' % (args[0],))
        if copy_arguments:
            # A copy keeps what the caller changes after the call out of
            # the write, as if it had gone to the database at once.
            args = copy.deepcopy(args)
        self._writes.append(Write(collection, method, args, kwargs))


_SINGLE_DOCUMENT = {'insert_one', 'update_one', 'replace_one', 'delete_one'}


def _apply(db, write):
    method = getattr(db[write.collection], write.method)
    method(*write.args, **write.kwargs)


def _check_document(document):
    if not isinstance(document, dict):
        raise TypeError('document must be a dict, not %r' % (document,))
    operators = [key for key in document if str(key).startswith('$')]
    if operators:
        raise ValueError(
            'a document cannot have keys starting with $ (%s); use '
            'update_one for update operators' % ', '.join(operators))


def _check_update(update):
    if not isinstance(update, dict) or not update:
        raise ValueError(
            'update must be a non-empty dict of operators such as '
            "{'$set': {...}}, not %r" % (update,))
    plain = [key for key in update if not str(key).startswith('$')]
    if plain:
        raise ValueError(
            'update has keys without an operator (%s); wrap them, e.g. '
            "{'$set': {%r: ...}}" % (', '.join(plain), plain[0]))

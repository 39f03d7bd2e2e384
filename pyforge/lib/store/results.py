"""Results of write operations, with pymongo's attribute names.

Every write of the store is acknowledged, so acknowledged is always
True and no attribute raises InvalidOperation as pymongo's do for
unacknowledged writes.
"""


class _WriteResult:
    __slots__ = ()

    @property
    def acknowledged(self):
        """True: the store applied the write before returning."""
        return True


class InsertOneResult(_WriteResult):
    """The result of insert_one()."""

    __slots__ = ('_inserted_id',)

    def __init__(self, inserted_id):
        self._inserted_id = inserted_id

    @property
    def inserted_id(self):
        """The _id of the inserted document."""
        return self._inserted_id

    def __repr__(self):
        return 'InsertOneResult(%r, acknowledged=True)' % (
            self._inserted_id,)


class InsertManyResult(_WriteResult):
    """The result of insert_many()."""

    __slots__ = ('_inserted_ids',)

    def __init__(self, inserted_ids):
        self._inserted_ids = inserted_ids

    @property
    def inserted_ids(self):
        """The _ids of the inserted documents, in insertion order."""
        return self._inserted_ids

    def __repr__(self):
        return 'InsertManyResult(%r, acknowledged=True)' % (
            self._inserted_ids,)


class UpdateResult(_WriteResult):
    """The result of update_one(), update_many() and replace_one()."""

    __slots__ = ('_raw_result',)

    def __init__(self, matched, modified, upserted_id=None, upserted=False):
        """Build the server-style raw result from the counts."""
        self._raw_result = {
            'n': matched + (1 if upserted else 0),
            'nModified': modified,
            'ok': 1.0,
            'updatedExisting': bool(matched),
        }
        if upserted:
            self._raw_result['upserted'] = upserted_id

    @property
    def raw_result(self):
        """The result document, shaped like the server's reply."""
        return self._raw_result

    @property
    def matched_count(self):
        """The number of documents that matched the filter."""
        if self.did_upsert:
            return 0
        return self._raw_result['n']

    @property
    def modified_count(self):
        """The number of documents whose content changed."""
        return self._raw_result['nModified']

    @property
    def upserted_id(self):
        """The _id of the document an upsert inserted, else None."""
        return self._raw_result.get('upserted')

    @property
    def did_upsert(self):
        """Whether an upsert inserted a document."""
        return 'upserted' in self._raw_result

    def __repr__(self):
        return 'UpdateResult(%r, acknowledged=True)' % (self._raw_result,)


class DeleteResult(_WriteResult):
    """The result of delete_one() and delete_many()."""

    __slots__ = ('_raw_result',)

    def __init__(self, deleted):
        self._raw_result = {'n': deleted, 'ok': 1.0}

    @property
    def raw_result(self):
        """The result document, shaped like the server's reply."""
        return self._raw_result

    @property
    def deleted_count(self):
        """The number of documents deleted."""
        return self._raw_result['n']

    def __repr__(self):
        return 'DeleteResult(%r, acknowledged=True)' % (self._raw_result,)

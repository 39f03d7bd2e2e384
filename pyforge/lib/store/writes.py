"""Write operations of a collection, each in one write transaction.

Every read-modify-write (update, upsert, find-and-update) reads and
writes inside the same BEGIN IMMEDIATE transaction, so concurrent
writers, threads or processes, apply one after the other. As in
MongoDB, a write that fails on one document keeps the changes already
made to earlier documents of the same call.
"""

from bson.objectid import ObjectId
from pymongo.errors import BulkWriteError, WriteError

from pyforge.lib.store.cursor import sort_rows
from pyforge.lib.store.documents import (
    decode_document, encode_document, normalize, write_error)
from pyforge.lib.store.keys import encode_key
from pyforge.lib.store.plan import compile_matcher, matching_rows
from pyforge.lib.store.query import equality_values
from pyforge.lib.store.results import UpdateResult
from pyforge.lib.store.update import IMMUTABLE_FIELD, Update


def insert_documents(collection, documents, ordered=True):
    """Insert documents that already have an _id; return their _ids.

    Raises BulkWriteError listing the documents that failed, after
    inserting the others (with ordered, only those before the first
    failure).
    """
    errors = []
    inserted = []
    with collection._write_table(create=True) as table:
        for position, document in enumerate(documents):
            try:
                data = encode_document(document)
                table.insert(document, data)
            except WriteError as error:
                errors.append(_bulk_error(position, error, document))
                if ordered:
                    break
            else:
                inserted.append(document['_id'])
    if errors:
        raise BulkWriteError({
            'writeErrors': errors, 'writeConcernErrors': [],
            'nInserted': len(inserted), 'nUpserted': 0, 'nMatched': 0,
            'nModified': 0, 'nRemoved': 0, 'upserted': []})
    return inserted


def _bulk_error(position, error, document):
    details = dict(error.details or {})
    details.update(index=position, code=error.code, op=document)
    details.setdefault('errmsg', str(error))
    return details


def update_documents(collection, query, update, upsert, multi):
    """Apply an Update to the first or every match; return UpdateResult.

    Raises the WriteError of the first document that fails, after
    committing the updates of the documents before it.
    """
    query = normalize(query)
    matcher = compile_matcher(query)
    matched = modified = 0
    failure = None
    with collection._write_table(create=upsert) as table:
        stop = None if multi else 1
        for row in matching_rows(table, query, matcher, stop):
            matched += 1
            try:
                modified += _update_row(table, row, update)
            except WriteError as error:
                failure = error
                break
        if not matched and upsert:
            document = upsert_document(query, update)
            table.insert(document, encode_document(document))
            return UpdateResult(0, 0, document['_id'], upserted=True)
    if failure is not None:
        raise failure
    return UpdateResult(matched, modified)


def _update_row(table, row, update):
    """Update one row; return 1 if its document changed, else 0."""
    document = decode_document(row.data)
    update.apply(document)
    data = encode_document(document)
    if data == row.data:
        return 0
    table.replace(row, document, data)
    return 1


def upsert_document(query, update):
    """Build the document an upsert inserts, as MongoDB does.

    Starts from the filter's equality conditions, applies the update
    with $setOnInsert, and adds an ObjectId _id unless one was set.
    """
    fields = {
        path: values[0]
        for path, values in equality_values(query, include_in=False).items()}
    if _top_level_scalars(fields):
        # What $set of these fields does, without parsing an Update.
        document = dict(fields)
    else:
        document = {}
        Update({'$set': fields}).apply(document, inserting=True)
    update.apply(document, inserting=True)
    return _with_id_first(document)


def _top_level_scalars(fields):
    """Return whether fields are top-level names with scalar values.

    The values then need no copy, and $set needs no path resolution.
    """
    for path, value in fields.items():
        if not path or '.' in path or isinstance(value, (dict, list)):
            return False
    return True


def _with_id_first(document):
    if '_id' not in document:
        return dict(_id=ObjectId(), **document)
    identifier = document.pop('_id')
    return dict(_id=identifier, **document)


def replace_document(collection, query, replacement, upsert):
    """Replace the first match with replacement; return UpdateResult."""
    query = normalize(query)
    replacement = normalize(replacement)
    matcher = compile_matcher(query)
    with collection._write_table(create=upsert) as table:
        rows = matching_rows(table, query, matcher, 1)
        if rows:
            row = rows[0]
            document = _replacement_for(row.document, replacement)
            data = encode_document(document)
            if data == row.data:
                return UpdateResult(1, 0)
            table.replace(row, document, data)
            return UpdateResult(1, 1)
        if not upsert:
            return UpdateResult(0, 0)
        document = dict(replacement)
        if '_id' not in document:
            id_values = equality_values(query, include_in=False).get('_id')
            if id_values:
                document['_id'] = id_values[0]
        document = _with_id_first(document)
        table.insert(document, encode_document(document))
        return UpdateResult(0, 0, document['_id'], upserted=True)


def _replacement_for(current, replacement):
    identifier = current['_id']
    if '_id' in replacement:
        if encode_key(replacement['_id']) != encode_key(identifier):
            raise write_error(
                "After applying the update, the (immutable) field '_id' "
                'was found to have been altered to _id: %r'
                % (replacement['_id'],), IMMUTABLE_FIELD)
    document = {'_id': identifier}
    for name, value in replacement.items():
        if name != '_id':
            document[name] = value
    return document


def find_and_update(collection, query, update, sort, upsert, after):
    """Update the first match in sort order; return its document.

    Returns the document before the update, or after it when after is
    True; None when nothing matched and no upsert inserted.
    """
    query = normalize(query)
    matcher = compile_matcher(query)
    with collection._write_table(create=upsert) as table:
        rows = matching_rows(table, query, matcher, None if sort else 1)
        if sort:
            sort_rows(rows, sort)
        if rows:
            row = rows[0]
            document = decode_document(row.data)
            update.apply(document)
            data = encode_document(document)
            if data != row.data:
                table.replace(row, document, data)
            return decode_document(data) if after else row.document
        if not upsert:
            return None
        document = upsert_document(query, update)
        data = encode_document(document)
        table.insert(document, data)
        return decode_document(data) if after else None


def delete_documents(collection, query, multi):
    """Delete the first or every match; return how many were deleted."""
    query = normalize(query)
    matcher = compile_matcher(query)
    with collection._write_table() as table:
        rows = matching_rows(table, query, matcher, None if multi else 1)
        for row in rows:
            table.delete(row)
    return len(rows)

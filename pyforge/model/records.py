"""Message records: how each message fared on each queue.

One document per queue and message id. It makes redelivery safe (a
message recorded as ``done`` is acked without calling the listener
again), counts the deliveries a worker did not live to finish, and keeps
the status, timings and last error that operators look at.
"""

import datetime
import os
import socket

from pymongo import ReturnDocument

#: Collection of the message records.
COLLECTION = 'message_records'

#: Handled, changes persisted and outbox sent.
DONE = 'done'
#: Changes persisted; the messages it published may not all be sent yet.
FLUSHED = 'flushed'
#: The last attempt failed; a retry is scheduled.
FAILED = 'failed'
#: Dead-lettered.
DEAD = 'dead'
#: Dead-lettered, then requeued by ``paster reactor_dead``: the next
#: delivery is handled, also when the broker flags it redelivered.
REQUEUED = 'requeued'

#: Every status, in the order people read them.
STATUSES = (DONE, FLUSHED, FAILED, DEAD, REQUEUED)


#: ``(pid, "host:pid")`` of this process, for the worker field.
_worker = None


def worker_name():
    """Return ``host:pid`` of this process."""
    global _worker
    pid = os.getpid()
    if _worker is None or _worker[0] != pid:
        _worker = (pid, '%s:%d' % (socket.gethostname(), pid))
    return _worker[1]


def record_id(queue, message_id):
    """Return the ``_id`` of the record of `message_id` on `queue`."""
    return '%s/%s' % (queue, message_id)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def find_record(db, queue, message_id):
    """Return the record of `message_id` on `queue`, or None."""
    return db[COLLECTION].find_one({'_id': record_id(queue, message_id)})


def find_records(db, record_ids):
    """Return ``{_id: record}`` for those of `record_ids` that exist."""
    if not record_ids:
        return {}
    found = db[COLLECTION].find({'_id': {'$in': list(record_ids)}})
    return {record['_id']: record for record in found}


def count_unfinished(db, queue, message_id):
    """Count one more delivery that an earlier worker did not finish.

    Called for redelivered messages before their listener runs; returns
    how many such deliveries are recorded now.
    """
    record = db[COLLECTION].find_one_and_update(
        {'_id': record_id(queue, message_id)},
        {'$inc': {'unfinished': 1},
         '$setOnInsert': {'queue': queue, 'message_id': message_id}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    return record['unfinished']


def outcome_fields(envelope, listener, status, started_at, attempts,
                   error=None, reason=None):
    """Return the fields to ``$set`` on a record for an outcome."""
    finished_at = utcnow()
    fields = {
        'message_id': envelope.message_id,
        'queue': envelope.queue,
        'exchange': storable_text(envelope.exchange),
        'routing_key': storable_text(envelope.routing_key),
        'listener': listener.label if listener is not None else None,
        'project_id': storable_text(envelope.project_id),
        'mount_point': storable_text(envelope.mount_point),
        'status': status,
        'attempts': attempts,
        'worker': worker_name(),
        'started_at': started_at,
        'finished_at': finished_at,
        'duration': (finished_at - started_at).total_seconds(),
    }
    if envelope.published_at is not None:
        fields['published_at'] = datetime.datetime.fromtimestamp(
            envelope.published_at, datetime.timezone.utc)
        fields['latency'] = finished_at.timestamp() - envelope.published_at
    if error is not None:
        fields['error'] = storable_text(error, MAX_ERROR_LENGTH)
        fields['reason'] = reason
    return fields


#: Longest text kept from a message field or an error, in characters.
MAX_TEXT_LENGTH = 200
MAX_ERROR_LENGTH = 2000


def storable_text(value, limit=MAX_TEXT_LENGTH):
    """Return `value` as a string any store takes, or None for None.

    Message fields come from any client: a number too big for BSON, a
    dict with ``$`` keys or a string with lone surrogates must not stop
    the record of the message that carries it.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        value = repr(value)
    value = value.encode('utf-8', 'backslashreplace').decode('utf-8')
    value = value.replace('\x00', '\\x00')
    return value if len(value) <= limit else value[:limit] + '...'



def save_outcome(db, fields):
    """Write an outcome outside any session (failures, dead letters).

    A record that says the message was handled is left alone: then the
    upsert finds no record to update and its insert raises
    DuplicateKeyError.
    """
    db[COLLECTION].update_one(
        {'_id': record_id(fields['queue'], fields['message_id']),
         'status': {'$nin': [DONE, FLUSHED]}},
        {'$set': fields}, upsert=True)


def mark_done(db, queue, message_id):
    """Record that the outbox of a flushed message was sent."""
    db[COLLECTION].update_one(
        {'_id': record_id(queue, message_id)},
        {'$set': {'status': DONE}, '$unset': {'outbox': ''}})


def mark_requeued(db, queue, message_id):
    """Mark the record of `message_id` on `queue` as requeued; return
    True if its status was ``dead``.

    A redelivered message whose record says ``dead`` is acked as a
    duplicate, so this must happen before the requeued copy is published.
    The count of unfinished deliveries starts again, as the attempts do.
    """
    result = db[COLLECTION].update_one(
        {'_id': record_id(queue, message_id), 'status': DEAD},
        {'$set': {'status': REQUEUED, 'requeued_at': utcnow()},
         '$unset': {'unfinished': ''}})
    return result.modified_count == 1


def unmark_requeued(db, queue, message_id):
    """Undo :func:`mark_requeued` when the requeued copy was not sent."""
    db[COLLECTION].update_one(
        {'_id': record_id(queue, message_id), 'status': REQUEUED},
        {'$set': {'status': DEAD}, '$unset': {'requeued_at': ''}})


def count_by_status(db, queue):
    """Return ``{status: number of records}`` of `queue`, every status."""
    return {status: db[COLLECTION].count_documents(
                {'queue': queue, 'status': status})
            for status in STATUSES}


def last_error(db, queue):
    """Return the latest record of `queue` whose status is ``failed`` or
    ``dead``, or None."""
    return db[COLLECTION].find_one(
        {'queue': queue, 'status': {'$in': [FAILED, DEAD]}},
        sort=[('finished_at', -1)])


def prune(db, older_than, statuses=(DONE, DEAD)):
    """Delete records with one of `statuses` finished before the
    datetime `older_than`; return how many were deleted.

    A message redelivered after its record is gone is handled again, so
    keep records longer than a message can wait in a queue.
    """
    result = db[COLLECTION].delete_many({
        'status': {'$in': list(statuses)},
        'finished_at': {'$lt': older_than},
    })
    return result.deleted_count


def ensure_indexes(db):
    """Create the indexes that status queries use."""
    db[COLLECTION].create_index([('queue', 1), ('status', 1)])
    db[COLLECTION].create_index([('queue', 1), ('finished_at', -1)])

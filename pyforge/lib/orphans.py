"""Orphaned queues: listener queues that no installed listener claims.

A queue is left behind when an app is uninstalled or a listener method is
renamed or removed. pyforge finds such queues in the ``bus_queues``
collection, where reactor_setup records every queue it declares, and on
virtual transports also in the bindings of ``audit`` and ``react``.
RabbitMQ cannot list its queues without the management plugin, so a
queue that reactor_setup never recorded is not found there.

Only an empty orphaned queue with no consumer is deleted, so no waiting
message is lost.
"""

import dataclasses
import logging

from pyforge.lib import amqp
from pyforge.lib.routing import EXCHANGES
from pyforge.lib.topology import COLLECTION, close_channel, inspect_queue

log = logging.getLogger(__name__)

#: Outcomes of :func:`delete_orphans` for one queue.
DELETED = 'deleted'
KEPT = 'kept'
#: The queue no longer existed; its record was removed.
FORGOTTEN = 'forgotten'


@dataclasses.dataclass
class Orphan:
    """A queue that pyforge declared and that no listener claims now."""

    queue: str
    exchange: str
    #: Patterns that bind it, as far as pyforge can tell.
    patterns: tuple
    #: Listener label recorded when it was declared, or ''.
    listener: str
    #: Messages ready in it; None when the queue does not exist any more
    #: and only its record is left.
    messages: int
    #: Consumers attached; None when the transport cannot count them.
    consumers: int
    #: Set by :func:`delete_orphans`: DELETED, KEPT or FORGOTTEN.
    outcome: str = None
    #: Why it was kept, or what was done.
    detail: str = ''

    def to_json(self):
        """Return the orphan as a dict for ``json.dumps``."""
        document = dataclasses.asdict(self)
        document['patterns'] = list(self.patterns)
        return document


def find_orphans(connection, listeners, db):
    """Return the orphaned queues, sorted by name.

    `listeners` must be every installed listener, not a selection:
    a queue that any of them claims is not orphaned.
    """
    claimed = {listener.queue for listener in listeners}
    found = {}
    for document in db[COLLECTION].find():
        if document['_id'] not in claimed:
            found[document['_id']] = (
                document.get('exchange', ''),
                set(document.get('patterns', ())),
                document.get('listener', ''))
    virtual = amqp.is_virtual(connection)
    if virtual:
        # The exchanges' tables, not the records, say what is bound.
        for _, patterns, _ in found.values():
            patterns.clear()
        for queue, exchange, pattern in _virtual_bindings(connection):
            if queue in claimed:
                continue
            _, patterns, label = found.setdefault(
                queue, (exchange, set(), ''))
            patterns.add(pattern)

    orphans = []
    for queue in sorted(found):
        exchange, patterns, label = found[queue]
        state = _inspect(connection, queue, virtual, patterns)
        messages, consumers = state if state is not None else (None, None)
        orphans.append(Orphan(
            queue=queue, exchange=exchange, patterns=tuple(sorted(patterns)),
            listener=label, messages=messages,
            consumers=None if virtual else consumers))
    return orphans


def decide(orphan):
    """Return the ``(outcome, detail)`` that :func:`delete_orphans` is
    expected to reach for `orphan`, judged without changing anything."""
    if orphan.messages is None:
        return FORGOTTEN, 'the queue no longer exists; its record goes'
    if orphan.messages:
        return KEPT, ('it has %d message(s); consume or move them, then '
                      'run again' % orphan.messages)
    if orphan.consumers:
        return KEPT, ('it has %d consumer(s); stop the workers of the old '
                      'listener, then run again' % orphan.consumers)
    return DELETED, 'it is empty'


def delete_orphans(connection, orphans, db):
    """Delete each empty orphan without consumers; set every orphan's
    outcome and detail, and return the orphans."""
    for orphan in orphans:
        orphan.outcome, orphan.detail = decide(orphan)
        if orphan.outcome == FORGOTTEN:
            db[COLLECTION].delete_one({'_id': orphan.queue})
        elif orphan.outcome == DELETED:
            _delete(connection, orphan, db)
        log.info('orphaned queue %s: %s, %s', orphan.queue, orphan.outcome,
                 orphan.detail)
    return orphans


def _delete(connection, orphan, db):
    if amqp.is_virtual(connection):
        problem = _delete_virtual(connection, orphan)
    else:
        problem = _delete_on_broker(connection, orphan.queue)
    if problem is not None:
        orphan.outcome = KEPT
        orphan.detail = problem
        return
    db[COLLECTION].delete_one({'_id': orphan.queue})


def _delete_on_broker(connection, queue):
    """Delete `queue` unless it is in use or not empty; return why not."""
    channel = connection.channel()
    try:
        # The broker checks both conditions in the same step as it
        # deletes, so a message published meanwhile is never lost.
        channel.queue_delete(queue, if_unused=True, if_empty=True)
    except connection.channel_errors as exc:
        return 'the broker did not delete it: %s' % exc
    finally:
        close_channel(channel)
    return None


def _delete_virtual(connection, orphan):
    """Unbind an orphan on a virtual transport, where a queue exists only
    through its bindings; return why it was kept, or None."""
    channel = connection.channel()
    try:
        amqp.declare_exchanges(channel)
        bindings = [(exchange, binding_key)
                    for exchange in EXCHANGES
                    for binding_key, _, queue in channel.get_table(exchange)
                    if queue == orphan.queue]
        for exchange, binding_key in bindings:
            channel.queue_unbind(orphan.queue, exchange, binding_key)
        _, messages, _ = channel.queue_declare(orphan.queue, passive=True)
        if messages:
            # A message came in before the last binding went: bind the
            # queue again so that it and its messages stay visible.
            for exchange, binding_key in bindings:
                channel.queue_bind(orphan.queue, exchange, binding_key)
            return ('%d message(s) arrived while it was unbound; it was '
                    'bound again' % messages)
    finally:
        close_channel(channel)
    return None


def _inspect(connection, queue, virtual, patterns):
    if not virtual:
        return inspect_queue(connection, queue)
    found = inspect_queue(connection, queue, require_binding=False)
    if not patterns and not found[0]:
        # Neither bound nor holding messages: a virtual queue is gone.
        return None
    return found


def _virtual_bindings(connection):
    """Yield ``(queue, exchange, binding key)`` for every binding of
    ``audit`` and ``react``."""
    channel = connection.channel()
    try:
        amqp.declare_exchanges(channel)
        for exchange in EXCHANGES:
            for binding_key, _, queue in channel.get_table(exchange):
                yield queue, exchange, binding_key
    finally:
        close_channel(channel)

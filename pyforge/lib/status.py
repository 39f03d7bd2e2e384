"""The state of the bus for operators: queues, consumers, records.

Broker numbers come from a passive ``queue.declare``, which returns the
messages ready in a queue and its consumers. AMQP 0-9-1 has no way to
count the messages delivered to a worker and not yet acknowledged. Only
RabbitMQ's management plugin, or ``rabbitmqctl list_queues name
messages_unacknowledged`` on the broker host, shows them. The records tell
what the broker cannot: how many messages each queue handled, how many
wait for a retry (``failed``), and the last error.
"""

import dataclasses

from pyforge.lib import amqp
from pyforge.lib.amqp import DEAD_LETTER_QUEUE
from pyforge.lib.orphans import find_orphans
from pyforge.lib.topology import inspect_queue
from pyforge.model import records


@dataclasses.dataclass
class QueueStatus:
    """One listener queue as the broker and the records show it."""

    queue: str
    exchange: str
    patterns: tuple
    listener: str
    #: False when the queue was never declared (run reactor_setup).
    declared: bool
    #: Messages ready for delivery; None when the queue is not declared.
    ready: int
    #: Consumers attached; None when unknown, which is always the case on
    #: virtual transports such as ``filesystem://``.
    consumers: int
    #: ``{status: records}`` for every status of
    #: :data:`pyforge.model.records.STATUSES`.
    records: dict
    #: The latest ``failed`` or ``dead`` record, or None.
    last_error: dict

    def to_json(self):
        """Return the status as a dict for ``json.dumps``."""
        document = dataclasses.asdict(self)
        document['patterns'] = list(self.patterns)
        return document


@dataclasses.dataclass
class BusStatus:
    """Every listener queue, and the dead-letter queue."""

    broker: str
    queues: list
    #: Messages in ``pyforge.dead``; None when it was never declared.
    dead_letters: int
    #: False on virtual transports, which cannot count consumers.
    counts_consumers: bool
    #: Orphaned queues (see :mod:`pyforge.lib.orphans`) that still exist.
    #: Their messages wait for a listener that is no longer installed.
    orphans: list = dataclasses.field(default_factory=list)

    def problems(self):
        """Return what ``reactor_status --check`` reports, one line each."""
        found = []
        for status in self.queues:
            if not status.declared:
                found.append('queue %s is not declared; run paster '
                             'reactor_setup' % status.queue)
            elif status.consumers == 0:
                found.append('queue %s has no consumer; start paster '
                             'reactor for it' % status.queue)
        if self.dead_letters is None:
            found.append('the dead-letter queue %s is not declared; run '
                         'paster reactor_setup' % DEAD_LETTER_QUEUE)
        elif self.dead_letters:
            found.append('%d dead letter(s) in %s; see paster reactor_dead '
                         'CONFIG list' % (self.dead_letters,
                                          DEAD_LETTER_QUEUE))
        for orphan in self.orphans:
            if orphan.messages:
                found.append(
                    'orphaned queue %s holds %d message(s) that no '
                    'installed listener handles; reinstall its app, or see '
                    'paster reactor_setup CONFIG --dry-run'
                    % (orphan.queue, orphan.messages))
        return found

    def to_json(self):
        """Return the status as a dict for ``json.dumps``."""
        return {
            'broker': self.broker,
            'dead_letters': self.dead_letters,
            'counts_consumers': self.counts_consumers,
            'queues': [status.to_json() for status in self.queues],
            'orphans': [orphan.to_json() for orphan in self.orphans],
        }


def collect_status(connection, listeners, db, broker_url,
                   every_listener=None):
    """Return the :class:`BusStatus` of `listeners`' queues.

    `broker_url` is shown as it is given, so pass it through
    :func:`pyforge.lib.amqp.mask_url`. `every_listener`, the listeners of
    every installed app, decides which queues are orphaned; it defaults to
    `listeners`.
    """
    virtual = amqp.is_virtual(connection)
    statuses = []
    for listener in listeners:
        found = inspect_queue(connection, listener.queue)
        ready = consumers = None
        if found is not None:
            ready = found[0]
            consumers = None if virtual else found[1]
        statuses.append(QueueStatus(
            queue=listener.queue,
            exchange=listener.exchange,
            patterns=listener.patterns,
            listener=listener.label,
            declared=found is not None,
            ready=ready,
            consumers=consumers,
            records=records.count_by_status(db, listener.queue),
            last_error=_last_error(db, listener.queue),
        ))
    dead = inspect_queue(connection, DEAD_LETTER_QUEUE,
                         require_binding=False)
    orphans = find_orphans(connection, every_listener or listeners, db)
    return BusStatus(
        broker=broker_url,
        queues=statuses,
        dead_letters=None if dead is None else dead[0],
        counts_consumers=not virtual,
        # An orphan whose queue is gone is only a stale record, which
        # reactor_setup --delete-orphans removes. It has no messages.
        orphans=[orphan for orphan in orphans if orphan.messages is not None],
    )


def _last_error(db, queue):
    record = records.last_error(db, queue)
    if record is None:
        return None
    return {
        'message_id': record.get('message_id'),
        'status': record.get('status'),
        'reason': record.get('reason'),
        'error': record.get('error'),
        'finished_at': record.get('finished_at'),
    }

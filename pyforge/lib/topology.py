"""Declaring the bus on the broker: exchanges, queues and bindings.

Declaring is idempotent: a second run finds everything in place and
changes nothing. A queue is never deleted, so no message waiting in one
is lost. A pattern removed from a listener is unbound: RabbitMQ cannot
list bindings without its management plugin, so pyforge keeps the
patterns it bound in the ``bus_queues`` collection and unbinds those that
no listener declares any more.
"""

import dataclasses
import logging

import kombu

from pyforge.lib import amqp

log = logging.getLogger(__name__)

#: Collection of the queues and patterns reactor_setup declared.
COLLECTION = 'bus_queues'


@dataclasses.dataclass
class QueueState:
    """A listener queue as reactor_setup found and left it."""

    queue: str
    exchange: str
    patterns: tuple
    listener: str
    #: ``created`` or ``exists``.
    state: str
    #: Messages ready in the queue when it was inspected.
    messages: int
    #: Consumers attached when it was inspected (0 on virtual transports).
    consumers: int
    #: Patterns that were bound before and are unbound now.
    unbound: tuple = ()
    #: Why the queue could not be declared, for state ``differs``.
    error: str = None


def declare_topology(connection, listeners, db):
    """Declare the exchanges, the dead-letter queue and every listener's
    queue and bindings; return a :class:`QueueState` per listener."""
    channel = connection.channel()
    try:
        amqp.declare_exchanges(channel)
        amqp.dead_letter_queue()(channel).declare()
    finally:
        _close(channel)
    states = []
    for listener in listeners:
        # A failed declare closes its channel, so each queue gets its own.
        channel = connection.channel()
        try:
            states.append(_declare_listener(connection, channel, listener,
                                            db))
        finally:
            _close(channel)
    return states


def inspect_queue(connection, name):
    """Return ``(message_count, consumer_count)``, or None if `name` does
    not exist. On virtual transports, which keep no list of queues, a
    queue exists once it is bound or holds messages."""
    channel = connection.channel()
    try:
        if amqp.is_virtual(connection):
            if not (_virtually_bound(channel, name)
                    or channel._size(name)):
                return None
        try:
            _, messages, consumers = channel.queue_declare(
                name, passive=True)
        except connection.channel_errors:
            # The broker closed the channel: the queue does not exist.
            return None
        return messages, consumers
    finally:
        _close(channel)


def _declare_listener(connection, channel, listener, db):
    found = inspect_queue(connection, listener.queue)
    queue = amqp.listener_queue(listener)
    try:
        queue(channel).declare()
    except connection.channel_errors as exc:
        log.error('cannot declare queue %s: %s', listener.queue, exc)
        messages, consumers = found if found is not None else (0, 0)
        return QueueState(
            queue=listener.queue, exchange=listener.exchange,
            patterns=listener.patterns, listener=listener.label,
            state='differs', messages=messages, consumers=consumers,
            error=_differs_advice(listener.queue, exc))

    stale = _stale_patterns(channel, listener, db)
    topic = amqp.exchange(listener.exchange)
    for pattern in stale:
        kombu.binding(topic, routing_key=pattern).unbind(queue(channel))
        log.info('unbound %s from %s with %r', listener.queue,
                 listener.exchange, pattern)
    db[COLLECTION].replace_one({'_id': listener.queue}, {
        '_id': listener.queue,
        'exchange': listener.exchange,
        'patterns': list(listener.patterns),
        'listener': listener.label,
    }, upsert=True)

    messages, consumers = found if found is not None else (0, 0)
    state = 'created' if found is None else 'exists'
    log.info('%s queue %s on %s with %s for %s', state, listener.queue,
             listener.exchange, ', '.join(listener.patterns),
             listener.label)
    return QueueState(
        queue=listener.queue,
        exchange=listener.exchange,
        patterns=listener.patterns,
        listener=listener.label,
        state=state,
        messages=messages,
        consumers=consumers,
        unbound=tuple(stale),
    )


def _differs_advice(queue, exc):
    return (
        'queue %s exists with other arguments or properties than pyforge '
        'declares (%s). RabbitMQ cannot change them in place. To migrate '
        'it without losing messages: stop the workers consuming it, move '
        'its messages to a temporary queue (for example with a shovel), '
        'delete it (rabbitmqctl delete_queue -p VHOST %s), run paster '
        'reactor_setup, and move the messages back. Settings such as '
        'dead-lettering or limits are better set by a policy '
        '(rabbitmqctl set_policy), which needs no new queue.'
        % (queue, exc, queue))


def _stale_patterns(channel, listener, db):
    """Return patterns bound to the listener's queue that it dropped."""
    if amqp.is_virtual(channel.connection.client):
        bound = {binding_key for binding_key, _, queue
                 in channel.get_table(listener.exchange)
                 if queue == listener.queue}
    else:
        recorded = db[COLLECTION].find_one({'_id': listener.queue}) or {}
        bound = set(recorded.get('patterns', ()))
    return sorted(bound - set(listener.patterns))


def _virtually_bound(channel, name):
    for exchange in amqp.bus_exchanges():
        exchange(channel).declare()
        if any(queue == name
               for _, _, queue in channel.get_table(exchange.name)):
            return True
    return False


def _close(channel):
    try:
        channel.close()
    except Exception as exc:
        log.debug('closing a channel failed: %s', exc)

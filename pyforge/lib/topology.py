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

from pyforge.exceptions import ConfigurationError
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


def declare_topology(connection, listeners, db):
    """Declare the exchanges, the dead-letter queue and every listener's
    queue and bindings; return a :class:`QueueState` per listener."""
    channel = connection.channel()
    try:
        amqp.declare_exchanges(channel)
        amqp.dead_letter_queue()(channel).declare()
        states = [_declare_listener(connection, channel, listener, db)
                  for listener in listeners]
    finally:
        _close(channel)
    return states


def inspect_queue(connection, name):
    """Return ``(message_count, consumer_count)``, or None if `name` does
    not exist. On virtual transports a queue exists once it is bound."""
    channel = connection.channel()
    try:
        if amqp.is_virtual(connection):
            if not _virtually_bound(channel, name):
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
        raise ConfigurationError(
            'queue %r exists with other arguments than pyforge declares '
            '(%s). To keep its messages: stop its workers, move them with '
            'a shovel or "paster reactor_dead" tooling, delete the queue, '
            'then run paster reactor_setup again' % (listener.queue, exc)
        ) from None

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

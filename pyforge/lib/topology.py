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


@dataclasses.dataclass
class QueuePlan:
    """Changes that reactor_setup would make to one listener's queue."""

    listener: object
    #: ``(ready messages, consumers)``, or None when the queue is missing.
    found: tuple
    #: Patterns bound to the queue now, as far as pyforge can tell: from
    #: the exchanges' tables on virtual transports, else from the
    #: ``bus_queues`` record.
    bound: tuple

    @property
    def to_bind(self):
        """Patterns the listener declares that are not bound yet."""
        return tuple(pattern for pattern in self.listener.patterns
                     if pattern not in self.bound)

    @property
    def to_unbind(self):
        """Patterns bound to the queue that the listener dropped."""
        return tuple(sorted(set(self.bound) - set(self.listener.patterns)))


@dataclasses.dataclass
class TopologyPlan:
    """Exchanges and queues that reactor_setup would declare, bind and
    unbind."""

    #: ``{exchange name: True if it exists}`` for ``audit`` and ``react``.
    exchanges: dict
    #: ``(ready messages, consumers)`` of ``pyforge.dead``, or None when
    #: it is missing.
    dead_letter_queue: tuple
    #: A :class:`QueuePlan` per listener.
    queues: list


def declare_topology(connection, listeners, db):
    """Declare the exchanges, the dead-letter queue and every listener's
    queue and bindings; return a :class:`QueueState` per listener."""
    channel = connection.channel()
    try:
        amqp.declare_exchanges(channel)
        amqp.dead_letter_queue()(channel).declare()
    finally:
        close_channel(channel)
    states = []
    for listener in listeners:
        # A failed declare closes its channel, so each queue gets its own.
        channel = connection.channel()
        try:
            states.append(_declare_listener(connection, channel, listener,
                                            db))
        finally:
            close_channel(channel)
    return states


def plan_topology(connection, listeners, db):
    """Return the :class:`TopologyPlan` of what :func:`declare_topology`
    would declare, bind and unbind.

    Nothing is declared on the broker. Virtual transports note the
    exchanges in this process's memory only, and their exchanges always
    count as existing, since they come into being with a binding.
    """
    virtual = amqp.is_virtual(connection)
    exchanges = {entity.name: virtual or _exchange_exists(connection,
                                                          entity.name)
                 for entity in amqp.bus_exchanges()}
    channel = connection.channel()
    try:
        if virtual:
            amqp.declare_exchanges(channel)
        queues = [_plan_listener(connection, channel, listener, db)
                  for listener in listeners]
    finally:
        close_channel(channel)
    dead = inspect_queue(connection, amqp.DEAD_LETTER_QUEUE,
                         require_binding=False)
    return TopologyPlan(exchanges=exchanges, dead_letter_queue=dead,
                        queues=queues)


def _exchange_exists(connection, name):
    channel = connection.channel()
    try:
        channel.exchange_declare(name, 'topic', passive=True)
    except connection.channel_errors:
        return False
    finally:
        close_channel(channel)
    return True


def inspect_queue(connection, name, require_binding=True):
    """Return ``(message_count, consumer_count)``, or None if `name` does
    not exist.

    Virtual transports keep no list of queues: there a queue exists once
    it is bound to ``audit`` or ``react`` or holds messages, or always
    when `require_binding` is False, as ``pyforge.dead`` does, which only
    the default exchange feeds.
    """
    channel = connection.channel()
    try:
        if amqp.is_virtual(connection) and require_binding:
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
        close_channel(channel)


def bound_patterns(channel, queue, exchange, db):
    """Return the patterns that bind `queue` to `exchange`, read from the
    exchange's table on virtual transports, else from ``bus_queues``."""
    if amqp.is_virtual(channel.connection.client):
        return tuple(sorted({binding_key for binding_key, _, bound_queue
                             in channel.get_table(exchange)
                             if bound_queue == queue}))
    recorded = db[COLLECTION].find_one({'_id': queue}) or {}
    if recorded.get('exchange', exchange) != exchange:
        return ()
    return tuple(recorded.get('patterns', ()))


def _plan_listener(connection, channel, listener, db):
    found = inspect_queue(connection, listener.queue)
    bound = ()
    if found is not None:
        bound = bound_patterns(channel, listener.queue, listener.exchange,
                               db)
    return QueuePlan(listener=listener, found=found, bound=bound)


def _declare_listener(connection, channel, listener, db):
    plan = _plan_listener(connection, channel, listener, db)
    found = plan.found
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

    stale = plan.to_unbind
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


def _virtually_bound(channel, name):
    for exchange in amqp.bus_exchanges():
        exchange(channel).declare()
        if any(queue == name
               for _, _, queue in channel.get_table(exchange.name)):
            return True
    return False


def close_channel(channel):
    """Close `channel`, logging rather than raising when that fails."""
    try:
        channel.close()
    except Exception as exc:
        log.debug('closing a channel failed: %s', exc)

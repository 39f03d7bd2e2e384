"""The carrot-style consumer of one listener queue, and held retries."""

import heapq
import itertools
import time

import kombu.compat

from pyforge.exceptions import ConfigurationError
from pyforge.lib import amqp
from pyforge.lib.message import ATTEMPT_HEADER


class Consumer(kombu.compat.Consumer):
    """Consumes the queue of one listener on a channel of its own.

    The queue must exist: ``paster reactor_setup`` declares it, with the
    bindings and arguments the worker should not have to guess. Messages
    reach `on_message(listener, message)` undecoded, so no body is ever
    deserialized by kombu, whatever its content type.
    """

    def __init__(self, connection, listener, on_message, prefetch):
        self.listener = listener
        super().__init__(
            connection,
            queue=listener.queue,
            exchange=listener.exchange,
            routing_key=listener.patterns[0],
            exchange_type='topic',
            durable=True,
            auto_declare=False,
            no_ack=False,
            on_message=lambda message: on_message(listener, message),
        )
        self.qos(prefetch_count=prefetch)

    def check_bindings(self):
        """Raise :class:`ConfigurationError` if the queue is not set up."""
        channel = self.channel
        queue = self.listener.queue
        if not amqp.is_virtual(self.connection):
            try:
                channel.queue_declare(queue, passive=True)
            except self.connection.channel_errors as exc:
                raise ConfigurationError(
                    'queue %r does not exist (%s); run paster reactor_setup '
                    'with this .ini file first' % (queue, exc)) from None
            return
        amqp.declare_exchanges(channel)
        table = channel.get_table(self.listener.exchange)
        bound = {binding_key for binding_key, _, name in table
                 if name == queue}
        missing = [pattern for pattern in self.listener.patterns
                   if pattern not in bound]
        if missing:
            raise ConfigurationError(
                'queue %r is not bound to %r with %s; run paster '
                'reactor_setup with this .ini file first'
                % (queue, self.listener.exchange, ', '.join(missing)))


class HeldRetries:
    """Failed messages waiting in memory for their retry.

    Virtual transports have no per-queue message TTL, so there a worker
    keeps a failed message unacked until its delay has passed and then
    handles it again. A worker killed meanwhile loses it on
    ``filesystem://``, which removes a message from disk once fetched.
    """

    def __init__(self, clock=time.monotonic):
        # pyforge.lib.testing passes a fake clock, so that its retries
        # come due without sleeping.
        self._clock = clock
        self._heap = []
        self._order = itertools.count()

    def __len__(self):
        return len(self._heap)

    def hold(self, listener, message, delivery, outcome):
        delivery.headers[ATTEMPT_HEADER] = outcome.attempts
        due = self._clock() + outcome.delay
        heapq.heappush(self._heap, (
            due, next(self._order), listener, message, delivery))

    def wait_time(self, longest):
        """Return how long to wait for messages before the next is due."""
        if not self._heap:
            return longest
        return max(0.0, min(longest, self._heap[0][0] - self._clock()))

    def pop_due(self):
        """Yield ``(listener, message, delivery)`` of due retries."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, listener, message, delivery = heapq.heappop(self._heap)
            yield listener, message, delivery

    def peek(self):
        """Return ``(due, listener, delivery)`` of every held retry,
        soonest first, leaving them held."""
        return [(due, listener, delivery)
                for due, _, listener, _, delivery in sorted(self._heap)]

    def drain(self):
        """Yield every held retry with its failed attempts, emptying."""
        while self._heap:
            _, _, listener, message, delivery = heapq.heappop(self._heap)
            yield listener, message, delivery, \
                delivery.headers[ATTEMPT_HEADER]


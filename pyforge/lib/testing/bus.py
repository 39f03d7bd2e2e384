"""The test bus: a worker's dispatch, in-process and synchronous.

A :class:`Bus` routes with kombu's ``memory://`` transport, made to
route like RabbitMQ by :func:`pyforge.lib.transport.rabbit_compatible`,
and keeps documents in a fresh in-memory SQLite store. It hands each
message to :class:`pyforge.lib.dispatch.Dispatcher` and settles the
outcome with :func:`pyforge.lib.outcome.settle`, as a worker does. Only
the waiting differs: retries come due on a :class:`FakeClock`.
"""

import collections
import json
import logging
import math

import kombu

from pyforge.environment import configure, current_environment
from pyforge.exceptions import ConfigurationError
from pyforge.lib import store
from pyforge.lib.consumer import HeldRetries
from pyforge.lib.dispatch import Dispatcher
from pyforge.lib.outcome import settle
from pyforge.lib.message import ATTEMPT_HEADER, HOPS_HEADER, Delivery
from pyforge.lib.plugins import find_apps, scan_app
from pyforge.lib.routing import EXCHANGES, topic_matches
from pyforge.lib.testing.broker import (
    BROKER_URL, STORE_URL, BusEnvironment, CapturingPublisher,
    load_test_settings, private_memory_transport)
from pyforge.lib.testing.call import call_listener, listener_for
from pyforge.lib.testing.captured import (
    CallResult, DeliveryReport, FakeClock, Handled, PendingMessage,
    PublishedMessage, RecordingListener)
from pyforge.lib.testing.dead_letters import DeadLetterChecks
from pyforge.lib.testing.projects import ProjectHelpers
from pyforge.lib.topology import declare_topology
from pyforge.model import ensure_indexes

log = logging.getLogger(__name__)

#: Rounds :meth:`Bus.deliver` runs before it reports a loop. A chain of
#: messages takes a round per hop and per retry: 55 at most at the
#: default ``reactor.max_hops`` (10) and ``max_attempts`` (5). So
#: ``max_hops`` dead-letters a loop long before this bound.
DEFAULT_MAX_ROUNDS = 100


class DeliveryLoopError(AssertionError):
    """Raised when messages are still waiting after the last round."""


class Bus(ProjectHelpers, DeadLetterChecks):
    """An in-process bus that delivers messages as workers would.

    Arguments:
        config: see :func:`pyforge.lib.testing.broker.load_test_settings`.
        apps: entry point names of the installed apps to run; all of
            them when None.
        extra_apps: ``{name: class}`` of apps that are not installed,
            such as apps defined in a test module.
        max_rounds: the default bound of :meth:`deliver`.

    The bus is single-threaded: call it from the test's thread only.
    """

    def __init__(self, config=None, apps=None, extra_apps=None,
                 max_rounds=DEFAULT_MAX_ROUNDS):
        self.settings = load_test_settings(config)
        self.max_rounds = max_rounds
        #: ``{entry point name: app class}`` of the apps the bus runs.
        self.apps = _collect_apps(apps, extra_apps)
        listeners = sorted(
            (listener for name, app_class in self.apps.items()
             for listener in scan_app(name, app_class)),
            key=lambda listener: listener.queue)
        #: Listeners with a queue on this bus, sorted by queue name.
        self.listeners = [RecordingListener.wrap(listener, self._record)
                          for listener in listeners]
        self.db = store.connect(STORE_URL, self.settings.mongo_database)
        ensure_indexes(self.db)
        self._transport = private_memory_transport()
        self.connection = self.new_connection()
        declare_topology(self.connection, self.listeners, self.db)
        self.publisher = CapturingPublisher(self.connection, self._sent)
        self.dispatcher = Dispatcher(self.db, self.settings, self.publisher)
        #: The environment :meth:`activate` makes current.
        self.environment = BusEnvironment(self)
        self._channel = self.connection.channel()
        self._handling = None
        self._previous = None
        self._closed = False
        self._start_fresh()

    def _start_fresh(self):
        #: Moves only when :meth:`deliver` runs a retry.
        self.clock = FakeClock()
        self._held_retries = HeldRetries(clock=self.clock)
        #: :class:`PublishedMessage` for each publish to audit or react.
        self.published = []
        #: :class:`ListenerCall` for each listener call, in call order.
        self.calls = []
        self._dead_letters = []
        self._accounted = set()

    def new_connection(self):
        """Return a new connection to this bus's own memory broker."""
        return kombu.Connection(BROKER_URL, transport=self._transport)

    # -- environment --------------------------------------------------

    def activate(self):
        """Make this bus's environment current, so that ``publish()``
        outside a listener sends through it."""
        try:
            previous = current_environment()
        except ConfigurationError:
            previous = None
        if previous is not self.environment:
            self._previous = previous
            configure(self.environment)

    def deactivate(self):
        """Make current again the environment :meth:`activate` replaced.

        When there was none, this bus's environment stays current, and
        ``publish()`` raises once the bus is closed.
        """
        if self._previous is not None:
            configure(self._previous)
            self._previous = None

    def reset(self):
        """Drop every message, held retry and record; keep the store."""
        self._purge_queues()
        # Closing the channel drops its unacked messages, held retries
        # included, because memory:// does not put them back.
        self._channel.close()
        self._channel = self.connection.channel()
        self._start_fresh()

    def close(self):
        """Release the broker and the store; the bus is unusable after."""
        if self._closed:
            return
        self.deactivate()
        self._closed = True
        self._purge_queues()
        for closeable in (self._channel, self.publisher):
            closeable.close()
        self.connection.release()
        self.db.close()

    def _purge_queues(self):
        for name in list(self._transport.Channel.queues):
            self._channel.queue_purge(name)

    # -- delivering ---------------------------------------------------

    def deliver(self, max_rounds=None, advance_clock=True):
        """Deliver messages until every queue is empty; return a report.

        Each round hands every listener, in queue name order, the
        messages its queue contained when the round began. What they
        publish waits for the next round. When the queues are empty, the clock
        moves to the next held retry, unless `advance_clock` is False,
        and the retries then due make a round of their own.

        Raises :class:`DeliveryLoopError` when messages are still
        waiting after `max_rounds` rounds (default: ``self.max_rounds``).
        """
        limit = self.max_rounds if max_rounds is None else max_rounds
        report = DeliveryReport()
        while True:
            waiting = self._waiting()
            if not waiting and not self._retry_due(advance_clock):
                return report
            if report.rounds >= limit:
                raise DeliveryLoopError(self._loop_message(limit))
            report.rounds += 1
            if not waiting:
                due = list(self._held_retries.pop_due())
                for listener, message, delivery in due:
                    report.handled.append(
                        self._handle(listener, message, delivery))
                continue
            for listener, count in waiting:
                for _ in range(count):
                    message = self._channel.basic_get(listener.queue)
                    if message is None:
                        break
                    delivery = Delivery.from_kombu(message, listener.queue)
                    report.handled.append(
                        self._handle(listener, message, delivery))

    def _waiting(self):
        """Return ``(listener, ready messages)`` of non-empty queues."""
        waiting = []
        for listener in self.listeners:
            _, count, _ = self._channel.queue_declare(
                listener.queue, passive=True)
            if count:
                waiting.append((listener, count))
        return waiting

    def _retry_due(self, advance_clock):
        if not len(self._held_retries):
            return False
        wait = self._held_retries.wait_time(math.inf)
        if wait > 0:
            if not advance_clock:
                return False
            self.clock.advance(wait)
        return True

    def _handle(self, listener, message, delivery):
        self._handling = listener
        try:
            outcome = self.dispatcher.handle(delivery, listener)
            if settle(self.publisher, self._held_retries, listener,
                      message, delivery, outcome):
                message.ack()
        except BaseException:
            # What the broker does when a worker dies mid-message: the
            # message goes back to its queue, marked redelivered.
            if not message.acknowledged:
                message.reject(requeue=True)
            raise
        finally:
            self._handling = None
        return Handled(
            queue=listener.queue, listener=listener.label,
            routing_key=delivery.original_routing_key,
            status=outcome.status, attempts=outcome.attempts,
            reason=outcome.reason, error=outcome.error)

    def pending(self):
        """Return a :class:`PendingMessage` for each message waiting in a
        queue or held for its retry."""
        found = []
        for listener in self.listeners:
            for message in self._channel.peek(listener.queue):
                delivery = Delivery.from_kombu(message, listener.queue)
                found.append(self._pending(listener, delivery, None))
        for due, listener, delivery in self._held_retries.peek():
            found.append(self._pending(listener, delivery,
                                       due - self.clock.now))
        return found

    def _pending(self, listener, delivery, due_in):
        headers = delivery.headers
        published = self._published_by_id.get(delivery.message_id)
        return PendingMessage(
            queue=listener.queue, listener=listener.label,
            routing_key=delivery.original_routing_key,
            hops=headers.get(HOPS_HEADER, 0),
            attempt=headers.get(ATTEMPT_HEADER, 0),
            message_id=delivery.message_id,
            published_by=published.published_by if published else None,
            due_in=due_in)

    def _loop_message(self, limit):
        groups = collections.OrderedDict()
        for item in self.pending():
            key = (item.routing_key, item.queue, item.listener,
                   item.published_by)
            count, hops = groups.get(key, (0, 0))
            groups[key] = (count + 1, max(hops, item.hops))
        lines = ['messages were still waiting after %d delivery rounds, so '
                 'a listener probably publishes in a loop:' % limit]
        for (routing_key, queue, listener, publisher), (count, hops) \
                in groups.items():
            lines.append(
                '  %d message(s) %r on %s for %s, hop %d, published by %s'
                % (count, routing_key, queue, listener, hops,
                   publisher or 'the test'))
        lines.append('Break the loop, or pass a larger max_rounds to '
                     'deliver() (--pyforge-max-rounds) if the chain is '
                     'meant to be that long.')
        return '\n'.join(lines)

    # -- calling one listener -----------------------------------------

    def listener(self, method, exchange=None):
        """Return the listener of this bus that calls `method`."""
        return listener_for(self.listeners, method, exchange)

    def call(self, method, data=None, routing_key=None, project=None,
             app=None, message=None, exchange=None):
        """Call one listener with ``c`` set; flush and publish after.

        Arguments:
            method: the listener, e.g. ``bus.app('demo', 'hello').auditor``
                or ``HelloForgeApp.count_messages`` (see :meth:`listener`).
            data: the message body; ``project_id`` and, on ``audit``,
                ``mount_point`` are filled from `project` and `app`.
            routing_key: required unless the listener has a single
                pattern without wildcards.
            project: a Project or its id; defaults to the app's project
                or the data's ``project_id``.
            app: ``c.app`` and, for instance methods, ``self``: an app
                instance or a mount point. Defaults to the instance the
                method is bound to, or for instance auditors to the data's
                ``mount_point``.
            message: ``c.message`` as an Envelope, or a dict of Envelope
                fields to change, e.g. ``{'attempt': 2}``.
            exchange: picks one exchange of a method that has both.

        Unlike :meth:`deliver`, the call makes one call even for a
        reactor, and keeps no message record, retry or hop check. If the
        listener raises, the error propagates and nothing is written or
        sent. Returns a :class:`CallResult`.
        """
        listener = self.listener(method, exchange)
        bound = getattr(method, '__self__', None)
        bound_app = bound if not isinstance(bound, type) else None
        returned, writes, outbox = call_listener(
            self, listener, bound_app=bound_app, data=data,
            routing_key=routing_key, project=project, app=app,
            message=message)
        first = len(self.published)
        self._handling = listener
        try:
            for outgoing in outbox:
                self.publisher.send(outgoing)
        finally:
            self._handling = None
        return CallResult(returned=returned, writes=writes,
                          published=self.published[first:])

    # -- records ------------------------------------------------------

    def _record(self, call):
        self.calls.append(call)

    def _sent(self, message):
        if message.exchange not in EXCHANGES:
            return
        table = self._channel.get_table(message.exchange)
        queues = sorted({queue for binding_key, _, queue in table
                         if topic_matches(binding_key, message.routing_key)})
        self.published.append(PublishedMessage(
            exchange=message.exchange,
            routing_key=message.routing_key,
            data=json.loads(message.body.decode('utf-8')),
            headers=dict(message.headers),
            message_id=message.message_id,
            queues=tuple(queues),
            published_by=self._handling.label if self._handling else None,
        ))

    @property
    def _published_by_id(self):
        return {message.message_id: message for message in self.published}

    def find_published(self, exchange=None, routing_key=None):
        """Return the published messages with this exchange and key."""
        return [message for message in self.published
                if exchange in (None, message.exchange)
                and routing_key in (None, message.routing_key)]

def _collect_apps(names, extra_apps):
    apps = dict(find_apps(names))
    for name, app_class in (extra_apps or {}).items():
        if apps.get(name, app_class) is not app_class:
            raise ConfigurationError(
                'extra app %r is %r, but the installed app of that name is '
                '%r; give it another name' % (name, app_class, apps[name]))
        apps[name] = app_class
    return apps



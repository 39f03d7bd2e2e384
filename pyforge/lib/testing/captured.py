"""Records of the test bus: messages, listener calls, dead letters."""

import collections
import copy
import dataclasses
import json

from pyforge.lib import retry
from pyforge.lib.context import c
from pyforge.lib.message import (
    EXCHANGE_HEADER, HOPS_HEADER, ROUTING_KEY_HEADER)
from pyforge.lib.plugins import Listener


@dataclasses.dataclass(frozen=True)
class PublishedMessage:
    """A message published to ``audit`` or ``react`` through the bus."""

    exchange: str
    routing_key: str
    #: The body, decoded from JSON.
    data: dict
    headers: dict
    message_id: str
    #: Queues the exchange routed it to, in name order.
    queues: tuple
    #: Label of the listener that published it, or None for test code.
    published_by: str = None

    @property
    def hops(self):
        """Listener-to-listener publishes behind this message."""
        return self.headers.get(HOPS_HEADER, 0)


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A message the bus dead-lettered, read from ``pyforge.dead``."""

    #: Reason code, e.g. ``max-attempts`` or ``unknown-project``.
    reason: str
    error: str
    #: Queue of the listener that gave up on it.
    queue: str
    #: Label of that listener, or '' when none was known.
    listener: str
    attempts: int
    #: Exchange and routing key of the first publish.
    exchange: str
    routing_key: str
    #: The body decoded from JSON, or None when it is not JSON.
    data: dict
    body: bytes
    headers: dict
    message_id: str

    @classmethod
    def from_kombu(cls, message):
        """Read a dead letter consumed from the dead-letter queue."""
        headers = dict(message.headers or {})
        body = message.body
        if isinstance(body, str):
            body = body.encode('utf-8')
        try:
            data = json.loads(body.decode('utf-8'))
        except ValueError:
            data = None
        return cls(
            reason=headers.get(retry.DEAD_REASON_HEADER),
            error=headers.get(retry.DEAD_ERROR_HEADER),
            queue=headers.get(retry.DEAD_QUEUE_HEADER),
            listener=headers.get(retry.DEAD_LISTENER_HEADER),
            attempts=headers.get(retry.DEAD_ATTEMPTS_HEADER),
            exchange=headers.get(EXCHANGE_HEADER),
            routing_key=headers.get(ROUTING_KEY_HEADER),
            data=data,
            body=body,
            headers=headers,
            message_id=(message.properties or {}).get('message_id'),
        )

    def matches(self, reason=None, queue=None, error=None,
                routing_key=None, listener=None):
        """Return True when every given field matches; `error` is a
        substring of the error, the others must be equal."""
        expected = {'reason': reason, 'queue': queue,
                    'routing_key': routing_key, 'listener': listener}
        for name, value in expected.items():
            if value is not None and getattr(self, name) != value:
                return False
        return error is None or error in (self.error or '')

    def describe(self):
        """Return one line saying which message died where, and why."""
        return ('%r on %s (%s): %s after %s attempt(s): %s'
                % (self.routing_key, self.queue, self.listener or '?',
                   self.reason, self.attempts, self.error))


@dataclasses.dataclass
class ListenerCall:
    """One call of a listener, with the contents of ``c`` during it."""

    #: ``module:Class.method``.
    listener: str
    app_name: str
    method_name: str
    queue: str
    exchange: str
    #: ``c.project._id``.
    project_id: str
    #: ``c.app.mount_point``, or None when ``c.app`` is None.
    mount_point: str
    #: ``c.message.routing_key``, ``message_id``, ``attempt``, ``hops``.
    routing_key: str
    message_id: str
    attempt: int
    hops: int
    #: The data the listener was given, copied before the call.
    data: dict
    #: ``Type: text`` of what the listener raised, or None.
    error: str = None

    @classmethod
    def from_context(cls, listener, data):
        """Record the call about to be made, from the ``c`` now pushed."""
        app = c.app
        message = c.message
        return cls(
            listener=listener.label,
            app_name=listener.app_name,
            method_name=listener.method_name,
            queue=listener.queue,
            exchange=listener.exchange,
            project_id=c.project._id,
            mount_point=app.mount_point if app is not None else None,
            routing_key=message.routing_key,
            message_id=message.message_id,
            attempt=message.attempt,
            hops=message.hops,
            data=copy.deepcopy(data),
        )


@dataclasses.dataclass(frozen=True)
class RecordingListener(Listener):
    """A listener that reports each of its calls to `recorder`.

    The bus hands these to the dispatcher in place of the plain
    listeners, so that every call is recorded with the ``c`` it ran
    with, whether it returned or raised. A worker accepts them too.
    """

    #: Called with a :class:`ListenerCall` after each call.
    recorder: object = dataclasses.field(
        default=None, compare=False, repr=False)

    @classmethod
    def wrap(cls, listener, recorder):
        """Return `listener` as a RecordingListener reporting to
        `recorder`."""
        fields = {field.name: getattr(listener, field.name)
                  for field in dataclasses.fields(Listener)}
        return cls(recorder=recorder, **fields)

    def method_for(self, target):
        method = super().method_for(target)

        def call(routing_key, data):
            record = ListenerCall.from_context(self, data)
            try:
                return method(routing_key, data)
            except Exception as exc:
                record.error = '%s: %s' % (type(exc).__name__, exc)
                raise
            finally:
                self.recorder(record)

        return call


@dataclasses.dataclass(frozen=True)
class Handled:
    """The outcome of one delivery during :meth:`Bus.deliver`."""

    queue: str
    listener: str
    routing_key: str
    #: An outcome status of :mod:`pyforge.lib.dispatch`: done,
    #: duplicate, retry or dead.
    status: str
    attempts: int
    reason: str = None
    error: str = None


@dataclasses.dataclass
class DeliveryReport:
    """The rounds and deliveries of one :meth:`Bus.deliver` call."""

    #: Rounds run. A round hands each listener the messages that its
    #: queue contained when the round began.
    rounds: int = 0
    handled: list = dataclasses.field(default_factory=list)

    @property
    def statuses(self):
        """A Counter of the outcome statuses, e.g. ``{'done': 3}``."""
        return collections.Counter(item.status for item in self.handled)


@dataclasses.dataclass(frozen=True)
class PendingMessage:
    """A message waiting in a listener's queue or for its retry."""

    queue: str
    listener: str
    routing_key: str
    hops: int
    #: Failed attempts so far.
    attempt: int
    message_id: str
    #: Label of the listener that published it, or None.
    published_by: str = None
    #: Seconds on the bus clock until a held retry is due; None for a
    #: message waiting in its queue.
    due_in: float = None


@dataclasses.dataclass(frozen=True)
class CallResult:
    """The result of :meth:`Bus.call` once the listener returned."""

    #: The listener's return value, which workers ignore.
    returned: object
    #: Buffered writes that the flush persisted.
    writes: int
    #: :class:`PublishedMessage` objects sent after the flush.
    published: list


class FakeClock:
    """Seconds that pass only when the test bus moves them on.

    :class:`pyforge.lib.consumer.HeldRetries` reads it in place of
    ``time.monotonic``, so retries come due without anyone sleeping.
    """

    def __init__(self):
        #: Seconds since the bus was created or reset.
        self.now = 0.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        """Move the clock forward by `seconds`."""
        if seconds < 0:
            raise ValueError(
                'seconds must be zero or more, not %r; the clock cannot '
                'go back' % seconds)
        self.now += seconds

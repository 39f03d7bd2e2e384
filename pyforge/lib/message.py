"""The message contract: what pyforge publishes and what it accepts.

A body is a JSON object sent as ``application/json`` in UTF-8. Its
``project_id`` names the project and, on the ``audit`` exchange,
``mount_point`` names the app instance; other fields belong to the app.
pyforge sets a message id, a timestamp and these headers:

- ``pyforge-hops``: listener-to-listener publishes behind this message;
- ``pyforge-attempt``: attempts that already failed (set on retries);
- ``pyforge-published-at``: publish time, seconds since the epoch;
- ``pyforge-exchange``, ``pyforge-routing-key``: where a retried message
  was first published, since a retry travels through other exchanges.

No other content type is ever deserialized: pickle or YAML bodies are
dead-lettered unread.
"""

import dataclasses
import json
import time
import uuid

from pyforge.exceptions import ConfigurationError, MessageError
from pyforge.lib.routing import EXCHANGES, check_routing_key

CONTENT_TYPE = 'application/json'
HOPS_HEADER = 'pyforge-hops'
ATTEMPT_HEADER = 'pyforge-attempt'
PUBLISHED_AT_HEADER = 'pyforge-published-at'
EXCHANGE_HEADER = 'pyforge-exchange'
ROUTING_KEY_HEADER = 'pyforge-routing-key'

#: Content encodings of a JSON body, compared in lowercase. kombu sends
#: bytes published without an encoding as 'binary'; JSON is UTF-8 anyway.
_UTF8_NAMES = ('', 'utf-8', 'utf8', 'binary')

#: Publish times accepted from the header, seconds since the epoch: any
#: other value is ignored rather than trusted for latencies.
_PUBLISHED_AT_RANGE = (0.0, 1e11)


@dataclasses.dataclass
class OutgoingMessage:
    """A message ready to publish, or kept in an outbox until the flush."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    headers: dict
    timestamp: int
    content_type: str = CONTENT_TYPE
    content_encoding: str = 'utf-8'

    def publish_arguments(self):
        """Return the keyword arguments of ``kombu.Producer.publish``."""
        return {
            'body': self.body,
            'exchange': self.exchange,
            'routing_key': self.routing_key,
            'content_type': self.content_type,
            'content_encoding': self.content_encoding,
            'headers': dict(self.headers),
            'message_id': self.message_id,
            'timestamp': self.timestamp,
            'delivery_mode': 2,
        }

    def to_document(self):
        """Return the message as a dict that MongoDB can store."""
        document = dataclasses.asdict(self)
        document['body'] = self.body.decode('utf-8')
        return document

    @classmethod
    def from_document(cls, document):
        """Rebuild a message stored by :meth:`to_document`."""
        values = dict(document)
        values['body'] = values['body'].encode('utf-8')
        return cls(**values)


def build_message(exchange, routing_key, data, hops=0):
    """Return an :class:`OutgoingMessage` carrying the dict `data`."""
    if exchange not in EXCHANGES:
        raise ConfigurationError(
            'exchange %r is unknown; publish to %s'
            % (exchange, ' or '.join(map(repr, EXCHANGES))))
    check_routing_key(routing_key)
    if not isinstance(data, dict):
        raise TypeError(
            'message data for %r must be a dict, not %s'
            % (routing_key, type(data).__name__))
    try:
        body = json.dumps(data, allow_nan=False, ensure_ascii=False,
                          separators=(',', ':')).encode('utf-8')
    except (TypeError, ValueError) as exc:
        raise TypeError(
            'message data for %r cannot be sent as JSON: %s; send only '
            'dicts, lists, strings, numbers, booleans and None'
            % (routing_key, exc)) from None
    now = time.time()
    return OutgoingMessage(
        exchange=exchange,
        routing_key=routing_key,
        body=body,
        message_id=uuid.uuid4().hex,
        headers={HOPS_HEADER: hops, PUBLISHED_AT_HEADER: now},
        timestamp=int(now),
    )


@dataclasses.dataclass
class Delivery:
    """A received message, as any transport delivers it."""

    body: bytes
    content_type: str
    content_encoding: str
    headers: dict
    message_id: str
    #: Exchange and routing key the message arrived with.
    exchange: str
    routing_key: str
    #: Queue it was consumed from.
    queue: str
    #: True when the broker delivered it before without an ack.
    redelivered: bool = False

    @classmethod
    def from_kombu(cls, message, queue):
        """Wrap a :class:`kombu.message.Message` consumed from `queue`."""
        properties = message.properties or {}
        info = message.delivery_info or {}
        body = message.body
        if isinstance(body, str):
            body = body.encode('utf-8')
        return cls(
            body=body,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers=dict(message.headers or {}),
            message_id=properties.get('message_id'),
            exchange=info.get('exchange', ''),
            routing_key=info.get('routing_key', ''),
            queue=queue,
            redelivered=bool(info.get('redelivered')),
        )

    @classmethod
    def from_outgoing(cls, message, queue):
        """Return how `message` would arrive on `queue`."""
        return cls(
            body=message.body,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers=dict(message.headers),
            message_id=message.message_id,
            exchange=message.exchange,
            routing_key=message.routing_key,
            queue=queue,
        )

    @property
    def original_exchange(self):
        """Exchange of the first publish, also for a retried message."""
        return _text_header(self.headers, EXCHANGE_HEADER) or self.exchange

    @property
    def original_routing_key(self):
        """Routing key of the first publish, also for a retried message."""
        return (_text_header(self.headers, ROUTING_KEY_HEADER)
                or self.routing_key)


@dataclasses.dataclass
class Envelope:
    """A delivery whose body and headers passed every check.

    This is ``c.message`` while a listener runs.
    """

    message_id: str
    exchange: str
    routing_key: str
    queue: str
    data: dict
    hops: int
    #: Attempts that failed before this one.
    attempt: int
    published_at: float
    redelivered: bool

    @property
    def project_id(self):
        return self.data.get('project_id')

    @property
    def mount_point(self):
        return self.data.get('mount_point')


def decode(delivery, max_body_size):
    """Check `delivery` and return its :class:`Envelope`.

    Raises :class:`MessageError` with a reason code when the message can
    never be handled, whatever the listener does.
    """
    content_type = delivery.content_type
    if not _is_json_type(content_type):
        raise MessageError(
            'content type %r is not accepted; publish JSON objects with '
            'content type %s' % (content_type, CONTENT_TYPE),
            reason='content-type')
    encoding = delivery.content_encoding or ''
    if not isinstance(encoding, str) or encoding.lower() not in _UTF8_NAMES:
        raise MessageError(
            'content encoding %r is not accepted; send JSON in utf-8'
            % (delivery.content_encoding,), reason='content-encoding')
    size = len(delivery.body)
    if size > max_body_size:
        raise MessageError(
            'body of %d bytes is over reactor.max_body_size = %d; send '
            'large content by reference' % (size, max_body_size),
            reason='too-large')
    try:
        text = delivery.body.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise MessageError(
            'body is not valid UTF-8 (%s)' % exc, reason='invalid-utf8')
    try:
        data = json.loads(text, parse_constant=reject_constant)
    except ValueError as exc:
        raise MessageError(
            'body is not valid JSON (%s): %s' % (exc, preview(text)),
            reason='invalid-json')
    except RecursionError:
        raise MessageError(
            'body is JSON nested too deeply to read: %s' % preview(text),
            reason='invalid-json') from None
    if not isinstance(data, dict):
        raise MessageError(
            'body is JSON %s, not an object; send an object such as '
            '{"project_id": ...}' % type(data).__name__,
            reason='not-an-object')
    return Envelope(
        message_id=delivery.message_id,
        exchange=delivery.original_exchange,
        routing_key=delivery.original_routing_key,
        queue=delivery.queue,
        data=data,
        hops=_counter(delivery.headers, HOPS_HEADER),
        attempt=_counter(delivery.headers, ATTEMPT_HEADER),
        published_at=_published_at(delivery.headers),
        redelivered=delivery.redelivered,
    )


def reject_constant(name):
    """Raise ValueError for NaN and Infinity (``json.loads`` hook)."""
    raise ValueError('%s is not valid JSON' % name)


def preview(text, limit=60):
    """Return a short, safe repr of a body that could not be decoded."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + '... (%d characters)' % len(text)


def _text_header(headers, name):
    """Return a header that is a string, or None: any client may set it."""
    value = headers.get(name)
    return value if isinstance(value, str) else None


def _counter(headers, name):
    value = headers.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MessageError(
            'header %s = %r is invalid; it must be a whole number of 0 or '
            'more' % (name, value), reason='invalid-header')
    return value


def _published_at(headers):
    value = headers.get(PUBLISHED_AT_HEADER)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = _PUBLISHED_AT_RANGE
        if low < value < high:
            return float(value)
    return None


def _is_json_type(content_type):
    """Tell whether `content_type` is JSON, in UTF-8 if it names a
    charset, as in ``application/json; charset=utf-8``."""
    if not isinstance(content_type, str):
        return False
    media_type, _, parameters = content_type.partition(';')
    if media_type.strip().lower() != CONTENT_TYPE:
        return False
    for parameter in parameters.split(';'):
        name, _, value = parameter.partition('=')
        if name.strip().lower() == 'charset' and \
                value.strip().strip('"').lower() not in ('utf-8', 'utf8'):
            return False
    return True

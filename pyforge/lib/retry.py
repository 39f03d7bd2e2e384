"""Retries of failed messages, and dead letters.

On RabbitMQ a failed message is published to a delay queue of its own
delay: a fanout exchange ``pyforge.delay.<ms>`` routes it to the queue of
the same name, whose ``x-message-ttl`` holds it for that long and whose
dead-letter exchange, the default exchange, then puts it back on its
listener's queue by name. Each delay has its own queue because RabbitMQ
expires messages only at the head of a queue.
"""

import time

import kombu

from pyforge.lib.amqp import DEAD_LETTER_QUEUE
from pyforge.lib.message import (
    ATTEMPT_HEADER, EXCHANGE_HEADER, ROUTING_KEY_HEADER, OutgoingMessage)
from pyforge.model.records import storable_text

#: Headers a dead letter carries besides the message's own.
DEAD_REASON_HEADER = 'pyforge-dead-reason'
DEAD_ERROR_HEADER = 'pyforge-dead-error'
DEAD_QUEUE_HEADER = 'pyforge-dead-queue'
DEAD_LISTENER_HEADER = 'pyforge-dead-listener'
DEAD_ATTEMPTS_HEADER = 'pyforge-dead-attempts'
DEAD_AT_HEADER = 'pyforge-dead-at'
#: Every header :func:`dead_letter` adds; :func:`requeue_message` drops
#: them.
DEAD_HEADERS = (DEAD_REASON_HEADER, DEAD_ERROR_HEADER, DEAD_QUEUE_HEADER,
                DEAD_LISTENER_HEADER, DEAD_ATTEMPTS_HEADER, DEAD_AT_HEADER)

#: Names of the message's own headers left out of a copy for their size.
DROPPED_HEADERS_HEADER = 'pyforge-dropped-headers'
#: Largest header, and all headers, a copy keeps of the message's own,
#: in characters of their repr; RabbitMQ's frame_max is 128 KiB.
MAX_HEADER_SIZE = 8 * 1024
MAX_HEADERS_SIZE = 64 * 1024

#: Longest header value kept from an error message, in characters.
MAX_ERROR_LENGTH = 1000


def retry_delay(settings, attempt):
    """Return the seconds to wait before retrying after `attempt` failed.

    The first retry waits ``reactor.retry_delay``; each further one
    ``reactor.retry_backoff`` times longer, up to ``retry_max_delay``.
    """
    try:
        delay = settings.reactor_retry_delay * (
            settings.reactor_retry_backoff ** (attempt - 1))
    except OverflowError:
        return settings.reactor_retry_max_delay
    return min(delay, settings.reactor_retry_max_delay)


def delay_entities(delay):
    """Return the fanout exchange and TTL queue for a delay in seconds."""
    milliseconds = max(1, int(round(delay * 1000)))
    name = 'pyforge.delay.%d' % milliseconds
    fanout = kombu.Exchange(name, type='fanout', durable=True)
    queue = kombu.Queue(name, exchange=fanout, durable=True,
                        auto_delete=False, queue_arguments={
                            'x-message-ttl': milliseconds,
                            'x-dead-letter-exchange': '',
                        })
    return fanout, queue


def retry_message(delivery, failed_attempts, delay_exchange):
    """Return the copy of `delivery` to publish through a delay queue.

    Its routing key is its listener's queue, where the default exchange
    delivers it once the delay queue dead-letters it.
    """
    headers = dict(delivery.headers)
    headers[ATTEMPT_HEADER] = failed_attempts
    headers[EXCHANGE_HEADER] = delivery.original_exchange
    headers[ROUTING_KEY_HEADER] = delivery.original_routing_key
    return _copy(delivery, delay_exchange, delivery.queue, headers)


def dead_letter(delivery, reason, error, attempts, listener_label=None):
    """Return the dead letter of `delivery`: its body and headers as
    received, and why it died."""
    headers = dict(delivery.headers)
    headers.update({
        DEAD_REASON_HEADER: reason,
        DEAD_ERROR_HEADER: storable_text(error, MAX_ERROR_LENGTH),
        DEAD_QUEUE_HEADER: delivery.queue,
        DEAD_LISTENER_HEADER: listener_label or '',
        DEAD_ATTEMPTS_HEADER: attempts,
        DEAD_AT_HEADER: time.time(),
        EXCHANGE_HEADER: delivery.original_exchange,
        ROUTING_KEY_HEADER: delivery.original_routing_key,
    })
    return _copy(delivery, '', DEAD_LETTER_QUEUE, headers)


def requeue_message(delivery, republish=False):
    """Return the copy of a dead letter to publish for another try.

    The copy goes to the queue the message died on, through the default
    exchange, as a retry does. With `republish` it goes to the exchange
    and routing key of the first publish instead, so every queue bound for
    that key receives it. Its failed attempts start again from 0 and the
    dead-letter headers are dropped. It keeps its message id, so a queue
    whose record shows it handled acks it as a duplicate.
    """
    headers = {name: value for name, value in delivery.headers.items()
               if name not in DEAD_HEADERS and name != ATTEMPT_HEADER}
    exchange = delivery.original_exchange
    routing_key = delivery.original_routing_key
    headers[EXCHANGE_HEADER] = exchange
    headers[ROUTING_KEY_HEADER] = routing_key
    if republish:
        return _copy(delivery, exchange, routing_key, headers)
    return _copy(delivery, '', delivery.headers[DEAD_QUEUE_HEADER], headers)


def _copy(delivery, exchange, routing_key, headers):
    content_type = delivery.content_type
    content_encoding = delivery.content_encoding
    if not content_type:
        # kombu would serialize a body published without a content type.
        content_type = 'application/octet-stream'
        content_encoding = content_encoding or 'binary'
    return OutgoingMessage(
        exchange=exchange,
        routing_key=routing_key,
        body=delivery.body,
        message_id=delivery.message_id,
        headers=_bounded(headers),
        timestamp=int(time.time()),
        content_type=content_type,
        content_encoding=content_encoding,
    )


def _bounded(headers):
    """Return `headers` without those too big to publish again.

    A copy carries pyforge's headers besides the message's own; a header
    near the broker's frame size, which fitted once, would then make the
    publish fail, and the message come back for ever.
    """
    kept, dropped, total = {}, [], 0
    for name, value in sorted(headers.items(),
                              key=lambda item: len(repr(item[1]))):
        size = len(repr(value)) + len(name)
        if not name.startswith('pyforge-') and (
                size > MAX_HEADER_SIZE or total + size > MAX_HEADERS_SIZE):
            dropped.append(name)
            continue
        kept[name] = value
        total += size
    if dropped:
        kept[DROPPED_HEADERS_HEADER] = ', '.join(sorted(dropped))[:1000]
    return kept

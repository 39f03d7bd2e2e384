"""Reading the dead-letter queue ``pyforge.dead`` without emptying it.

Each dead letter has an id: 12 hex digits of a hash of its message id,
the queue it died on, its dead-letter time and its body. The id stays the
same for as long as the dead letter waits. It distinguishes the dead
letters of one message on several queues, and identifies those of
messages without a message id.

On RabbitMQ the queue is read with ``basic.get`` without acks: every dead
letter read stays unacknowledged until it is acked (removed) or the
channel closes, when RabbitMQ puts it back in its place. On
``filesystem://``, where fetching a message deletes its file, the files
are read where they lie and only a removal moves one.
"""

import dataclasses
import datetime
import hashlib
import json
import logging
import os

from pyforge.exceptions import ConfigurationError
from pyforge.lib import amqp, transport, unacked
from pyforge.lib.amqp import DEAD_LETTER_QUEUE
from pyforge.lib.message import Delivery
from pyforge.lib.retry import (
    DEAD_AT_HEADER, DEAD_ATTEMPTS_HEADER, DEAD_ERROR_HEADER,
    DEAD_LISTENER_HEADER, DEAD_QUEUE_HEADER, DEAD_REASON_HEADER)
from pyforge.lib.topology import close_channel, inspect_queue

log = logging.getLogger(__name__)

#: Hex digits of a dead-letter id.
ID_LENGTH = 12


@dataclasses.dataclass
class DeadLetter:
    """One message in ``pyforge.dead``, and why it died."""

    id: str
    #: The message as it waits in ``pyforge.dead``. Its `body` is None
    #: when :meth:`DeadLetterQueue.scan` ran with ``keep_bodies=False``.
    delivery: Delivery
    size: int
    #: What the broker needs to remove it: a kombu message on RabbitMQ,
    #: the path of its file on ``filesystem://``.
    handle: object = dataclasses.field(repr=False, default=None)

    def header(self, name, default=None):
        return self.delivery.headers.get(name, default)

    @property
    def message_id(self):
        return self.delivery.message_id

    @property
    def queue(self):
        """Listener queue the message died on."""
        return self.header(DEAD_QUEUE_HEADER, '')

    @property
    def reason(self):
        return self.header(DEAD_REASON_HEADER, '')

    @property
    def error(self):
        return self.header(DEAD_ERROR_HEADER, '')

    @property
    def listener(self):
        return self.header(DEAD_LISTENER_HEADER, '')

    @property
    def attempts(self):
        return self.header(DEAD_ATTEMPTS_HEADER)

    @property
    def dead_at(self):
        """Time it was dead-lettered, in UTC, or None if unknown."""
        value = self.header(DEAD_AT_HEADER)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)

    @property
    def exchange(self):
        """Exchange of the message's first publish."""
        return self.delivery.original_exchange

    @property
    def routing_key(self):
        """Routing key of the message's first publish."""
        return self.delivery.original_routing_key

    def matches(self, wanted):
        """Return True if `wanted` is this dead letter's id or message id."""
        return wanted in (self.id, self.message_id)

    def summary(self):
        """Return what ``reactor_dead list`` shows, as a JSON-ready dict."""
        return {
            'id': self.id,
            'message_id': self.message_id,
            'queue': self.queue,
            'listener': self.listener,
            'reason': self.reason,
            'error': self.error,
            'attempts': self.attempts,
            'dead_at': self.dead_at,
            'exchange': self.exchange,
            'routing_key': self.routing_key,
            'content_type': self.delivery.content_type,
            'size': self.size,
        }


def dead_letter_id(delivery):
    """Return the id of the dead letter `delivery`."""
    digest = hashlib.sha256()
    identity = [delivery.message_id or '',
                delivery.headers.get(DEAD_QUEUE_HEADER) or '',
                repr(delivery.headers.get(DEAD_AT_HEADER))]
    digest.update(json.dumps(identity).encode('utf-8'))
    digest.update(delivery.body)
    return digest.hexdigest()[:ID_LENGTH]


class DeadLetterQueue:
    """The dead-letter queue on one connection, to scan, take single dead
    letters off, put them back, and purge.

    On RabbitMQ the dead letters a scan read stay unacknowledged until
    :meth:`close`, so scan once per instance. Use it as a context manager.
    """

    def __init__(self, connection):
        self.connection = connection
        self.channel = connection.channel()
        self._files = transport.is_filesystem(self.channel)
        if self._files:
            # Dead letters that a reactor_dead killed midway had taken go
            # back first, even when no worker runs to do it.
            folder = self.channel.data_folder_in
            unacked.recover_unacked(unacked.unacked_root(folder),
                                    folder)
        found = inspect_queue(connection, DEAD_LETTER_QUEUE,
                              require_binding=False)
        if found is None:
            close_channel(self.channel)
            raise ConfigurationError(
                'the dead-letter queue %s does not exist on the broker; run '
                'paster reactor_setup with this .ini file first'
                % DEAD_LETTER_QUEUE)
        #: Dead letters waiting when the queue was opened.
        self.count = found[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the channel; on RabbitMQ every dead letter read and not
        removed goes back to the queue."""
        close_channel(self.channel)

    def scan(self, keep_bodies=True):
        """Yield the dead letters in queue order, oldest first.

        Stops after those that waited when the queue was opened, so that
        dead letters arriving meanwhile cannot keep it going.
        """
        if self._files:
            paths = transport.message_files(self.channel, DEAD_LETTER_QUEUE)
            for path in paths[:self.count]:
                message = transport.read_message_file(self.channel, path)
                if message is not None:
                    yield self._dead_letter(message, path, keep_bodies)
            return
        entity = amqp.dead_letter_queue()(self.channel)
        for _ in range(self.count):
            message = entity.get(no_ack=False)
            if message is None:
                return
            yield self._dead_letter(message, message, keep_bodies)

    def take(self, letter):
        """Take `letter` off the queue before it is sent elsewhere; return
        False when another process removed it meanwhile."""
        if not self._files:
            # Unacknowledged since the scan: no one else can receive it.
            return True
        claimed = transport.claim_message_file(letter.handle)
        if claimed is None:
            return False
        letter.handle = claimed
        return True

    def put_back(self, letter):
        """Return a dead letter taken by :meth:`take` to the queue."""
        if self._files:
            letter.handle = transport.unclaim_message_file(
                letter.handle, self.channel.data_folder_in)

    def remove(self, letter):
        """Delete a dead letter taken by :meth:`take` for good."""
        if self._files:
            os.remove(letter.handle)
        else:
            letter.handle.ack()
        log.debug('removed dead letter %s (message %s) from %s', letter.id,
                  letter.message_id, DEAD_LETTER_QUEUE)

    def purge(self):
        """Delete every dead letter that no reader holds unacknowledged;
        return how many were deleted."""
        count = self.channel.queue_purge(DEAD_LETTER_QUEUE) or 0
        log.debug('purged %d dead letter(s) from %s', count,
                  DEAD_LETTER_QUEUE)
        return count

    def _dead_letter(self, message, handle, keep_bodies):
        delivery = Delivery.from_kombu(message, DEAD_LETTER_QUEUE)
        letter = DeadLetter(id=dead_letter_id(delivery), delivery=delivery,
                            size=len(delivery.body), handle=handle)
        if not keep_bodies:
            delivery.body = None
        return letter

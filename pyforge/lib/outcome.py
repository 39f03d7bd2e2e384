"""Outcomes of handled deliveries, and how a worker settles them."""

import dataclasses

from pyforge.lib import amqp
from pyforge.lib.message import Envelope
from pyforge.lib.retry import dead_letter, delay_entities, retry_message

#: Outcome statuses.
DONE = 'done'
DUPLICATE = 'duplicate'
RETRY = 'retry'
DEAD = 'dead'
#: A message without a message id, put back on its queue with one.
REPUBLISHED = 'republished'


@dataclasses.dataclass
class Outcome:
    """The result of handling one delivery, and the action it needs."""

    #: DONE, DUPLICATE or REPUBLISHED: ack. RETRY: try again after
    #: `delay`. DEAD: dead-letter with `reason` and `error`.
    status: str
    #: Attempts made so far, this one included.
    attempts: int = 0
    reason: str = None
    error: str = None
    #: Seconds to wait before the retry.
    delay: float = None
    #: Listener calls made (one per app instance for a reactor).
    calls: int = 0
    envelope: Envelope = None
    listener: object = None
    #: Messages to publish once the outcome is persisted.
    outbox: list = dataclasses.field(default_factory=list)
    #: Writes not flushed yet (:class:`pyforge.lib.dispatch.PendingFlush`),
    #: when the dispatcher was asked to defer them.
    pending: object = None


def settle(publisher, held, listener, message, delivery, outcome):
    """Publish the retry or dead letter that `outcome` calls for.

    Returns True when the message is to be acked now. On virtual
    transports, which have no message TTL, a retry waits in `held` (a
    :class:`HeldRetries`) unacked instead, and False is returned.
    Workers and :mod:`pyforge.lib.testing` both settle through here, so
    tests get the retries and dead letters that a worker would publish.
    """
    if outcome.status == RETRY:
        if amqp.is_virtual(publisher.connection):
            held.hold(listener, message, delivery, outcome)
            return False
        fanout, queue = delay_entities(outcome.delay)
        publisher.maybe_declare(queue)
        publisher.send(retry_message(delivery, outcome.attempts, fanout.name))
    elif outcome.status == DEAD:
        publisher.maybe_declare(amqp.dead_letter_queue())
        publisher.send(dead_letter(
            delivery, outcome.reason, outcome.error, outcome.attempts,
            listener.label))
    return True

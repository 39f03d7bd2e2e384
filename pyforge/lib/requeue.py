"""Sending dead letters back for another try.

A requeued message keeps its message id and starts its attempts from 0.
Its record is marked ``requeued`` before the copy is published: a record
saying ``dead`` would make a worker ack a redelivered copy as a duplicate.
The dead letter is removed only once the broker took the copy, so a
failure leaves it in ``pyforge.dead``. A crash between the two steps
leaves both, and then the records make the second copy an acked
duplicate.
"""

import dataclasses
import logging

from pyforge.exceptions import PublishError
from pyforge.lib.retry import requeue_message
from pyforge.lib.routing import EXCHANGES
from pyforge.lib.topology import inspect_queue
from pyforge.model import records

log = logging.getLogger(__name__)

#: Outcomes of one dead letter.
REQUEUED = 'requeued'
KEPT = 'kept'


@dataclasses.dataclass
class RequeueResult:
    """Outcome of requeueing one dead letter."""

    letter: object
    #: REQUEUED, or KEPT when it is still in ``pyforge.dead``.
    outcome: str
    #: Destination of the copy, or the reason the dead letter was kept.
    detail: str


class Requeuer:
    """Requeues dead letters read from a :class:`DeadLetterQueue`.

    Arguments:
        dead_letters: the :class:`pyforge.lib.dead_letters.DeadLetterQueue`
            the dead letters were scanned from.
        publisher: a :class:`pyforge.lib.amqp.Publisher` on the same
            broker.
        db: the database of the message records.
        republish: send each copy to the exchange and routing key of its
            first publish instead of to the queue it died on.
    """

    def __init__(self, dead_letters, publisher, db, republish=False):
        self.dead_letters = dead_letters
        self.publisher = publisher
        self.db = db
        self.republish = republish
        self._queues = {}

    def requeue(self, letter):
        """Send `letter` back and remove it; return a RequeueResult."""
        problem = self._check_target(letter)
        if problem is not None:
            return self._kept(letter, problem)
        if not self.dead_letters.take(letter):
            return self._kept(letter, 'another process removed it from '
                                      'the dead-letter queue meanwhile')

        marked = False
        if letter.message_id and letter.queue:
            marked = records.mark_requeued(self.db, letter.queue,
                                           letter.message_id)
        message = requeue_message(letter.delivery, self.republish)
        try:
            routed = self.publisher.send(message)
            problem = None if routed else (
                'no queue received the copy; run paster reactor_setup, or '
                'check the routing key')
        except PublishError as exc:
            problem = str(exc)
        if problem is not None:
            self.dead_letters.put_back(letter)
            if marked:
                records.unmark_requeued(self.db, letter.queue,
                                        letter.message_id)
            return self._kept(letter, problem)

        self.dead_letters.remove(letter)
        if self.republish:
            target = 'exchange %s with routing key %s' % (
                message.exchange, message.routing_key)
        else:
            target = 'queue %s' % message.routing_key
        log.debug('requeued dead letter %s (message %s) to %s', letter.id,
                  letter.message_id, target)
        return RequeueResult(letter, REQUEUED, target)

    def _check_target(self, letter):
        """Return why `letter` cannot be requeued, or None."""
        if letter.delivery.body is None:
            raise ValueError('scan the dead letters with keep_bodies=True '
                             'to requeue them')
        if self.republish:
            if letter.exchange not in EXCHANGES:
                return ('its exchange %r is not %s'
                        % (letter.exchange, ' or '.join(EXCHANGES)))
            return None
        if not letter.queue:
            return ('it names no queue it died on; requeue it with '
                    '--republish to exchange %r with routing key %r'
                    % (letter.exchange, letter.routing_key))
        if not self._queue_exists(letter.queue):
            return ('queue %s does not exist any more; requeue it with '
                    '--republish to exchange %r with routing key %r'
                    % (letter.queue, letter.exchange, letter.routing_key))
        return None

    def _queue_exists(self, queue):
        if queue not in self._queues:
            found = inspect_queue(self.dead_letters.connection, queue)
            self._queues[queue] = found is not None
        return self._queues[queue]

    def _kept(self, letter, problem):
        log.debug('kept dead letter %s (message %s): %s', letter.id,
                  letter.message_id, problem)
        return RequeueResult(letter, KEPT, problem)

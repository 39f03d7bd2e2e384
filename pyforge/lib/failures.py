"""Messages that failed: a retry, or a dead letter, and their records.

A listener that raises gets its message retried after a growing delay
until ``reactor.max_attempts``; a message that can never succeed is
dead-lettered at once. Either way the message record says why.
"""

import logging

from pymongo.errors import DuplicateKeyError

from pyforge.lib.message import Envelope, OutgoingMessage
from pyforge.lib.outcome import DEAD, RETRY, Outcome
from pyforge.lib.retry import retry_delay
from pyforge.lib.store import TRANSIENT_ERRORS
from pyforge.model import records

log = logging.getLogger(__name__)


class Failures:
    """Turns failures into outcomes and records them.

    Arguments:
        db: the database of the message records.
        settings: :class:`pyforge.config.Settings`.
    """

    def __init__(self, db, settings):
        self.db = db
        self.settings = settings

    def failed(self, envelope, listener, exc, attempts, started_at):
        """Return the RETRY, or past the last attempt DEAD, outcome of a
        listener that raised `exc` or whose writes failed."""
        error = '%s: %s' % (type(exc).__name__, exc)
        maximum = self.settings.reactor_max_attempts
        if attempts >= maximum:
            log.error(
                'listener %s failed on message %s (%s) for the last time, '
                'attempt %d of %d', listener.label, envelope.message_id,
                envelope.routing_key, attempts, maximum, exc_info=exc)
            return self.dead(envelope, listener, 'max-attempts', error,
                             attempts, started_at, logged=True)
        delay = retry_delay(self.settings, attempts)
        log.warning(
            'listener %s failed on message %s (%s), attempt %d of %d; '
            'retrying in %.3g s', listener.label, envelope.message_id,
            envelope.routing_key, attempts, maximum, delay, exc_info=exc)
        self.save(envelope, listener, records.FAILED, started_at, attempts,
                  error, 'listener-failed')
        return Outcome(RETRY, attempts=attempts, reason='listener-failed',
                       error=error, delay=delay, envelope=envelope,
                       listener=listener)

    def dead(self, envelope, listener, reason, error, attempts, started_at,
             logged=False):
        """Return the DEAD outcome of a message, recording why."""
        if not logged:
            log.error('dead-lettering message %s from %s (%s): %s: %s',
                      envelope.message_id, envelope.queue,
                      envelope.routing_key, reason, error)
        self.save(envelope, listener, records.DEAD, started_at, attempts,
                  error, reason)
        return Outcome(DEAD, attempts=attempts, reason=reason, error=error,
                       envelope=envelope, listener=listener)

    def unexpected(self, delivery, listener, exc, started_at):
        """Return the DEAD outcome of a message pyforge itself could not
        handle, so that it stops no worker and no queue."""
        log.error('cannot handle message %s on %s: %s: %s; dead-lettering '
                  'it', delivery.message_id, delivery.queue,
                  type(exc).__name__, exc, exc_info=exc)
        envelope = bare_envelope(delivery)
        error = 'pyforge could not handle it: %s: %s' % (
            type(exc).__name__, exc)
        try:
            self.save(envelope, listener, records.DEAD, started_at, 0,
                      error, 'internal-error')
        except TRANSIENT_ERRORS:
            raise
        except Exception as save_error:
            log.error('cannot record message %s: %s', delivery.message_id,
                      save_error)
        return Outcome(DEAD, reason='internal-error', error=error,
                       envelope=envelope, listener=listener)

    def save(self, envelope, listener, status, started_at, attempts,
             error, reason):
        """Record a failure, unless the message is recorded as done."""
        fields = records.outcome_fields(
            envelope, listener, status, started_at, attempts, error=error,
            reason=reason)
        try:
            records.save_outcome(self.db, fields)
        except DuplicateKeyError:
            # Another worker handled the message meanwhile and recorded
            # it as done, which a failure must not overwrite.
            log.info('message %s on %s was handled by another worker',
                     envelope.message_id, envelope.queue)


def already_handled(record):
    """Tell whether `record` says the message was handled: done, or
    flushed with messages to send."""
    return record is not None and record.get('status') in (
        records.DONE, records.FLUSHED)


def redelivered_dead_letter(record, delivery):
    """Tell whether `delivery` was dead-lettered before and came back.

    A worker that died after recording a dead letter may not have
    published it; the message is dead-lettered again, so that it is never
    lost, at the price of a possible second dead letter. A requeued dead
    letter is a new delivery and is handled.
    """
    return (record is not None and record.get('status') == records.DEAD
            and delivery.redelivered)


def unsent_outbox(record):
    """Return the messages a worker flushed but died before sending."""
    if record.get('status') != records.FLUSHED:
        return []
    return [OutgoingMessage.from_document(document)
            for document in record.get('outbox', ())]


def bare_envelope(delivery):
    """Return an envelope for a delivery whose body could not be read."""
    return Envelope(
        message_id=delivery.message_id,
        exchange=delivery.original_exchange,
        routing_key=delivery.original_routing_key,
        queue=delivery.queue,
        data={},
        hops=0,
        attempt=0,
        published_at=None,
        redelivered=delivery.redelivered,
    )

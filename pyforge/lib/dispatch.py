"""One delivery in: the listener called with ``c`` set, changes flushed.

:meth:`Dispatcher.handle` does everything between receiving a message
and acking it, and returns a :class:`pyforge.lib.outcome.Outcome`
naming what the caller must do with the message: ack it, retry it after a delay, or dead-letter
it. Workers and the test helpers share it, so both handle a message the
same way. A worker handling a batch calls its two halves instead:
:meth:`Dispatcher.dispatch` inside the batch's transaction, and
:meth:`Dispatcher.complete`, which publishes, after the commit.
"""

import logging
import time
import uuid

from pyforge.exceptions import MessageError
from pyforge.lib import context
from pyforge.lib.message import (
    HOPS_HEADER, Delivery, Envelope, OutgoingMessage, decode)
from pyforge.lib.outcome import (
    DEAD, DONE, DUPLICATE, REPUBLISHED, RETRY, Outcome)
from pyforge.lib.resolve import Resolver
from pyforge.lib.retry import dead_letter, retry_delay, retry_message
from pyforge.model import records
from pyforge.model.writes import Session

log = logging.getLogger(__name__)

class Dispatcher:
    """Handles deliveries for listeners, against one database.

    Arguments:
        db: the database of projects, app configurations and records.
        settings: :class:`pyforge.config.Settings`.
        publisher: an object whose ``send(OutgoingMessage)`` publishes;
            it sends what listeners published, after the flush.
    """

    #: Weight of the latest call in a listener's average duration.
    DURATION_WEIGHT = 0.2

    def __init__(self, db, settings, publisher):
        self.db = db
        self.settings = settings
        self.publisher = publisher
        self.resolver = Resolver(db)
        #: A :class:`pyforge.lib.batch.Chunk` whose transaction flushes
        #: join, or None to flush each message in its own.
        self.chunk = None
        self._known_records = None
        self._durations = {}

    def read_ahead(self, deliveries):
        """Read the records of `deliveries` in one query, and keep what
        is read of projects and apps until :meth:`forget`."""
        ids = [records.record_id(delivery.queue, delivery.message_id)
               for delivery in deliveries
               if isinstance(delivery.message_id, str)]
        self._known_records = records.find_records(self.db, ids)
        self.resolver.remember()

    def forget(self):
        """Forget what :meth:`read_ahead` read."""
        self._known_records = None
        self.resolver.forget()

    def average_duration(self, listener):
        """Return the recent average seconds of a call of `listener`."""
        return self._durations.get(listener.queue, 0.0)

    def handle(self, delivery, listener):
        """Handle `delivery` for `listener`; return its Outcome."""
        outcome = self.dispatch(delivery, listener)
        self.complete(outcome)
        return outcome

    def dispatch(self, delivery, listener):
        """Do all of :meth:`handle` but publishing; return the Outcome."""
        started_at = records.utcnow()
        clock = time.perf_counter()
        adopted = not isinstance(delivery.message_id, str) \
            or not delivery.message_id
        if adopted:
            # Without an id a message has no record: no redelivery could
            # be recognised, nor a message that keeps killing workers.
            delivery.message_id = uuid.uuid4().hex
        try:
            envelope = decode(delivery, self.settings.reactor_max_body_size)
        except MessageError as exc:
            envelope = _bare_envelope(delivery)
            return self._dead(envelope, listener, exc.reason, str(exc),
                              0, started_at)
        if adopted:
            log.info('message on %s (%s) had no message id; put back on '
                     'its queue as %s', envelope.queue, envelope.routing_key,
                     envelope.message_id)
            return Outcome(REPUBLISHED, envelope=envelope, listener=listener,
                           outbox=[retry_message(delivery, envelope.attempt,
                                                 '')])

        previous = envelope.attempt
        record = self._find_record(envelope)
        record_exists = record is not None
        if _already_handled(record, delivery):
            log.debug('message %s on %s was handled before; acked',
                      envelope.message_id, envelope.queue)
            return Outcome(DUPLICATE, envelope=envelope, listener=listener,
                           outbox=_unsent_outbox(record))
        if delivery.redelivered:
            previous += records.count_unfinished(
                self.db, envelope.queue, envelope.message_id)
            record_exists = True
        if previous >= self.settings.reactor_max_attempts:
            return self._dead(
                envelope, listener, 'worker-lost',
                'the workers handling it stopped before finishing %d times '
                '(killed, or their connection dropped)' % previous,
                previous, started_at)
        if envelope.hops > self.settings.reactor_max_hops:
            return self._dead(
                envelope, listener, 'max-hops',
                'hop count %d is over reactor.max_hops = %d'
                % (envelope.hops, self.settings.reactor_max_hops),
                previous, started_at)

        try:
            project, calls = self.resolver.resolve(envelope, listener)
        except MessageError as exc:
            return self._dead(envelope, listener, exc.reason, str(exc),
                              previous, started_at)

        session = Session(self.db)
        try:
            self._call(listener, envelope, project, calls, session)
            outbox = session.outbox
            self._flush(session, envelope, listener, started_at,
                        previous + 1, record_exists)
        except Exception as exc:
            session.clear()
            return self._failed(envelope, listener, exc, previous + 1,
                                started_at)
        log.debug(
            'handled message %s on %s (%s) in %.1f ms with %d call(s)',
            envelope.message_id, envelope.queue, envelope.routing_key,
            (time.perf_counter() - clock) * 1000, len(calls))
        return Outcome(DONE, attempts=previous + 1, calls=len(calls),
                       envelope=envelope, listener=listener, outbox=outbox)

    def complete(self, outcome):
        """Publish what the listener published, once its outcome is
        persisted, and record that it was sent."""
        if not outcome.outbox:
            return
        envelope = outcome.envelope
        for message in outcome.outbox:
            self._send(message, envelope, outcome.listener)
        if outcome.status in (DONE, DUPLICATE):
            records.mark_done(self.db, envelope.queue, envelope.message_id)

    def _call(self, listener, envelope, project, calls, session):
        """Call the listener once per target with ``c`` set."""
        clock = time.perf_counter()
        with context.pushed(context.session, session):
            for target, app, data in calls:
                with context.message_context(
                        project=project, app=app, message=envelope):
                    listener.method_for(target)(envelope.routing_key, data)
        elapsed = time.perf_counter() - clock
        average = self._durations.get(listener.queue, elapsed)
        self._durations[listener.queue] = average + self.DURATION_WEIGHT * (
            elapsed - average)

    def _flush(self, session, envelope, listener, started_at, attempts,
               record_exists):
        """Persist the listener's writes together with the record.

        A record not found before the listener ran is inserted, which
        costs less than an upsert; one written meanwhile by another
        worker makes the insert fail, and the message is retried.
        """
        status = records.FLUSHED if session.outbox else records.DONE
        fields = records.outcome_fields(
            envelope, listener, status, started_at, attempts)
        if session.outbox:
            fields['outbox'] = [
                message.to_document() for message in session.outbox]
        # The record goes last: on MongoDB, where a flush is not one
        # transaction, a flush cut short leaves no "done" behind.
        record_id = records.record_id(envelope.queue,
                                      envelope.message_id)
        if record_exists:
            session.update_one(records.COLLECTION, {'_id': record_id},
                               {'$set': fields}, upsert=True, copy=False)
        else:
            session.insert_one(records.COLLECTION,
                               dict(fields, _id=record_id), copy=False)
        written = session.collections_written
        if self.chunk is not None:
            self.chunk.begin()
        session.flush()
        self.resolver.written(written)
        if self._known_records is not None:
            self._known_records[record_id] = dict(fields, _id=record_id)

    def _send(self, message, envelope, listener):
        """Publish `message`, or dead-letter it past the hop limit."""
        max_hops = self.settings.reactor_max_hops
        hops = message.headers.get(HOPS_HEADER, 0)
        if hops <= max_hops:
            self.publisher.send(message)
            return
        error = ('listener %s looped: its message would be hop %d, '
                 'over reactor.max_hops = %d'
                 % (listener.label, hops, max_hops))
        log.error('dead-lettering message %s to %s (%s): %s',
                  message.message_id, message.exchange,
                  message.routing_key, error)
        self.publisher.send(dead_letter(
            Delivery.from_outgoing(message, envelope.queue),
            'max-hops', error, 0, listener.label))

    def _failed(self, envelope, listener, exc, attempts, started_at):
        error = '%s: %s' % (type(exc).__name__, exc)
        if attempts >= self.settings.reactor_max_attempts:
            log.error(
                'listener %s failed on message %s (%s) for the last time, '
                'attempt %d of %d',
                listener.label, envelope.message_id, envelope.routing_key,
                attempts, self.settings.reactor_max_attempts, exc_info=exc)
            return self._dead(envelope, listener, 'max-attempts', error,
                              attempts, started_at, logged=True)
        delay = retry_delay(self.settings, attempts)
        log.warning(
            'listener %s failed on message %s (%s), attempt %d of %d; '
            'retrying in %.3g s',
            listener.label, envelope.message_id, envelope.routing_key,
            attempts, self.settings.reactor_max_attempts, delay,
            exc_info=exc)
        self._save(envelope, listener, records.FAILED, started_at,
                   attempts, error, 'listener-failed')
        return Outcome(RETRY, attempts=attempts, reason='listener-failed',
                       error=error, delay=delay, envelope=envelope,
                       listener=listener)

    def _dead(self, envelope, listener, reason, error, attempts,
              started_at, logged=False):
        if not logged:
            log.error(
                'dead-lettering message %s from %s (%s): %s: %s',
                envelope.message_id, envelope.queue, envelope.routing_key,
                reason, error)
        self._save(envelope, listener, records.DEAD, started_at, attempts,
                   error, reason)
        return Outcome(DEAD, attempts=attempts, reason=reason, error=error,
                       envelope=envelope, listener=listener)

    def _save(self, envelope, listener, status, started_at, attempts,
              error, reason):
        if self.chunk is not None:
            self.chunk.begin()
        records.save_outcome(self.db, records.outcome_fields(
            envelope, listener, status, started_at, attempts,
            error=error, reason=reason))

    def _find_record(self, envelope):
        record_id = records.record_id(envelope.queue, envelope.message_id)
        if self._known_records is not None:
            return self._known_records.get(record_id)
        return records.find_record(self.db, envelope.queue,
                                   envelope.message_id)


def _already_handled(record, delivery):
    if record is None:
        return False
    status = record.get('status')
    if status in (records.DONE, records.FLUSHED):
        return True
    # A dead letter redelivered: the worker died after publishing it
    # but before the ack. A requeued dead letter is a new delivery.
    return status == records.DEAD and delivery.redelivered


def _unsent_outbox(record):
    """Return the messages a worker flushed but died before sending."""
    if record.get('status') != records.FLUSHED:
        return []
    return [OutgoingMessage.from_document(document)
            for document in record.get('outbox', ())]


def _bare_envelope(delivery):
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

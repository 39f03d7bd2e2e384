"""One delivery in: the listener called with ``c`` set, changes flushed.

:meth:`Dispatcher.handle` does everything between receiving a message
and acking it, and returns a :class:`pyforge.lib.outcome.Outcome`
naming what the caller must do with the message: ack it, retry it after
a delay, or dead-letter it. Workers and the test helpers share it, so
both handle a message the same way.

A worker handling a batch calls the three steps of :meth:`handle`
itself: :meth:`Dispatcher.dispatch` with ``defer=True`` for each message
of a chunk, :meth:`Dispatcher.flush_deferred` to persist the chunk's
writes in one transaction, then :meth:`Dispatcher.complete` to publish.
"""

import dataclasses
import logging
import time
import uuid

from pymongo.errors import DuplicateKeyError

from pyforge.exceptions import MessageError
from pyforge.lib import context
from pyforge.lib.failures import (
    Failures, already_handled, bare_envelope, redelivered_dead_letter,
    unsent_outbox)
from pyforge.lib.message import HOPS_HEADER, Delivery, decode
from pyforge.lib.outcome import DONE, DUPLICATE, REPUBLISHED, Outcome
from pyforge.lib.resolve import Resolver
from pyforge.lib.retry import dead_letter, retry_message
from pyforge.lib.store import TRANSIENT_ERRORS, transaction
from pyforge.model import records
from pyforge.model.writes import Session

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PendingFlush:
    """Writes of a listener that returned, waiting for their flush."""

    session: Session
    envelope: object
    listener: object
    started_at: object
    attempts: int
    record_exists: bool


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
        self.failures = Failures(db, settings)
        self._known_records = None
        self._durations = {}

    def read_ahead(self, deliveries):
        """Read the records of `deliveries` in one query, and keep what
        is read of projects and apps until :meth:`forget`."""
        ids = [records.record_id(delivery.queue, delivery.message_id)
               for delivery in deliveries
               if isinstance(delivery.message_id, str)]
        found = records.find_records(self.db, ids)
        # A record id read ahead and not found maps to None; one not
        # read ahead is looked up when needed.
        self._known_records = dict.fromkeys(ids)
        self._known_records.update(found)
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

    def dispatch(self, delivery, listener, defer=False):
        """Do all of :meth:`handle` but publishing; return the Outcome.

        With `defer`, the listener's writes are not flushed: the outcome
        holds them in ``pending`` for :meth:`flush_deferred`.
        """
        started_at = records.utcnow()
        try:
            return self._dispatch(delivery, listener, defer, started_at)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            # A bug, or a value the store cannot take: dead-letter the
            # message rather than let it stop this worker over and over.
            return self.failures.unexpected(delivery, listener, exc,
                                            started_at)

    def flush_deferred(self, outcomes):
        """Persist the writes deferred in `outcomes` in one transaction;
        return the outcomes, with failed flushes turned into failures."""
        if not any(outcome.pending for outcome in outcomes):
            return list(outcomes)
        with transaction(self.db):
            return [self._flush(outcome.pending, outcome.calls)
                    if outcome.pending else outcome
                    for outcome in outcomes]

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

    def _dispatch(self, delivery, listener, defer, started_at):
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
            return self.failures.dead(bare_envelope(delivery), listener,
                                      exc.reason, str(exc), 0, started_at)
        if adopted:
            log.info('message on %s (%s) had no message id; put back on '
                     'its queue as %s', envelope.queue, envelope.routing_key,
                     envelope.message_id)
            return Outcome(REPUBLISHED, envelope=envelope, listener=listener,
                           outbox=[retry_message(delivery, envelope.attempt,
                                                 '')])

        record = self._find_record(envelope)
        if already_handled(record):
            log.debug('message %s on %s was handled before; acked',
                      envelope.message_id, envelope.queue)
            return Outcome(DUPLICATE, envelope=envelope, listener=listener,
                           outbox=unsent_outbox(record))
        if redelivered_dead_letter(record, delivery):
            return self.failures.dead(
                envelope, listener, record.get('reason') or 'dead',
                record.get('error') or 'dead-lettered before',
                record.get('attempts', 0), started_at)
        failed = envelope.attempt
        unfinished = 0
        if delivery.redelivered:
            unfinished = records.count_unfinished(
                self.db, envelope.queue, envelope.message_id)
        previous = failed + unfinished
        if previous >= self.settings.reactor_max_attempts:
            return self.failures.dead(
                envelope, listener,
                'worker-lost' if unfinished else 'max-attempts',
                'it was tried %d times: %d attempt(s) failed and %d '
                'delivery(ies) were never finished (worker killed, or its '
                'connection lost)' % (previous, failed, unfinished),
                previous, started_at)
        if envelope.hops > self.settings.reactor_max_hops:
            return self.failures.dead(
                envelope, listener, 'max-hops',
                'hop count %d is over reactor.max_hops = %d'
                % (envelope.hops, self.settings.reactor_max_hops),
                previous, started_at)

        try:
            project, calls = self.resolver.resolve(envelope, listener)
        except MessageError as exc:
            return self.failures.dead(envelope, listener, exc.reason,
                                      str(exc), previous, started_at)

        session = Session(self.db)
        try:
            self._call(listener, envelope, project, calls, session)
        except Exception as exc:
            session.clear()
            return self.failures.failed(envelope, listener, exc,
                                        previous + 1, started_at)
        pending = PendingFlush(session, envelope, listener, started_at,
                               previous + 1, record is not None or
                               unfinished > 0)
        log.debug(
            'called %s for message %s on %s (%s) in %.1f ms, %d call(s)',
            listener.label, envelope.message_id, envelope.queue,
            envelope.routing_key, (time.perf_counter() - clock) * 1000,
            len(calls))
        if defer:
            return Outcome(DONE, attempts=previous + 1, calls=len(calls),
                           envelope=envelope, listener=listener,
                           pending=pending)
        return self._flush(pending, calls=len(calls))

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

    def _flush(self, pending, calls=0):
        """Persist a listener's writes with the record; return the
        outcome: DONE, DUPLICATE if another worker recorded the message
        meanwhile, or a failure."""
        session, envelope = pending.session, pending.envelope
        outbox = list(session.outbox)
        status = records.FLUSHED if outbox else records.DONE
        fields = records.outcome_fields(
            envelope, pending.listener, status, pending.started_at,
            pending.attempts)
        if outbox:
            fields['outbox'] = [message.to_document() for message in outbox]
        record_id = records.record_id(envelope.queue, envelope.message_id)
        # The record goes last: on MongoDB, where a flush is not one
        # transaction, a flush cut short leaves no "done" behind. A new
        # record is inserted, which costs less than an upsert.
        if pending.record_exists:
            session.update_one(records.COLLECTION, {'_id': record_id},
                               {'$set': fields}, upsert=True, copy=False)
        else:
            session.insert_one(records.COLLECTION,
                               dict(fields, _id=record_id), copy=False)
        written = session.collections_written
        try:
            session.flush()
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            session.clear()
            if isinstance(exc, DuplicateKeyError):
                record = records.find_record(self.db, envelope.queue,
                                             envelope.message_id)
                if already_handled(record):
                    log.info('message %s on %s was handled meanwhile by '
                             'another worker; its writes here are dropped',
                             envelope.message_id, envelope.queue)
                    return Outcome(DUPLICATE, envelope=envelope,
                                   listener=pending.listener,
                                   outbox=unsent_outbox(record))
            return self.failures.failed(envelope, pending.listener, exc,
                                        pending.attempts, pending.started_at)
        self.resolver.written(written)
        if self._known_records is not None:
            self._known_records[record_id] = dict(fields, _id=record_id)
        return Outcome(DONE, attempts=pending.attempts, calls=calls,
                       envelope=envelope, listener=pending.listener,
                       outbox=outbox)

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

    def _find_record(self, envelope):
        record_id = records.record_id(envelope.queue, envelope.message_id)
        if self._known_records is not None \
                and record_id in self._known_records:
            return self._known_records[record_id]
        return records.find_record(self.db, envelope.queue,
                                   envelope.message_id)

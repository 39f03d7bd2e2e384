"""One delivery in: the listener called with ``c`` set, changes flushed.

:meth:`Dispatcher.handle` does everything between receiving a message
and acking it, and returns an :class:`Outcome` that says what the caller
must do with the message: ack it, retry it after a delay, or dead-letter
it. Workers and the test helpers share it, so both handle a message the
same way.
"""

import copy
import dataclasses
import logging
import time

from pyforge.exceptions import MessageError
from pyforge.lib import context
from pyforge.lib.message import (
    HOPS_HEADER, Delivery, Envelope, OutgoingMessage, decode)
from pyforge.lib.retry import dead_letter, retry_delay
from pyforge.lib.routing import AUDIT
from pyforge.model import records
from pyforge.model.project import Project
from pyforge.model.writes import Session

log = logging.getLogger(__name__)

#: Outcome statuses.
DONE = 'done'
DUPLICATE = 'duplicate'
RETRY = 'retry'
DEAD = 'dead'


@dataclasses.dataclass
class Outcome:
    """What became of one delivery, and what to do with the message."""

    #: DONE or DUPLICATE: ack. RETRY: try again after `delay`. DEAD:
    #: dead-letter with `reason` and `error`.
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


class Dispatcher:
    """Handles deliveries for listeners, against one database.

    Arguments:
        db: the database of projects, app configurations and records.
        settings: :class:`pyforge.config.Settings`.
        publisher: an object whose ``send(OutgoingMessage)`` publishes;
            it sends what listeners published, after the flush.
    """

    def __init__(self, db, settings, publisher):
        self.db = db
        self.settings = settings
        self.publisher = publisher

    def handle(self, delivery, listener):
        """Handle `delivery` for `listener` and return its Outcome."""
        started_at = records.utcnow()
        clock = time.perf_counter()
        try:
            envelope = decode(delivery, self.settings.reactor_max_body_size)
        except MessageError as exc:
            envelope = _bare_envelope(delivery)
            return self._dead(envelope, listener, exc.reason, str(exc),
                              0, started_at)

        previous = envelope.attempt
        if envelope.message_id is not None:
            record = records.find_record(
                self.db, envelope.queue, envelope.message_id)
            if _already_handled(record, delivery):
                self._finish_outbox(record)
                log.debug('message %s on %s was handled before; acked',
                          envelope.message_id, envelope.queue)
                return Outcome(DUPLICATE, envelope=envelope)
            if delivery.redelivered:
                previous += records.count_unfinished(
                    self.db, envelope.queue, envelope.message_id)
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
            project, calls = self._resolve(envelope, listener)
        except MessageError as exc:
            return self._dead(envelope, listener, exc.reason, str(exc),
                              previous, started_at)

        session = Session(self.db)
        try:
            with context.pushed(context.session, session):
                for target, app, data in calls:
                    with context.message_context(
                            project=project, app=app, message=envelope):
                        listener.method_for(target)(
                            envelope.routing_key, data)
            outbox = session.outbox
            self._flush(session, envelope, listener, started_at,
                        previous + 1)
        except Exception as exc:
            session.clear()
            return self._failed(envelope, listener, exc, previous + 1,
                                started_at)

        self._send_outbox(outbox, envelope, listener)
        log.debug(
            'handled message %s on %s (%s) in %.1f ms with %d call(s)',
            envelope.message_id, envelope.queue, envelope.routing_key,
            (time.perf_counter() - clock) * 1000, len(calls))
        return Outcome(DONE, attempts=previous + 1, calls=len(calls),
                       envelope=envelope)

    def _resolve(self, envelope, listener):
        """Return the project and ``(target, app, data)`` of each call."""
        project_id = envelope.project_id
        if project_id is None:
            raise MessageError(
                'the body has no project_id; add the id of the project '
                'the message is about', reason='missing-project-id')
        if not isinstance(project_id, str):
            raise MessageError(
                'project_id %r is not a string' % (project_id,),
                reason='invalid-project-id')
        project = Project.get(project_id, db=self.db)
        if project is None:
            raise MessageError(
                'project %r does not exist; create it with paster project '
                'or fix project_id' % project_id, reason='unknown-project')

        app_class = listener.app_class
        if listener.exchange == AUDIT:
            app = self._audited_app(project, envelope, listener)
            target = app_class if listener.is_classmethod else app
            return project, [(target, app, envelope.data)]
        if listener.is_classmethod:
            return project, [(app_class, None, envelope.data)]

        configs = project.app_configs(tool_name=listener.app_name,
                                      db=self.db)
        calls = []
        for index, config in enumerate(configs):
            app = app_class(project, config)
            # Each instance gets its own copy, so what one changes in the
            # data is not seen by the next.
            data = envelope.data if index == 0 else copy.deepcopy(
                envelope.data)
            calls.append((app, app, data))
        return project, calls

    def _audited_app(self, project, envelope, listener):
        """Return the app instance an audit message is for.

        A classmethod auditor gets None when the message names no mount
        point of its app; an instance auditor cannot run without one.
        """
        mount_point = envelope.mount_point
        strict = not listener.is_classmethod
        if mount_point is None:
            if strict:
                raise MessageError(
                    'the body has no mount_point; audit messages for %s '
                    'must name the app instance' % listener.label,
                    reason='missing-mount-point')
            return None
        config = None
        if isinstance(mount_point, str):
            config = project.app_config(mount_point, db=self.db)
        if config is None:
            if strict:
                raise MessageError(
                    'project %r has no app mounted at %r; mount one with '
                    'paster project mount, or fix mount_point'
                    % (project._id, mount_point),
                    reason='unknown-mount-point')
            return None
        if config.tool_name != listener.app_name:
            if strict:
                raise MessageError(
                    'mount point %r of project %r runs the app %r, not '
                    '%r; send the message to a mount point of %r'
                    % (mount_point, project._id, config.tool_name,
                       listener.app_name, listener.app_name),
                    reason='wrong-app')
            return None
        return listener.app_class(project, config)

    def _flush(self, session, envelope, listener, started_at, attempts):
        """Persist the listener's writes together with the record."""
        if envelope.message_id is not None:
            status = records.FLUSHED if session.outbox else records.DONE
            fields = records.outcome_fields(
                envelope, listener, status, started_at, attempts)
            if session.outbox:
                fields['outbox'] = [
                    message.to_document() for message in session.outbox]
            # The record goes last: on MongoDB, where a flush is not one
            # transaction, a flush cut short leaves no "done" behind.
            session.update_one(
                records.COLLECTION,
                {'_id': records.record_id(envelope.queue,
                                          envelope.message_id)},
                {'$set': fields}, upsert=True)
        session.flush()

    def _send_outbox(self, outbox, envelope, listener):
        """Publish what the listener published, now that it is flushed."""
        if not outbox:
            return
        max_hops = self.settings.reactor_max_hops
        for message in outbox:
            hops = message.headers[HOPS_HEADER]
            if hops <= max_hops:
                self.publisher.send(message)
                continue
            error = ('listener %s looped: its message would be hop %d, '
                     'over reactor.max_hops = %d'
                     % (listener.label, hops, max_hops))
            log.error('dead-lettering message %s to %s (%s): %s',
                      message.message_id, message.exchange,
                      message.routing_key, error)
            self.publisher.send(dead_letter(
                Delivery.from_outgoing(message, envelope.queue),
                'max-hops', error, 0, listener.label))
        if envelope.message_id is not None:
            records.mark_done(self.db, envelope.queue, envelope.message_id)

    def _finish_outbox(self, record):
        """Send the outbox of a message flushed by a worker that died."""
        if record.get('status') != records.FLUSHED:
            return
        for document in record.get('outbox', ()):
            self.publisher.send(OutgoingMessage.from_document(document))
        records.mark_done(self.db, record['queue'], record['message_id'])

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
                       error=error, delay=delay, envelope=envelope)

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
                       envelope=envelope)

    def _save(self, envelope, listener, status, started_at, attempts,
              error, reason):
        if envelope.message_id is None:
            return
        records.save_outcome(self.db, records.outcome_fields(
            envelope, listener, status, started_at, attempts,
            error=error, reason=reason))


def _already_handled(record, delivery):
    if record is None:
        return False
    status = record.get('status')
    if status in (records.DONE, records.FLUSHED):
        return True
    # A dead letter redelivered: the worker died after publishing it
    # but before the ack. A requeued dead letter is a new delivery.
    return status == records.DEAD and delivery.redelivered


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

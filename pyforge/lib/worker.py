"""A worker process: consumes listener queues and settles each message.

Each queue gets a carrot-style :class:`Consumer` on a channel of its own.
A message is acked only after :class:`pyforge.lib.dispatch.Dispatcher`
returned, which is after the listener's changes were persisted; a retry
or a dead letter is published, with a confirm, before the ack.
"""

import collections
import logging
import os
import socket
import time

from kombu.exceptions import OperationalError

from pyforge.exceptions import ConfigurationError, PublishError
from pyforge.lib import amqp
from pyforge.lib.batch import handle_batch
from pyforge.lib.consumer import Consumer, HeldRetries
from pyforge.lib.dispatch import Dispatcher
from pyforge.lib.heartbeat import keeper_for
from pyforge.lib.message import Delivery
from pyforge.lib.outcome import settle
from pyforge.lib.retry import retry_message
from pyforge.lib.shutdown import GracefulStop, StopNow
from pyforge.lib.store import (
    TRANSIENT_ERRORS, checkpoint_in_background, mask_password)

log = logging.getLogger(__name__)

#: Exit status of a worker that cannot run as configured; its supervisor
#: does not restart it (``EX_CONFIG`` of sysexits.h).
EXIT_CONFIG = 78
#: Exit status of a worker stopped before its message was finished.
EXIT_ABORTED = 3

#: Heartbeats sent per heartbeat interval. RabbitMQ drops a connection
#: that sent nothing for two intervals; checking only twice an interval
#: sends the heartbeat late as soon as a check comes a little early.
HEARTBEAT_RATE = 4

#: Seconds between two INFO lines on what a worker handled.
REPORT_INTERVAL = 60

#: Maximum wait between two attempts to reach the broker, in seconds.
MAX_RECONNECT_DELAY = 30.0


class Worker(GracefulStop):
    """Consumes the queues of `listeners` until stopped.

    Arguments:
        environment: :class:`pyforge.environment.Environment`.
        listeners: the :class:`pyforge.lib.plugins.Listener` objects whose
            queues this process consumes.
    """

    def __init__(self, environment, listeners):
        self.environment = environment
        self.settings = environment.settings
        self.listeners = list(listeners)
        #: Messages settled, by outcome status.
        self.counts = collections.Counter()
        self.dispatcher = None
        self.connection = None
        self.publisher = None
        self._consumers = []
        self._keeper = None
        self._held = HeldRetries()
        #: (listener, message, delivery) received and not yet handled.
        self._batch = []
        self._batch_size = self.settings.reactor_prefetch
        self._reported = collections.Counter()
        self._next_report = time.monotonic() + REPORT_INTERVAL
        GracefulStop.__init__(self, self.settings.reactor_shutdown_timeout)
        self._parent = os.getppid()

    @property
    def queues(self):
        return [listener.queue for listener in self.listeners]

    def run(self):
        """Consume until stopped; return the process exit status."""
        self._install_signal_handlers()
        log.info('worker %d starting on %s', os.getpid(),
                 ', '.join(self.queues))
        try:
            self._run_until_stopped()
        except ConfigurationError as exc:
            log.error('%s', exc)
            return EXIT_CONFIG
        except StopNow:
            log.warning('worker %d stopped at once; the broker redelivers '
                        'the message it was handling', os.getpid())
            self._abandon()
            return EXIT_ABORTED
        finally:
            self._disconnect()
        log.info('worker %d stopped: %s', os.getpid(),
                 dict(self.counts) or 'no messages')
        return 0

    def stop(self):
        """Stop after the message in hand (what SIGTERM does)."""
        self._stopping.set()

    def _run_until_stopped(self):
        failures = 0
        while not self._stopping.is_set():
            try:
                self._connect()
                failures = 0
                self._consume()
            except PublishError as exc:
                failures += 1
                self._lost('the broker', exc, failures)
            except TRANSIENT_ERRORS as exc:
                # The messages in hand go back to the broker with the
                # connection, to be handled once the database answers.
                failures += 1
                self._lost('the database', exc, failures)
            except Exception as exc:
                if not self._is_connection_error(exc):
                    raise
                failures += 1
                self._lost('the broker', exc, failures)

    def _lost(self, what, exc, failures):
        delay = min(2.0 ** (failures - 1), MAX_RECONNECT_DELAY)
        log.warning('worker %d lost %s (%s: %s); reconnecting in %.0f s',
                    os.getpid(), what, type(exc).__name__, exc, delay)
        self._disconnect()
        self._stopping.wait(delay)

    def _is_connection_error(self, exc):
        connection = self.connection or self.environment.connection()
        # kombu raises OperationalError when it cannot connect at all.
        errors = (connection.connection_errors + connection.channel_errors
                  + (OperationalError, OSError))
        return isinstance(exc, errors)

    def _connect(self):
        connection = self.environment.connection()
        amqp.ensure_connected(connection, self.settings, max_retries=1)
        self.connection = connection
        self.publisher = amqp.Publisher(connection, retry=False)
        self.dispatcher = Dispatcher(
            self.environment.db, self.settings, self.publisher)
        checkpoint_in_background(self.environment.db)
        self._consumers = [
            Consumer(connection, listener, self._on_message,
                     self.settings.reactor_prefetch)
            for listener in self.listeners]
        for consumer in self._consumers:
            consumer.check_bindings()
            consumer.consume()
        self._keeper = keeper_for(connection)
        log.info('worker %d connected to %s, store %s, consuming %d '
                 'queue(s)', os.getpid(),
                 amqp.mask_url(self.settings.amqp_url),
                 mask_password(self.settings.mongo_url),
                 len(self._consumers))

    def _consume(self):
        timeout = self._poll_timeout()
        while not self._stopping.is_set():
            try:
                self.connection.drain_events(
                    timeout=self._held.wait_time(timeout))
            except socket.timeout:
                pass
            self._take_ready_messages()
            self._handle_batch(self._batch)
            self.connection.heartbeat_check(rate=HEARTBEAT_RATE)
            self._handle_batch(list(self._held.pop_due()))
            self._report()
            if os.getppid() != self._parent:
                log.warning('worker %d lost its parent process; stopping',
                            os.getpid())
                self.stop()
        for consumer in self._consumers:
            consumer.cancel()
        self._release_held()

    def _report(self):
        """Log what was handled since the last report, once a minute."""
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + REPORT_INTERVAL
        recent = self.counts - self._reported
        if recent:
            log.info('worker %d settled %d message(s) in the last %d s: %s',
                     os.getpid(), sum(recent.values()), REPORT_INTERVAL,
                     ', '.join('%s %d' % item
                               for item in sorted(recent.items())))
            self._reported = collections.Counter(self.counts)

    def _poll_timeout(self):
        heartbeat = self.settings.amqp_heartbeat
        if not heartbeat:
            return 1.0
        return min(1.0, heartbeat / HEARTBEAT_RATE)

    def _on_message(self, listener, message):
        self._batch.append(
            (listener, message, Delivery.from_kombu(message, listener.queue)))

    def _take_ready_messages(self):
        """Add the messages already received to the batch, up to the
        prefetch, without waiting for more."""
        while self._batch and len(self._batch) < self._batch_size:
            try:
                self.connection.drain_events(timeout=0)
            except socket.timeout:
                return

    def _handle_batch(self, batch):
        """Handle, settle and ack `batch`, chunk by chunk."""
        if not batch:
            return
        if batch is self._batch:
            # Messages that arrive meanwhile, while a publish waits for
            # its confirm, belong to the next batch and its read-ahead.
            self._batch = []
        for chunk in handle_batch(self.dispatcher, batch, self._handle,
                                  self._stopping.is_set):
            self._ack([
                message for listener, message, delivery, outcome in chunk
                if self._settle(listener, message, delivery, outcome)])

    def _handle(self, listener, delivery):
        self._handling = True
        try:
            if self._keeper is not None:
                with self._keeper.busy():
                    return self.dispatcher.dispatch(delivery, listener,
                                                    defer=True)
            return self.dispatcher.dispatch(delivery, listener, defer=True)
        finally:
            self._handling = False

    def _settle(self, listener, message, delivery, outcome):
        """Publish a retry or a dead letter; return True to ack."""
        self.counts[outcome.status] += 1
        return settle(self.publisher, self._held, listener, message,
                      delivery, outcome)

    def _ack(self, messages):
        if amqp.is_virtual(self.connection):
            # Virtual channels ignore multiple=True; each ack is local.
            for message in messages:
                message.ack()
            return
        last = {}
        for message in messages:
            last[id(message.channel)] = message
        for message in last.values():
            # Acks every earlier delivery on that channel too: all of
            # them are in this batch and settled.
            message.channel.basic_ack(message.delivery_tag, multiple=True)

    def _release_held(self):
        """Put retries still waiting in memory back on their queues."""
        for listener, message, delivery, attempts in self._held.drain():
            self.publisher.send(retry_message(
                delivery, attempts, ''))
            message.ack()

    def _abandon(self):
        """Drop the connection without the closing handshake, which a
        connection interrupted mid-message may never complete."""
        if self.connection is not None:
            try:
                self.connection.collect()
            except Exception as exc:
                log.debug('dropping the connection failed: %s', exc)
            self.connection = None

    def _disconnect(self):
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception as exc:
                log.debug('closing the connection failed: %s', exc)
            self.connection = None
        self._consumers = []

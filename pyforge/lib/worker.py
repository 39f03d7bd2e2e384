"""A worker process: consumes listener queues and settles each message.

Each queue gets a carrot-style :class:`Consumer` on a channel of its own.
A message is acked only after :class:`pyforge.lib.dispatch.Dispatcher`
returned, which is after the listener's changes were persisted; a retry
or a dead letter is published, with a confirm, before the ack.

SIGTERM stops consuming and lets the message in hand finish; a second
SIGTERM, or ``reactor.shutdown_timeout`` passing, exits at once without
an ack, so the broker redelivers the message.
"""

import collections
import logging
import os
import signal
import socket
import threading

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

log = logging.getLogger(__name__)

#: Exit status of a worker that cannot run as configured; its supervisor
#: does not restart it (``EX_CONFIG`` of sysexits.h).
EXIT_CONFIG = 78
#: Exit status of a worker stopped before its message was finished.
EXIT_ABORTED = 3

#: Maximum wait between two attempts to reach the broker, in seconds.
MAX_RECONNECT_DELAY = 30.0


class StopNow(BaseException):
    """Raised in the main thread to abandon the message in hand."""


class Worker:
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
        # Half the prefetch: while a batch is handled, the broker can
        # already send the next one.
        self._batch_size = max(1, self.settings.reactor_prefetch // 1)
        self._stopping = threading.Event()
        self._handling = False
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
                self._lost(exc, failures)
            except Exception as exc:
                if not self._is_connection_error(exc):
                    raise
                failures += 1
                self._lost(exc, failures)

    def _lost(self, exc, failures):
        delay = min(2.0 ** (failures - 1), MAX_RECONNECT_DELAY)
        log.warning('worker %d lost the broker (%s: %s); reconnecting in '
                    '%.0f s', os.getpid(), type(exc).__name__, exc, delay)
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
        self._consumers = [
            Consumer(connection, listener, self._on_message,
                     self.settings.reactor_prefetch)
            for listener in self.listeners]
        for consumer in self._consumers:
            consumer.check_bindings()
            consumer.consume()
        self._keeper = keeper_for(connection)
        log.info('worker %d connected to %s, consuming %d queue(s)',
                 os.getpid(), amqp.mask_url(self.settings.amqp_url),
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
            self.connection.heartbeat_check()
            self._handle_batch(list(self._held.pop_due()))
            if os.getppid() != self._parent:
                log.warning('worker %d lost its parent process; stopping',
                            os.getpid())
                self.stop()
        for consumer in self._consumers:
            consumer.cancel()
        self._release_held()

    def _poll_timeout(self):
        heartbeat = self.settings.amqp_heartbeat
        return min(1.0, heartbeat / 2.0) if heartbeat else 1.0

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
        try:
            for chunk in handle_batch(self.dispatcher, batch, self._handle,
                                      self._stopping.is_set):
                self._ack([
                    message for listener, message, delivery, outcome in chunk
                    if self._settle(listener, message, delivery, outcome)])
        finally:
            if batch is self._batch:
                self._batch = []

    def _handle(self, listener, delivery):
        self._handling = True
        try:
            if self._keeper is not None:
                with self._keeper.busy():
                    return self.dispatcher.dispatch(delivery, listener)
            return self.dispatcher.dispatch(delivery, listener)
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

    def _install_signal_handlers(self):
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        # The parent turns Ctrl-C into SIGTERM for every worker; the
        # terminal's own SIGINT to the whole group would count twice.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, self._on_shutdown_timeout)

    def _on_stop_signal(self, signum, frame):
        if self._stopping.is_set():
            # Between messages the loop is already on its way out; only a
            # listener is worth interrupting.
            if self._handling:
                raise StopNow()
            return
        log.info('worker %d stopping after the message in hand',
                 os.getpid())
        self._stopping.set()
        timeout = self.settings.reactor_shutdown_timeout
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)

    def _on_shutdown_timeout(self, signum, frame):
        if self._handling:
            log.error('the listener did not finish within '
                      'reactor.shutdown_timeout = %s s',
                      self.settings.reactor_shutdown_timeout)
            raise StopNow()

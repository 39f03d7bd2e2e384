"""Heartbeats that keep flowing while a listener runs for a long time.

A worker reads its connection only between messages, so during a long
listener nobody would answer the broker, which closes a connection whose
heartbeats stop. This thread sends them meanwhile. It touches the socket
only while the main thread is inside a listener and leaves it alone.
"""

import contextlib
import logging
import threading

log = logging.getLogger(__name__)


class HeartbeatKeeper:
    """Sends AMQP heartbeats on `connection` while :meth:`busy` is held.

    Arguments:
        connection: an open :class:`kombu.Connection` to RabbitMQ.
        interval: seconds between heartbeats; a third of the negotiated
            heartbeat timeout leaves room for one to be late.
    """

    def __init__(self, connection, interval):
        self._connection = connection
        self._interval = interval
        self._lock = threading.Lock()
        self._busy = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name='pyforge-heartbeat', daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()
        self._thread.join(self._interval + 1)

    @contextlib.contextmanager
    def busy(self):
        """Mark the block as time when only this thread uses the socket."""
        with self._lock:
            self._busy = True
        try:
            yield
        finally:
            # Taking the lock waits for a heartbeat being written.
            with self._lock:
                self._busy = False

    def _run(self):
        while not self._stopped.wait(self._interval):
            with self._lock:
                if not self._busy:
                    continue
                try:
                    self._connection.connection.send_heartbeat()
                except Exception as exc:
                    # The main thread will meet the same error on its
                    # next read and reconnect.
                    log.warning('cannot send a heartbeat: %s', exc)
                    return


def keeper_for(connection):
    """Return a started keeper, or None when heartbeats are off."""
    heartbeat = getattr(connection.connection, 'heartbeat', None)
    if not heartbeat:
        return None
    return HeartbeatKeeper(connection, heartbeat / 3.0).start()

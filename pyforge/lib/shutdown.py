"""How a worker stops.

SIGTERM stops consuming and lets the message in hand finish; a second
SIGTERM, or ``reactor.shutdown_timeout`` passing, raises
:class:`StopNow` in the listener, and the worker exits without an ack,
so the broker redelivers the message.
"""

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)


class StopNow(BaseException):
    """Raised in the main thread to abandon the message in hand."""


class GracefulStop:
    """Signal handling of a worker, as a mixin.

    Subclasses set ``_handling`` while a listener runs and stop when
    ``_stopping`` is set.
    """

    def __init__(self, shutdown_timeout):
        self._shutdown_timeout = shutdown_timeout
        self._stopping = threading.Event()
        self._handling = False

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
        timeout = self._shutdown_timeout
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)

    def _on_shutdown_timeout(self, signum, frame):
        if self._handling:
            log.error('the listener did not finish within '
                      'reactor.shutdown_timeout = %s s',
                      self._shutdown_timeout)
            raise StopNow()

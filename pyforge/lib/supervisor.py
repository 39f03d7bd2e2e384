"""The parent of the worker processes that ``paster reactor`` runs.

It forks one worker per group of queues, restarts a worker that died
(waiting longer after each quick death), and on SIGTERM or SIGINT asks
every worker to stop after its message in hand. A second signal makes the
workers stop at once; workers still running after
``reactor.shutdown_timeout`` plus a grace period are killed.
"""

import logging
import os
import signal
import time

from pyforge.lib.unacked import remove_empty_unacked_folders
from pyforge.lib.worker import EXIT_CONFIG, Worker

log = logging.getLogger(__name__)

#: A worker that lived this long, in seconds, died of something new: its
#: restart delay starts over.
STABLE_AFTER = 60.0
#: Upper bound of the restart delay, seconds.
MAX_RESTART_DELAY = 60.0
#: Seconds past the shutdown timeout before stopping workers are killed.
KILL_GRACE = 10.0


class WorkerSlot:
    """One worker process to keep running, and its restart state."""

    def __init__(self, listeners):
        self.listeners = listeners
        self.pid = None
        self.started_at = None
        self.restart_at = None
        self.quick_deaths = 0
        self.disabled = False

    @property
    def queues(self):
        return ', '.join(listener.queue for listener in self.listeners)


class Supervisor:
    """Runs a worker process for each group of listeners.

    Arguments:
        environment: :class:`pyforge.environment.Environment`.
        groups: lists of listeners; each list is consumed by one process.
    """

    def __init__(self, environment, groups):
        self.environment = environment
        self.slots = [WorkerSlot(group) for group in groups if group]
        self._stop_requested = 0
        self._kill_at = None
        self._failed = False

    def run(self):
        """Run until stopped; return 0, or 1 if a worker failed."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info('starting %d worker process(es)', len(self.slots))
        for slot in self.slots:
            self._start(slot)

        while self._running_slots():
            self._reap()
            if self._stop_requested:
                self._kill_stragglers()
            else:
                self._restart_due()
            time.sleep(0.1)
        log.info('all workers stopped')
        return 1 if self._failed else 0

    def stop(self):
        """Ask every worker to stop after the message in hand."""
        self._stop_requested += 1
        timeout = self.environment.settings.reactor_shutdown_timeout
        # A timeout of 0 lets every listener finish, however long it takes.
        if self._kill_at is None and timeout:
            self._kill_at = time.monotonic() + timeout + KILL_GRACE
        for slot in self.slots:
            if slot.pid is not None:
                _signal(slot.pid, signal.SIGTERM)

    def _on_signal(self, signum, frame):
        log.info('received %s; stopping the workers%s',
                 signal.Signals(signum).name,
                 ' at once' if self._stop_requested else '')
        self.stop()

    def _running_slots(self):
        if self._stop_requested:
            return [slot for slot in self.slots if slot.pid is not None]
        return [slot for slot in self.slots
                if slot.pid is not None or not slot.disabled]

    def _start(self, slot):
        pid = os.fork()
        if pid == 0:
            self._run_child(slot)
        slot.pid = pid
        slot.started_at = time.monotonic()
        slot.restart_at = None
        log.info('worker %d started for %s', pid, slot.queues)

    def _run_child(self, slot):
        status = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            status = Worker(self.environment, slot.listeners).run()
        except BaseException:
            log.exception('worker %d crashed', os.getpid())
        finally:
            remove_empty_unacked_folders()
            logging.shutdown()
            os._exit(status)

    def _reap(self):
        for slot in self.slots:
            if slot.pid is None:
                continue
            pid, status = os.waitpid(slot.pid, os.WNOHANG)
            if pid == 0:
                continue
            slot.pid = None
            self._on_exit(slot, pid, status)

    def _on_exit(self, slot, pid, status):
        code = os.waitstatus_to_exitcode(status)
        if self._stop_requested:
            log.info('worker %d exited with status %d', pid, code)
            if code != 0:
                self._failed = True
            return
        if code == EXIT_CONFIG:
            log.error('worker %d for %s cannot run as configured; not '
                      'restarting it', pid, slot.queues)
            slot.disabled = True
            self._failed = True
            return
        lived = time.monotonic() - slot.started_at
        slot.quick_deaths = 0 if lived > STABLE_AFTER else \
            slot.quick_deaths + 1
        delay = min(
            self.environment.settings.reactor_restart_delay
            * 2 ** max(slot.quick_deaths - 1, 0),
            MAX_RESTART_DELAY)
        if code == 0:
            # Stopped by a signal of its own, as an operator may do.
            log.info('worker %d for %s stopped; restarting in %.1f s',
                     pid, slot.queues, delay)
        else:
            log.error('worker %d for %s died (%s); restarting in %.1f s',
                      pid, slot.queues, _describe(code), delay)
        slot.restart_at = time.monotonic() + delay

    def _restart_due(self):
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None and slot.restart_at is not None \
                    and slot.restart_at <= now:
                self._start(slot)

    def _kill_stragglers(self):
        if self._kill_at is None or time.monotonic() < self._kill_at:
            return
        for slot in self.slots:
            if slot.pid is not None:
                log.error('worker %d did not stop in time; killing it',
                          slot.pid)
                _signal(slot.pid, signal.SIGKILL)
        self._kill_at = None


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _describe(code):
    if code < 0:
        return 'killed by %s' % signal.Signals(-code).name
    return 'exit status %d' % code

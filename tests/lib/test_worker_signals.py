"""Workers stopped by signals and kept alive by heartbeats, on RabbitMQ."""

import os
import signal
import time
import unittest

from pyforge.lib.publish import publish
from pyforge.lib.topology import inspect_queue
from pyforge.model import records
from tests.rabbit import RabbitTestCase
from tests.support import ReactorTestCase

SLOW_QUEUE = 'audit.slow.work'


class SlowMessageTestCase(ReactorTestCase, RabbitTestCase):

    extra_settings = 'reactor.prefetch = 1\n'

    def amqp_url(self):
        return self.vhost.url

    def publish_slow(self, seconds, text='slow one'):
        self.marker = os.path.join(self.tmp, 'started-%s' % text)
        return publish('audit', 'slow.work', {
            'project_id': 'demo', 'mount_point': 'slow',
            'seconds': seconds, 'marker': self.marker, 'text': text})

    def started_pids(self):
        """Return the worker pids that started the slow listener."""
        if not os.path.exists(self.marker):
            return []
        with open(self.marker) as marker:
            return [int(pid) for pid in marker.read().split()]

    def consumers(self):
        with self.environment.connection() as connection:
            return inspect_queue(connection, SLOW_QUEUE)[1]

    def notes(self):
        return [(note['text'], note['pid']) for note in self.db.notes.find()]


class ShutdownTest(SlowMessageTestCase):

    def test_sigterm_lets_listener_finish_and_ack(self):
        first = self.start_reactor('--queue', SLOW_QUEUE)
        self.wait_for(lambda: self.consumers() == 1, what='a consumer')
        self.publish_slow(2)
        worker, = self.wait_for(self.started_pids, what='the listener')
        # The second reactor is consuming before the first one stops, so
        # a message the first failed to ack would reach it.
        second = self.start_reactor('--queue', SLOW_QUEUE)
        self.wait_for(lambda: self.consumers() == 2, what='two consumers')
        status, log = self.stop(first)
        self.assertEqual(status, 0, log)
        self.assertIn('worker %d stopped' % worker, log)
        self.assertEqual(self.notes(), [('slow one', worker)])
        status, log = self.stop(second)
        self.assertEqual(status, 0, log)
        self.assertEqual(self.started_pids(), [worker])
        with self.environment.connection() as connection:
            self.assertEqual(inspect_queue(connection, SLOW_QUEUE)[0], 0)

    def test_second_signal_stops_at_once_and_broker_redelivers(self):
        first = self.start_reactor('--queue', SLOW_QUEUE)
        self.wait_for(lambda: self.consumers() == 1, what='a consumer')
        self.publish_slow(3)
        worker, = self.wait_for(self.started_pids, what='the listener')
        second = self.start_reactor('--queue', SLOW_QUEUE)
        self.wait_for(lambda: self.consumers() == 2, what='two consumers')
        first.send_signal(signal.SIGTERM)
        # Let the parent forward the first signal before the second.
        time.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)
        log = first.stderr.read()
        self.assertEqual(first.returncode, 1, log)
        self.assertIn('stopped at once', log)
        redelivered = self.wait_for(
            lambda: [pid for pid in self.started_pids() if pid != worker],
            what='the message redelivered to the second reactor')
        self.wait_for(lambda: len(self.notes()) == 1, what='the note')
        self.assertEqual(self.notes(), [('slow one', redelivered[0])])
        status, log = self.stop(second)
        self.assertEqual(status, 0, log)


class ShutdownTimeoutTest(SlowMessageTestCase):

    extra_settings = '''\
        reactor.prefetch = 1
        reactor.shutdown_timeout = 1
        '''

    def test_timeout_stops_listener_and_broker_redelivers(self):
        first = self.start_reactor('--queue', SLOW_QUEUE)
        self.wait_for(lambda: self.consumers() == 1, what='a consumer')
        self.publish_slow(4)
        worker, = self.wait_for(self.started_pids, what='the listener')
        second = self.start_reactor('--queue', SLOW_QUEUE)
        self.wait_for(lambda: self.consumers() == 2, what='two consumers')
        status, log = self.stop(first)
        self.assertIn('did not finish within reactor.shutdown_timeout', log)
        self.assertIn('stopped at once', log)
        self.assertEqual(status, 1, log)
        self.wait_for(lambda: len(self.notes()) == 1, what='the note',
                      timeout=30)
        (text, pid), = self.notes()
        self.assertNotEqual(pid, worker)
        status, log = self.stop(second)
        self.assertEqual(status, 0, log)


class HeartbeatTest(SlowMessageTestCase):

    extra_settings = '''\
        reactor.prefetch = 1
        amqp.heartbeat = 1
        '''

    def test_long_listener_keeps_connection(self):
        reactor = self.start_reactor('--queue', SLOW_QUEUE)
        self.wait_for(lambda: self.consumers() == 1, what='a consumer')
        message_id = self.publish_slow(4.5)
        self.wait_for(lambda: self.notes(), what='the note', timeout=30)
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertNotIn('lost the broker', log)
        self.assertEqual(len(self.started_pids()), 1)
        record = records.find_record(self.db, SLOW_QUEUE, message_id)
        self.assertEqual(record['attempts'], 1)
        self.assertEqual(record['status'], records.DONE)


if __name__ == '__main__':
    unittest.main()

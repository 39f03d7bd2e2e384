"""Workers and publishers through RabbitMQ restarts.

Each test class starts a RabbitMQ node of its own on a free loopback
port and stops and starts its application (``rabbitmqctl stop_app`` and
``start_app``), leaving the shared RabbitMQ alone.
"""

import re
import threading
import time
import unittest

from pyforge.exceptions import PublishError
from pyforge.lib.publish import publish
from pyforge.lib.topology import inspect_queue
from tests.rabbit import PrivateNode, Vhost, require_private_node
from tests.support import ReactorTestCase

SLOW_QUEUE = 'audit.slow.work'


class OutageTestCase(ReactorTestCase):

    extra_settings = '''\
        reactor.prefetch = 1
        amqp.heartbeat = 5
        '''

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_private_node(cls)
        cls.node = PrivateNode().start()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        super().tearDownClass()

    def amqp_url(self):
        return self.vhost.url

    def setUp(self):
        self.vhost = Vhost(self.node).create()
        self.addCleanup(self.vhost.delete)
        # Runs before the vhost is deleted: a test may end mid-outage.
        self.addCleanup(self.ensure_running)
        super().setUp()

    def ensure_running(self):
        self.node.start_app()

    def stop_rabbitmq(self):
        self.node.stop_app()

    def start_rabbitmq(self):
        self.node.start_app()

    def consumers(self, queue):
        with self.environment.connection() as connection:
            found = inspect_queue(connection, queue)
        return found[1] if found else 0

    def publish_slow(self, text):
        return publish('audit', 'slow.work', {
            'project_id': 'demo', 'mount_point': 'slow', 'seconds': 0.05,
            'text': text})

    def notes(self):
        return sorted(note['text'] for note in self.db.notes.find())


class WorkerRestartTest(OutageTestCase):

    def test_workers_survive_two_restarts(self):
        reactor = self.start_reactor('--queue', SLOW_QUEUE,
                                     '--queue', 'audit.fault.ok')
        self.wait_for(lambda: self.consumers(SLOW_QUEUE) == 1,
                      what='a consumer')
        before = ['before %02d' % number for number in range(30)]
        for text in before:
            self.publish_slow(text)
        self.environment.close()

        started = time.monotonic()
        for _ in range(2):
            self.stop_rabbitmq()
            time.sleep(3)
            self.start_rabbitmq()
            self.wait_for(lambda: self.consumers(SLOW_QUEUE) == 1
                          and self.consumers('audit.fault.ok') == 1,
                          what='the workers to consume again',
                          timeout=60)
        self.assertLess(time.monotonic() - started, 30 + 60)

        after = ['after %02d' % number for number in range(10)]
        for text in after:
            self.publish_slow(text)
        self.wait_for(lambda: len(self.notes()) >= 40,
                      what='every message', timeout=60)
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertEqual(self.notes(), sorted(before + after))
        self.assertIn('lost the broker', log)
        delays = set(re.findall(r'reconnecting in (\d+) s', log))
        self.assertTrue({'1', '2'} <= delays, log)


class PublishOutageTest(OutageTestCase):

    def test_publish_waits_for_broker_to_return(self):
        self.publish_slow('warm up')
        self.stop_rabbitmq()
        restarter = threading.Timer(2.0, self.start_rabbitmq)
        restarter.start()
        self.addCleanup(restarter.join)
        message_id = self.publish_slow('during outage')
        restarter.join()
        self.assertEqual(len(message_id), 32)
        with self.environment.connection() as connection:
            messages, _ = inspect_queue(connection, SLOW_QUEUE)
        self.assertEqual(messages, 2)

    def test_publish_raises_when_broker_stays_down(self):
        self.publish_slow('warm up')
        self.stop_rabbitmq()
        with self.assertRaises(PublishError) as raised:
            self.publish_slow('lost?')
        message = str(raised.exception)
        self.assertIn("to exchange 'audit' with routing key 'slow.work'",
                      message)
        self.assertNotIn('guest:guest', message)
        self.start_rabbitmq()
        with self.environment.connection() as connection:
            messages, _ = inspect_queue(connection, SLOW_QUEUE)
        self.assertEqual(messages, 1, 'only the message that was sent')


if __name__ == '__main__':
    unittest.main()

"""One routing table, checked on every transport pyforge supports."""

import unittest

from pyforge.environment import Environment
from pyforge.lib.amqp import DEAD_LETTER_QUEUE, Publisher
from pyforge.lib.message import Delivery, build_message
from pyforge.lib.retry import dead_letter
from pyforge.lib.plugins import Listener
from pyforge.lib.topology import declare_topology
from tests.apps import RecorderApp
from tests.rabbit import RabbitTestCase
from tests.support import TempDirTestCase, make_settings

PATTERNS = ['a.#', 'a.*', '#', '*.b', 'a.*.c']
KEYS = ['a', 'a.b', 'a.b.c']
#: What RabbitMQ delivers: pattern -> keys it matches.
EXPECTED = {
    'a.#': ['a', 'a.b', 'a.b.c'],
    'a.*': ['a.b'],
    '#': ['a', 'a.b', 'a.b.c'],
    '*.b': ['a.b'],
    'a.*.c': ['a.b.c'],
}


def pattern_listeners(app_name='table'):
    return [Listener(app_name=app_name, app_class=RecorderApp,
                     method_name='pattern%d' % index, exchange='audit',
                     patterns=(pattern,), is_classmethod=False)
            for index, pattern in enumerate(PATTERNS)]


class RoutingTableMixin:
    """Declares a queue per pattern, publishes each key, reads queues."""

    def amqp_url(self):
        raise NotImplementedError

    def test_routing_table(self):
        _, mongo_url = self.embedded_urls()
        environment = Environment(make_settings(self.amqp_url(), mongo_url))
        listeners = pattern_listeners()
        with environment.connection() as connection:
            declare_topology(connection, listeners, environment.db)
            publisher = Publisher(connection)
            for key in KEYS:
                publisher.send(build_message('audit', key, {'key': key}))
            channel = connection.channel()
            received = {}
            for listener in listeners:
                keys = []
                while True:
                    message = channel.basic_get(listener.queue, no_ack=True)
                    if message is None:
                        break
                    keys.append(message.delivery_info['routing_key'])
                received[listener.patterns[0]] = sorted(keys)
        for pattern in PATTERNS:
            with self.subTest(pattern=pattern):
                self.assertEqual(received[pattern], EXPECTED[pattern])

    def test_dead_letter_reaches_dead_letter_queue(self):
        # Dead letters go through the default exchange, which kombu's
        # Producer would swap for the publisher's own exchange.
        _, mongo_url = self.embedded_urls()
        environment = Environment(make_settings(self.amqp_url(), mongo_url))
        # kombu's filesystem transport keeps bindings in a process-wide
        # state, so queues of other names keep the two tests apart.
        listeners = pattern_listeners(app_name='dead')
        with environment.connection() as connection:
            declare_topology(connection, listeners, environment.db)
            message = build_message('audit', 'a.b', {'key': 'a.b'})
            letter = dead_letter(
                Delivery.from_outgoing(message, listeners[0].queue),
                'max-attempts', 'RuntimeError: failed', 3, 'label')
            routed = Publisher(connection).send(letter)
            channel = connection.channel()
            received = channel.basic_get(DEAD_LETTER_QUEUE, no_ack=True)
            strays = [listener.queue for listener in listeners
                      if channel.basic_get(listener.queue, no_ack=True)]
        self.assertTrue(routed)
        self.assertIsNotNone(received)
        self.assertEqual(received.headers['pyforge-dead-reason'],
                         'max-attempts')
        self.assertEqual(strays, [])


class FilesystemRoutingTest(RoutingTableMixin, TempDirTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]


class MemoryRoutingTest(RoutingTableMixin, TempDirTestCase):

    def amqp_url(self):
        return 'memory://'


class RabbitRoutingTest(RoutingTableMixin, TempDirTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url


if __name__ == '__main__':
    unittest.main()

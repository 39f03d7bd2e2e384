"""One routing table, checked on every transport pyforge supports."""

import unittest

from pyforge.environment import Environment
from pyforge.lib.amqp import Publisher
from pyforge.lib.message import build_message
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


def pattern_listeners():
    return [Listener(app_name='table', app_class=RecorderApp,
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

"""The Publisher on every transport, beyond routing by pattern."""

import unittest

from pyforge.environment import Environment
from pyforge.lib.amqp import DEAD_LETTER_QUEUE, Publisher, dead_letter_queue
from pyforge.lib.message import Delivery, build_message
from pyforge.lib.retry import dead_letter
from pyforge.lib.topology import declare_topology, inspect_queue
from tests.apps import RecorderApp, listener
from tests.rabbit import RabbitTestCase
from tests.support import TempDirTestCase, make_settings


class DefaultExchangeMixin:
    """A message for the default exchange reaches the queue it names."""

    def amqp_url(self):
        raise NotImplementedError

    def test_dead_letter_reaches_dead_letter_queue(self):
        _, mongo_url = self.embedded_urls()
        environment = Environment(make_settings(self.amqp_url(), mongo_url))
        audit = listener(RecorderApp, 'audit_instance', 'audit')
        message = build_message('audit', 'rec.x', {'project_id': 'demo'})
        with environment.connection() as connection:
            declare_topology(connection, [audit], environment.db)
            publisher = Publisher(connection)
            publisher.maybe_declare(dead_letter_queue())
            letter = dead_letter(Delivery.from_outgoing(message, audit.queue),
                                 'unknown-project', 'no such project', 0)
            routed = publisher.send(letter)
            channel = connection.channel()
            _, dead, _ = channel.queue_declare(DEAD_LETTER_QUEUE,
                                               passive=True)
            queued = inspect_queue(connection, audit.queue)
        self.assertTrue(routed)
        self.assertEqual(dead, 1)
        # kombu once sent it to the producer's exchange, audit, instead.
        self.assertEqual(queued[0], 0)


class FilesystemDefaultExchangeTest(DefaultExchangeMixin, TempDirTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitDefaultExchangeTest(DefaultExchangeMixin, TempDirTestCase,
                                RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url


if __name__ == '__main__':
    unittest.main()

"""``publish`` outside listeners, on RabbitMQ and the embedded broker."""

import json
import unittest

from pyforge.environment import configure
from pyforge.lib.plugins import find_listeners
from pyforge.lib.publish import publish
from pyforge.lib.topology import declare_topology, inspect_queue
from tests.rabbit import RabbitTestCase
from tests.support import TempDirTestCase


class PublishMixin:

    def amqp_url(self):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.environment = configure(
            {'amqp.url': self.amqp_url(), 'mongo.url': mongo_url})
        self.addCleanup(self.environment.close)
        with self.environment.connection() as connection:
            declare_topology(connection, find_listeners(['wiki']),
                             self.environment.db)

    def test_routed_message_waits_in_queue(self):
        with self.assertNoLogs('pyforge.lib.amqp', 'WARNING'):
            publish('react', 'hello_forge.commented', {'project_id': 'demo'})
        with self.environment.connection() as connection:
            self.assertEqual(
                inspect_queue(connection, 'react.wiki.on_comment')[0], 1)

    def test_unroutable_message_warned(self):
        with self.assertLogs('pyforge.lib.amqp', 'WARNING') as logs:
            message_id = publish('audit', 'nobody.listens',
                                 {'project_id': 'demo'})
        line, = logs.output
        self.assertIn("exchange 'audit'", line)
        self.assertIn("routing key 'nobody.listens'", line)
        self.assertIn(message_id, line)
        self.assertIn('paster reactor_setup', line)

    def test_body_and_properties(self):
        message_id = publish('react', 'hello_forge.commented',
                             {'project_id': 'demo', 'text': 'é'})
        with self.environment.connection() as connection:
            message = connection.channel().basic_get(
                'react.wiki.on_comment', no_ack=True)
        body = message.body
        if isinstance(body, str):
            # py-amqp decodes bodies that name a content encoding.
            body = body.encode('utf-8')
        self.assertEqual(json.loads(body.decode('utf-8')),
                         {'project_id': 'demo', 'text': 'é'})
        self.assertEqual(message.content_type, 'application/json')
        self.assertEqual(message.properties['message_id'], message_id)
        self.assertEqual(message.headers['pyforge-hops'], 0)
        self.assertIsInstance(message.properties['timestamp'], int)

    def test_invalid_data_rejected_before_sending(self):
        cases = [
            ('react', 'a.b', {'when': object()}, 'cannot be sent as JSON'),
            ('react', 'a.b', ['not', 'a', 'dict'], 'must be a dict'),
            ('react', 'a.b', {'x': float('nan')}, 'cannot be sent as JSON'),
            ('elsewhere', 'a.b', {}, "exchange 'elsewhere' is unknown"),
            ('react', 'a.#', {}, 'contains a wildcard'),
            ('react', '', {}, 'routing key is empty'),
            ('react', 'a.b', {}, 'has project_id None'),
            ('react', 'a.b', {'project_id': 7}, 'has project_id 7'),
        ]
        for exchange, routing_key, data, expected in cases:
            with self.subTest(expected=expected):
                with self.assertRaises(Exception) as raised:
                    publish(exchange, routing_key, data)
                self.assertIn(expected, str(raised.exception))


class FilesystemPublishTest(PublishMixin, TempDirTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitPublishTest(PublishMixin, TempDirTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url


if __name__ == '__main__':
    unittest.main()

"""Fault injection against running workers, on RabbitMQ and on the
embedded broker where it can give the guarantee."""

import json
import os
import pickle
import re
import signal
import unittest
import uuid

import kombu

from pyforge.lib.amqp import DEAD_LETTER_QUEUE
from pyforge.lib.message import HOPS_HEADER
from pyforge.lib.publish import publish
from pyforge.lib.retry import (
    DEAD_ATTEMPTS_HEADER, DEAD_ERROR_HEADER, DEAD_LISTENER_HEADER,
    DEAD_QUEUE_HEADER, DEAD_REASON_HEADER)
from pyforge.model import records
from tests.rabbit import RabbitTestCase
from tests.support import ReactorTestCase

OK_QUEUE = 'audit.fault.ok'


class Unpicklable:
    """Creates a file when unpickled, to prove nobody unpickles it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def dead_letters(connection):
    """Return (body, headers, properties) of every dead letter, acked."""
    letters = []
    channel = connection.channel()
    while True:
        message = channel.basic_get(DEAD_LETTER_QUEUE, no_ack=True)
        if message is None:
            break
        properties = {
            'message_id': message.properties.get('message_id'),
            'content_type': message.content_type,
        }
        letters.append((message.body, dict(message.headers), properties))
    channel.close()
    return letters


def error_lines(log):
    return [line for line in log.splitlines() if ' ERROR ' in line]


class FaultMixin:

    extra_settings = '''\
        reactor.max_attempts = 3
        reactor.retry_delay = 0.3
        reactor.retry_backoff = 2
        reactor.retry_max_delay = 5
        reactor.max_body_size = 2000
        reactor.max_hops = 3
        reactor.restart_delay = 0.2
        '''

    def notes(self):
        return sorted(note['text'] for note in self.db.notes.find())

    def publish_raw(self, body, content_type='application/json',
                    routing_key='fault.ok', headers=None,
                    content_encoding='utf-8', with_id=True):
        """Publish what a careless client might; return its message id."""
        message_id = uuid.uuid4().hex if with_id else None
        with self.environment.connection() as connection:
            producer = kombu.Producer(connection.channel())
            producer.publish(
                body, exchange='audit', routing_key=routing_key,
                content_type=content_type,
                content_encoding=content_encoding, headers=headers or {},
                message_id=message_id, serializer=None)
        return message_id

    def test_failing_listener_retried_then_dead_lettered(self):
        reactor = self.start_reactor('--queue', OK_QUEUE)
        failing = publish('audit', 'fault.ok', {
            'project_id': 'demo', 'mount_point': 'fault', 'text': 'bad',
            'fail': True})
        for number in range(5):
            publish('audit', 'fault.ok', {
                'project_id': 'demo', 'mount_point': 'fault',
                'text': 'good %d' % number})
        self.wait_for(
            lambda: (self.record(failing) or {}).get('status') == 'dead',
            what='the failing message to be dead-lettered')
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)

        self.assertEqual(self.notes(), ['good %d' % n for n in range(5)])
        dead = self.record(failing)
        self.assertEqual(dead['attempts'], 3)
        self.assertEqual(dead['reason'], 'max-attempts')
        for number in range(5):
            good = self.db[records.COLLECTION].find_one(
                {'queue': OK_QUEUE, 'status': 'done',
                 'finished_at': {'$lt': dead['finished_at']}})
            self.assertIsNotNone(good, 'good messages flowed meanwhile')
        delays = re.findall(r'retrying in ([\d.]+) s', log)
        self.assertEqual(delays, ['0.3', '0.6'])

        with self.environment.connection() as connection:
            letters = dead_letters(connection)
        self.assertEqual(len(letters), 1)
        body, headers, properties = letters[0]
        self.assertEqual(json.loads(body)['text'], 'bad')
        self.assertEqual(properties['message_id'], failing)
        self.assertEqual(properties['content_type'], 'application/json')
        self.assertEqual(headers[DEAD_REASON_HEADER], 'max-attempts')
        self.assertEqual(headers[DEAD_ERROR_HEADER],
                         'ValueError: asked to fail: bad')
        self.assertEqual(headers[DEAD_QUEUE_HEADER], OK_QUEUE)
        self.assertEqual(headers[DEAD_ATTEMPTS_HEADER], 3)
        self.assertEqual(headers[DEAD_LISTENER_HEADER],
                         'tests.apps:FaultApp.ok')
        self.assertEqual(headers['pyforge-exchange'], 'audit')
        self.assertEqual(headers['pyforge-routing-key'], 'fault.ok')
        self.assertEqual(headers[HOPS_HEADER], 0)
        self.assertIn('pyforge-published-at', headers)

    def test_hopeless_messages_dead_lettered_at_once(self):
        marker = os.path.join(self.tmp, 'unpickled')
        cases = {
            'content-type': [
                dict(body=b'hello', content_type='text/plain'),
                dict(body=pickle.dumps(Unpicklable(marker)),
                     content_type='application/x-python-serialize',
                     content_encoding='binary'),
                dict(body=b'a: 1', content_type='application/x-yaml'),
                dict(body=b'{"project_id": "demo"}', content_type=None,
                     content_encoding=None),
            ],
            'content-encoding': [
                dict(body=b'{}', content_encoding='gzip'),
            ],
            'invalid-utf8': [dict(body=b'{"text": "\xff\xfe"}')],
            'invalid-json': [dict(body=b'{not json'),
                             dict(body=b'{"n": NaN}')],
            'not-an-object': [dict(body=b'[1, 2]'), dict(body=b'"x"')],
            'missing-project-id': [dict(body=b'{"mount_point": "fault"}')],
            'unknown-project': [dict(
                body=b'{"project_id": "nope", "mount_point": "fault"}')],
            'unknown-mount-point': [dict(
                body=b'{"project_id": "demo", "mount_point": "nowhere"}')],
            'wrong-app': [dict(
                body=b'{"project_id": "demo", "mount_point": "hello"}')],
            'too-large': [dict(body=json.dumps(
                {'project_id': 'demo', 'mount_point': 'fault',
                 'text': 'x' * 3000}).encode())],
            'invalid-header': [dict(
                body=b'{"project_id": "demo", "mount_point": "fault"}',
                headers={HOPS_HEADER: 'many'})],
        }
        reactor = self.start_reactor('--queue', OK_QUEUE)
        expected = {}
        for reason, messages in cases.items():
            for fields in messages:
                expected[self.publish_raw(**fields)] = reason
        for number in range(3):
            publish('audit', 'fault.ok', {
                'project_id': 'demo', 'mount_point': 'fault',
                'text': 'good %d' % number})
        total = len(expected) + 3
        self.wait_for(
            lambda: self.db[records.COLLECTION].count_documents(
                {'queue': OK_QUEUE}) == total,
            what='%d records' % total)
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)

        self.assertFalse(os.path.exists(marker), 'the pickle was loaded')
        self.assertEqual(self.notes(), ['good 0', 'good 1', 'good 2'])
        self.assertNotIn('retrying', log)
        self.assertEqual(len(error_lines(log)), len(expected), log)
        self.assertIn("worker %s stopped: {'dead': %d, 'done': 3}"
                      % (self.worker_pid(log), len(expected)),
                      log.replace("'done': 3, 'dead': %d" % len(expected),
                                  "'dead': %d, 'done': 3" % len(expected)))
        for message_id, reason in expected.items():
            with self.subTest(reason=reason):
                record = self.record(message_id)
                self.assertEqual(record['status'], 'dead')
                self.assertEqual(record['reason'], reason)
                self.assertEqual(record['attempts'], 0)
        with self.environment.connection() as connection:
            letters = dead_letters(connection)
        reasons = sorted(headers[DEAD_REASON_HEADER]
                         for _, headers, _ in letters)
        self.assertEqual(reasons, sorted(expected.values()))
        bodies = {properties['message_id']: body
                  for body, _, properties in letters}
        pickled = [message_id for message_id, reason in expected.items()
                   if reason == 'content-type']
        self.assertEqual(bodies[pickled[1]],
                         pickle.dumps(Unpicklable(marker)))

    def test_messages_without_id_get_one(self):
        reactor = self.start_reactor('--queue', OK_QUEUE)
        self.publish_raw(json.dumps({
            'project_id': 'demo', 'mount_point': 'fault',
            'text': 'anonymous'}).encode(), with_id=False)
        self.publish_raw(b'[1]', with_id=False)
        self.wait_for(
            lambda: self.db[records.COLLECTION].count_documents(
                {'queue': OK_QUEUE}) == 2,
            what='two records')
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertEqual(self.notes(), ['anonymous'])
        self.assertIn('had no message id; put back on its queue', log)
        statuses = sorted(record['status'] for record in
                          self.db[records.COLLECTION].find())
        self.assertEqual(statuses, ['dead', 'done'])
        with self.environment.connection() as connection:
            (_, headers, properties), = dead_letters(connection)
        self.assertEqual(headers[DEAD_REASON_HEADER], 'not-an-object')
        self.assertEqual(len(properties['message_id']), 32)

    def test_loop_stopped_after_max_hops(self):
        reactor = self.start_reactor('--queue', 'react.fault.loop')
        publish('react', 'loop.around', {'project_id': 'demo'})
        self.wait_for(lambda: self.dead_letter_count() == 1,
                      what='the looping message to be dead-lettered')
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertEqual(self.notes(), ['hop'] * 4)
        with self.environment.connection() as connection:
            (body, headers, _), = dead_letters(connection)
        self.assertEqual(headers[DEAD_REASON_HEADER], 'max-hops')
        self.assertEqual(headers[HOPS_HEADER], 4)
        self.assertEqual(headers['pyforge-routing-key'], 'loop.around')
        self.assertIn('listener tests.apps:FaultApp.loop looped', log)

    def test_redelivery_after_flush_not_handled_twice(self):
        from pyforge.lib.dispatch import Dispatcher
        from pyforge.lib.outcome import DONE, DUPLICATE
        from pyforge.lib.amqp import Publisher
        from pyforge.lib.message import Delivery
        from tests.apps import FaultApp, listener
        found = listener(FaultApp, 'ok', 'audit')
        publish('audit', 'fault.ok', {'project_id': 'demo',
                                      'mount_point': 'fault', 'text': 'x'})
        outcomes = []
        for _ in range(2):
            # Each round is a worker that dies after the flush: its
            # channel closes without an ack and the broker redelivers.
            with self.environment.connection() as connection:
                dispatcher = Dispatcher(self.db, self.environment.settings,
                                        Publisher(connection, retry=False))
                channel = connection.channel()
                message = channel.basic_get(OK_QUEUE, no_ack=False)
                self.assertIsNotNone(message)
                outcomes.append(dispatcher.handle(
                    Delivery.from_kombu(message, OK_QUEUE), found).status)
                redelivered = message.delivery_info.get('redelivered')
        self.assertEqual(outcomes, [DONE, DUPLICATE])
        self.assertTrue(redelivered)
        self.assertEqual(self.notes(), ['x'])

    def record(self, message_id):
        return records.find_record(self.db, OK_QUEUE, message_id)

    def dead_letter_count(self):
        from pyforge.lib.topology import inspect_queue
        with self.environment.connection() as connection:
            found = inspect_queue(connection, DEAD_LETTER_QUEUE)
        return found[0] if found else 0

    def worker_pid(self, log):
        return re.search(r'worker (\d+) starting', log).group(1)

    def test_killed_worker_message_redelivered(self):
        marker = os.path.join(self.tmp, 'killed-once')
        reactor = self.start_reactor('--queue', 'audit.fault.kill')
        publish('audit', 'fault.kill', {
            'project_id': 'demo', 'mount_point': 'fault', 'text': 'survived',
            'marker': marker})
        self.wait_for(lambda: self.notes() == ['survived'],
                      what='the redelivered message to be handled')
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertIn('killed by SIGKILL', log)

    def test_killed_worker_fetched_messages_handled(self):
        kill_marker = os.path.join(self.tmp, 'killed-once')
        spare_marker = os.path.join(self.tmp, 'never-kill')
        open(spare_marker, 'w').close()
        texts = ['first', 'second', 'third', 'fourth']
        # All four are waiting when the worker starts, so it fetches them
        # in one batch and dies on the first.
        for text in texts:
            publish('audit', 'fault.kill', {
                'project_id': 'demo', 'mount_point': 'fault', 'text': text,
                'marker': kill_marker if text == 'first' else spare_marker})
        reactor = self.start_reactor('--queue', 'audit.fault.kill')
        self.wait_for(lambda: self.notes() == sorted(texts),
                      what='every fetched message to be handled')
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertEqual(log.count('killed by SIGKILL'), 1, log)

    def test_poison_message_without_id_dead_lettered(self):
        reactor = self.start_reactor('--queue', 'audit.fault.kill')
        self.publish_raw(json.dumps({
            'project_id': 'demo', 'mount_point': 'fault',
            'always': True}).encode(), routing_key='fault.kill',
            with_id=False)
        self.wait_for(lambda: self.dead_letter_count() == 1,
                      what='the poison message to be dead-lettered')
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertEqual(log.count('killed by SIGKILL'), 3, log)
        record = self.db[records.COLLECTION].find_one(
            {'queue': 'audit.fault.kill'})
        self.assertEqual(record['reason'], 'worker-lost')

    def test_poison_message_dead_lettered_not_looping(self):
        marker = os.path.join(self.tmp, 'poison')
        reactor = self.start_reactor('--queue', 'audit.fault.kill')
        poison = publish('audit', 'fault.kill', {
            'project_id': 'demo', 'mount_point': 'fault', 'always': True,
            'marker': marker})
        self.wait_for(lambda: self.dead_letter_count() == 1,
                      what='the poison message to be dead-lettered')
        publish('audit', 'fault.kill', {
            'project_id': 'demo', 'mount_point': 'fault', 'text': 'next',
            'marker': marker + '-next'})
        self.wait_for(lambda: self.notes() == ['next'],
                      what='the next message to be handled')
        status, log = self.stop(reactor)
        self.assertEqual(status, 0, log)
        self.assertEqual(log.count('killed by SIGKILL'), 4, log)
        record = records.find_record(self.db, 'audit.fault.kill', poison)
        self.assertEqual(record['reason'], 'worker-lost')
        self.assertEqual(record['status'], 'dead')


class FilesystemFaultTest(FaultMixin, ReactorTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitFaultTest(FaultMixin, ReactorTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url


if __name__ == '__main__':
    unittest.main()

"""The dispatcher against odd input from any client, and concurrent
workers: nothing may stop a worker or be recorded wrongly."""

import json
import sqlite3
import unittest
from unittest import mock

from pyforge.lib.dispatch import Dispatcher
from pyforge.lib.message import (
    ATTEMPT_HEADER, EXCHANGE_HEADER, PUBLISHED_AT_HEADER, Delivery)
from pyforge.lib.outcome import DEAD, DONE, DUPLICATE, REPUBLISHED
from pyforge.lib.resolve import Resolver
from pyforge.lib import store
from pyforge.model import records
from tests.apps import FaultApp, listener
from tests.support import (
    CapturingPublisher, TempDirTestCase, create_project, delivery_for,
    make_settings)


class InputTestCase(TempDirTestCase):

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.settings = make_settings('memory://', mongo_url,
                                      reactor_max_attempts=3)
        self.db = store.connect(mongo_url)
        self.dispatcher = Dispatcher(self.db, self.settings,
                                     CapturingPublisher())
        create_project(self.db, 'demo', [('fault', 'fault')])
        self.listener = listener(FaultApp, 'ok', 'audit')

    def raw(self, body, content_type='application/json',
            content_encoding='utf-8', headers=None, message_id='m1'):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode('utf-8')
        return Delivery(body=body, content_type=content_type,
                        content_encoding=content_encoding,
                        headers=headers or {}, message_id=message_id,
                        exchange='audit', routing_key='fault.ok',
                        queue=self.listener.queue)

    def handle(self, delivery):
        return self.dispatcher.handle(delivery, self.listener)

    def record(self, message_id='m1'):
        return records.find_record(self.db, self.listener.queue, message_id)

    def good(self, **extra):
        body = {'project_id': 'demo', 'mount_point': 'fault', 'text': 't'}
        body.update(extra)
        return body


class OddValuesTest(InputTestCase):

    def test_odd_project_ids_dead_lettered_and_recorded(self):
        cases = [2 ** 70, {'$where': 1}, 'bad\udc80id', ['a'], 1.5]
        for number, project_id in enumerate(cases):
            with self.subTest(project_id=project_id):
                body = json.dumps({'project_id': project_id},
                                  ensure_ascii=True).encode()
                message_id = 'odd%d' % number
                outcome = self.handle(self.raw(body, message_id=message_id))
                self.assertEqual(outcome.status, DEAD)
                self.assertEqual(outcome.reason, 'invalid-project-id')
                self.assertEqual(self.record(message_id)['status'], 'dead')

    def test_odd_mount_point_recorded(self):
        outcome = self.handle(self.raw(self.good(
            mount_point={'$gt': 2 ** 70})))
        self.assertEqual(outcome.status, DEAD)
        self.assertEqual(outcome.reason, 'unknown-mount-point')
        self.assertIn('$gt', self.record()['mount_point'])

    def test_deep_json_dead_lettered(self):
        body = b'[' * 100000 + b']' * 100000
        outcome = self.handle(self.raw(body))
        self.assertEqual(outcome.status, DEAD)
        self.assertEqual(outcome.reason, 'invalid-json')

    def test_publish_time_out_of_range_ignored(self):
        for value in (1e300, -1e12, float('nan'), 'soon'):
            with self.subTest(value=value):
                delivery = self.raw(self.good(), message_id=repr(value),
                                    headers={PUBLISHED_AT_HEADER: value})
                self.assertEqual(self.handle(delivery).status, DONE)
                self.assertNotIn('latency', self.record(repr(value)))

    def test_exchange_header_not_string_ignored(self):
        delivery = self.raw(self.good(),
                            headers={EXCHANGE_HEADER: {'$x': 1}})
        self.assertEqual(self.handle(delivery).status, DONE)
        self.assertEqual(self.record()['exchange'], 'audit')

    def test_content_types_and_encodings(self):
        accepted = [('application/json; charset=utf-8', 'utf-8'),
                    ('Application/JSON', 'UTF8'),
                    ('application/json', 'binary'),
                    ('application/json', None)]
        for number, (content_type, encoding) in enumerate(accepted):
            with self.subTest(content_type=content_type, encoding=encoding):
                outcome = self.handle(self.raw(
                    self.good(), content_type=content_type,
                    content_encoding=encoding, message_id='ok%d' % number))
                self.assertEqual(outcome.status, DONE)
        rejected = [('application/json; charset=latin-1', 'utf-8',
                     'content-type'),
                    ('application/json', 'gzip', 'content-encoding')]
        for content_type, encoding, reason in rejected:
            with self.subTest(content_type=content_type, encoding=encoding):
                outcome = self.handle(self.raw(
                    self.good(), content_type=content_type,
                    content_encoding=encoding, message_id=reason))
                self.assertEqual(outcome.reason, reason)

    def test_attempt_header_alone_is_not_worker_lost(self):
        delivery = self.raw(self.good(), headers={ATTEMPT_HEADER: 5})
        outcome = self.handle(delivery)
        self.assertEqual(outcome.status, DEAD)
        self.assertEqual(outcome.reason, 'max-attempts')
        self.assertIn('5 attempt(s) failed and 0 delivery(ies)',
                      outcome.error)


class MessageIdTest(InputTestCase):

    def test_message_without_id_republished_with_one(self):
        for missing in (None, ''):
            with self.subTest(message_id=missing):
                outcome = self.handle(self.raw(self.good(),
                                               message_id=missing))
                self.assertEqual(outcome.status, REPUBLISHED)
                copy = self.dispatcher.publisher.sent[-1]
                self.assertEqual(copy.exchange, '')
                self.assertEqual(copy.routing_key, self.listener.queue)
                self.assertEqual(len(copy.message_id), 32)
                self.assertEqual(copy.headers[EXCHANGE_HEADER], 'audit')
        self.assertEqual(self.db.notes.count_documents({}), 0)

    def test_hopeless_message_without_id_recorded(self):
        outcome = self.handle(self.raw(b'[1]', message_id=None))
        self.assertEqual(outcome.status, DEAD)
        self.assertEqual(len(outcome.envelope.message_id), 32)
        self.assertEqual(self.record(outcome.envelope.message_id)['reason'],
                         'not-an-object')


class UnexpectedErrorTest(InputTestCase):

    def test_bug_dead_letters_instead_of_raising(self):
        with mock.patch.object(Resolver, 'resolve',
                               side_effect=KeyError('boom')):
            outcome = self.handle(self.raw(self.good()))
        self.assertEqual(outcome.status, DEAD)
        self.assertEqual(outcome.reason, 'internal-error')
        self.assertIn("KeyError: 'boom'", outcome.error)
        self.assertEqual(self.record()['reason'], 'internal-error')

    def test_database_trouble_raised_for_the_worker(self):
        error = sqlite3.OperationalError('database is locked')
        with mock.patch.object(Resolver, 'resolve', side_effect=error):
            with self.assertRaises(sqlite3.OperationalError):
                self.handle(self.raw(self.good()))


class ConcurrentWorkersTest(InputTestCase):

    def test_message_done_elsewhere_meanwhile_is_duplicate(self):
        other = Dispatcher(self.db, self.settings, CapturingPublisher())
        delivery = self.raw(self.good(text='once'))
        # This worker read the records before the other one finished.
        self.dispatcher.read_ahead([delivery])
        self.assertEqual(other.handle(self.raw(self.good(text='once')),
                                      self.listener).status, DONE)
        outcome = self.dispatcher.dispatch(delivery, self.listener,
                                           defer=True)
        outcome, = self.dispatcher.flush_deferred([outcome])
        self.assertEqual(outcome.status, DUPLICATE)
        self.assertEqual(self.db.notes.count_documents({}), 1)
        self.assertEqual(self.record()['status'], 'done')

    def test_failure_never_overwrites_done(self):
        self.assertEqual(self.handle(self.raw(self.good())).status, DONE)
        failing = self.raw(self.good(fail=True))
        with mock.patch.object(self.dispatcher, '_find_record',
                               return_value=None):
            self.handle(failing)
        self.assertEqual(self.record()['status'], 'done')


if __name__ == '__main__':
    unittest.main()

import json
import unittest

from pyforge.exceptions import PublishError
from pyforge.lib.dispatch import Dispatcher
from pyforge.lib.outcome import DEAD, DONE, DUPLICATE, RETRY
from pyforge.lib.message import ATTEMPT_HEADER, HOPS_HEADER
from pyforge.lib import store
from pyforge.model import records
from tests import apps
from tests.apps import RecorderApp, WriterApp, listener
from tests.support import (
    CapturingPublisher, TempDirTestCase, create_project, delivery_for,
    make_settings)


class DispatchTestCase(TempDirTestCase):

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.settings = make_settings('memory://', mongo_url,
                                      reactor_max_attempts=3)
        self.db = store.connect(mongo_url)
        self.publisher = CapturingPublisher()
        self.dispatcher = Dispatcher(self.db, self.settings, self.publisher)
        create_project(self.db, 'demo', [
            ('recorder', 'rec1'), ('recorder', 'rec2'), ('other', 'misc'),
            ('writer', 'notes')])
        del apps.CALLS[:]

    def handle(self, app_class, method, exchange, data, **fields):
        found = listener(app_class, method, exchange)
        return self.dispatcher.handle(
            delivery_for(found, data, **fields), found)


class ListenerCaseTest(DispatchTestCase):

    def test_audit_instance_gets_its_mount_point(self):
        outcome = self.handle(RecorderApp, 'audit_instance', 'audit',
                              {'project_id': 'demo', 'mount_point': 'rec2'})
        self.assertEqual(outcome.status, DONE)
        self.assertEqual(len(apps.CALLS), 1)
        call = apps.CALLS[0]
        self.assertEqual(call['project_id'], 'demo')
        self.assertEqual(call['app'], 'rec2')
        self.assertEqual(call['self'], 'rec2')
        self.assertEqual(call['routing_key'], 'rec.x')

    def test_audit_classmethod_called_once_with_app(self):
        outcome = self.handle(RecorderApp, 'audit_class', 'audit',
                              {'project_id': 'demo', 'mount_point': 'rec1'})
        self.assertEqual(outcome.calls, 1)
        self.assertEqual(apps.CALLS[0]['app'], 'rec1')
        self.assertIsNone(apps.CALLS[0]['self'])

    def test_audit_classmethod_without_mount_point(self):
        outcome = self.handle(RecorderApp, 'audit_class', 'audit',
                              {'project_id': 'demo'})
        self.assertEqual(outcome.status, DONE)
        self.assertIsNone(apps.CALLS[0]['app'])

    def test_react_instance_called_for_every_instance(self):
        outcome = self.handle(RecorderApp, 'react_instance', 'react',
                              {'project_id': 'demo'})
        self.assertEqual(outcome.calls, 2)
        self.assertEqual([call['app'] for call in apps.CALLS],
                         ['rec1', 'rec2'])
        self.assertEqual([call['self'] for call in apps.CALLS],
                         ['rec1', 'rec2'])

    def test_react_classmethod_called_once(self):
        outcome = self.handle(RecorderApp, 'react_class', 'react',
                              {'project_id': 'demo'})
        self.assertEqual(outcome.calls, 1)
        self.assertIsNone(apps.CALLS[0]['app'])
        self.assertEqual(apps.CALLS[0]['project_id'], 'demo')

    def test_react_in_project_without_instances_calls_nothing(self):
        create_project(self.db, 'empty')
        outcome = self.handle(RecorderApp, 'react_instance', 'react',
                              {'project_id': 'empty'})
        self.assertEqual(outcome.status, DONE)
        self.assertEqual(apps.CALLS, [])

    def test_fresh_context_for_every_call(self):
        self.handle(RecorderApp, 'react_instance', 'react',
                    {'project_id': 'demo'})
        self.handle(RecorderApp, 'audit_instance', 'audit',
                    {'project_id': 'demo', 'mount_point': 'rec1'})
        self.assertEqual([call['leftover'] for call in apps.CALLS],
                         [None, None, None])
        # CALLS keeps every context alive, so ids cannot be reused.
        context_ids = {id(call['context']) for call in apps.CALLS}
        self.assertEqual(len(context_ids), 3)

    def test_context_popped_after_message(self):
        from pyforge.lib.context import c, current_session
        self.handle(RecorderApp, 'audit_instance', 'audit',
                    {'project_id': 'demo', 'mount_point': 'rec1'})
        self.assertFalse(c)
        self.assertIsNone(current_session())

    def test_context_popped_after_failure(self):
        from pyforge.lib.context import c, current_session
        self.handle(WriterApp, 'write', 'audit',
                    {'project_id': 'demo', 'mount_point': 'notes',
                     'fail': True})
        self.assertFalse(c)
        self.assertIsNone(current_session())

    def test_each_instance_gets_its_own_data(self):
        class Mutating(RecorderApp):
            pass

        def react_instance(self, routing_key, data):
            apps.CALLS.append(dict(data))
            data['seen'] = True

        Mutating.react_instance = apps.react(
            'rec.#')(react_instance)
        found = listener(Mutating, 'react_instance', 'react',
                         app_name='recorder')
        self.dispatcher.handle(
            delivery_for(found, {'project_id': 'demo'}), found)
        self.assertEqual(apps.CALLS, [{'project_id': 'demo'}] * 2)


class PersistenceTest(DispatchTestCase):

    def write(self, **data):
        data.update(project_id='demo', mount_point='notes')
        return self.handle(WriterApp, 'write', 'audit', data)

    def test_writes_persisted_after_return(self):
        outcome = self.write(text='hello')
        self.assertEqual(outcome.status, DONE)
        self.assertEqual([note['text'] for note in self.db.notes.find()],
                         ['hello'])
        config = self.db.app_configs.find_one({'mount_point': 'notes'})
        self.assertEqual(config['options']['writes'], 1)

    def test_outbox_sent_after_flush(self):
        self.write(text='hello')
        self.assertEqual(len(self.publisher.sent), 1)
        message = self.publisher.sent[0]
        self.assertEqual(message.exchange, 'react')
        self.assertEqual(message.routing_key, 'writer.wrote')
        body = json.loads(message.body)
        self.assertEqual(body, {'text': 'hello', 'project_id': 'demo',
                                'mount_point': 'notes'})
        self.assertEqual(message.headers[HOPS_HEADER], 1)

    def test_failing_auditor_leaves_no_writes(self):
        outcome = self.write(text='hello', fail=True)
        self.assertEqual(outcome.status, RETRY)
        self.assertEqual(list(self.db.notes.find()), [])
        config = self.db.app_configs.find_one({'mount_point': 'notes'})
        self.assertNotIn('writes', config['options'])

    def test_failing_auditor_sends_nothing(self):
        self.write(text='hello', fail=True)
        self.assertEqual(self.publisher.sent, [])

    def test_record_of_handled_message(self):
        outcome = self.write(text='hello')
        record = records.find_record(
            self.db, 'audit.writer.write', outcome.envelope.message_id)
        self.assertEqual(record['status'], records.DONE)
        self.assertEqual(record['exchange'], 'audit')
        self.assertEqual(record['routing_key'], 'writer.x')
        self.assertEqual(record['project_id'], 'demo')
        self.assertEqual(record['listener'], 'tests.apps:WriterApp.write')
        self.assertGreaterEqual(record['duration'], 0)
        self.assertIn('published_at', record)
        self.assertIn('finished_at', record)

    def test_redelivered_done_message_not_called_again(self):
        found = listener(WriterApp, 'write', 'audit')
        delivery = delivery_for(found, {'project_id': 'demo',
                                        'mount_point': 'notes', 'text': 'x'})
        self.dispatcher.handle(delivery, found)
        delivery.redelivered = True
        outcome = self.dispatcher.handle(delivery, found)
        self.assertEqual(outcome.status, DUPLICATE)
        self.assertEqual(self.db.notes.count_documents({}), 1)
        self.assertEqual(len(self.publisher.sent), 1)

    def test_flushed_but_unsent_outbox_sent_on_redelivery(self):
        found = listener(WriterApp, 'write', 'audit')
        delivery = delivery_for(found, {'project_id': 'demo',
                                        'mount_point': 'notes', 'text': 'x'})

        class BrokenPublisher:
            def send(self, message):
                raise PublishError('broker gone')

        self.dispatcher.publisher = BrokenPublisher()
        with self.assertRaises(PublishError):
            self.dispatcher.handle(delivery, found)
        self.dispatcher.publisher = self.publisher
        delivery.redelivered = True
        outcome = self.dispatcher.handle(delivery, found)
        self.assertEqual(outcome.status, DUPLICATE)
        self.assertEqual(self.db.notes.count_documents({}), 1)
        self.assertEqual([m.routing_key for m in self.publisher.sent],
                         ['writer.wrote'])
        record = records.find_record(self.db, found.queue,
                                     delivery.message_id)
        self.assertEqual(record['status'], records.DONE)

    def test_retry_then_dead_after_max_attempts(self):
        found = listener(WriterApp, 'write', 'audit')
        delivery = delivery_for(found, {'project_id': 'demo',
                                        'mount_point': 'notes',
                                        'fail': True})
        statuses = []
        for attempt in range(3):
            delivery.headers[ATTEMPT_HEADER] = attempt
            outcome = self.dispatcher.handle(delivery, found)
            statuses.append(outcome.status)
        self.assertEqual(statuses, [RETRY, RETRY, DEAD])
        self.assertEqual(outcome.reason, 'max-attempts')
        self.assertEqual(outcome.error, 'RuntimeError: asked to fail')
        self.assertEqual(outcome.attempts, 3)

    def test_retry_delay_grows(self):
        found = listener(WriterApp, 'write', 'audit')
        delivery = delivery_for(found, {'project_id': 'demo',
                                        'mount_point': 'notes',
                                        'fail': True})
        first = self.dispatcher.handle(delivery, found)
        delivery.headers[ATTEMPT_HEADER] = 1
        second = self.dispatcher.handle(delivery, found)
        self.assertEqual(first.delay, 0.05)
        self.assertEqual(second.delay, 0.1)


class RequeuedMessageTest(DispatchTestCase):
    """A dead letter that reactor_dead requeued is handled again."""

    def dead_message(self):
        found = listener(WriterApp, 'write', 'audit')
        delivery = delivery_for(found, {'project_id': 'demo',
                                        'mount_point': 'notes',
                                        'fail': True})
        delivery.headers[ATTEMPT_HEADER] = 2
        outcome = self.dispatcher.handle(delivery, found)
        self.assertEqual(outcome.status, DEAD)
        return found, delivery.message_id

    def redelivery(self, found, message_id):
        return delivery_for(found, {'project_id': 'demo',
                                    'mount_point': 'notes', 'text': 'x'},
                            message_id=message_id, redelivered=True)

    def test_redelivered_dead_message_dead_lettered_again(self):
        # The worker may have died before publishing the dead letter.
        found, message_id = self.dead_message()
        outcome = self.dispatcher.handle(
            self.redelivery(found, message_id), found)
        self.assertEqual(outcome.status, DEAD)
        self.assertEqual(outcome.reason, 'max-attempts')
        self.assertIn('asked to fail', outcome.error)
        self.assertEqual(self.db.notes.count_documents({}), 0)

    def test_redelivered_requeued_message_handled(self):
        found, message_id = self.dead_message()
        for _ in range(3):
            records.count_unfinished(self.db, found.queue, message_id)
        self.assertTrue(records.mark_requeued(self.db, found.queue,
                                              message_id))
        outcome = self.dispatcher.handle(
            self.redelivery(found, message_id), found)
        self.assertEqual(outcome.status, DONE)
        self.assertEqual(self.db.notes.count_documents({}), 1)
        record = records.find_record(self.db, found.queue, message_id)
        self.assertEqual(record['status'], records.DONE)

    def test_mark_requeued_only_changes_dead_records(self):
        found = listener(WriterApp, 'write', 'audit')
        delivery = delivery_for(found, {'project_id': 'demo',
                                        'mount_point': 'notes'})
        self.dispatcher.handle(delivery, found)
        self.assertFalse(records.mark_requeued(
            self.db, found.queue, delivery.message_id))
        record = records.find_record(self.db, found.queue,
                                     delivery.message_id)
        self.assertEqual(record['status'], records.DONE)


if __name__ == '__main__':
    unittest.main()

"""The test bus of pyforge.lib.testing: routing, delivery, retries."""

import unittest
from unittest import mock

from pyforge.environment import configure, current_environment
from pyforge.exceptions import ConfigurationError
from pyforge.lib.outcome import DEAD, DONE, RETRY
from pyforge.lib.publish import publish
from pyforge.lib.testing import (
    Bus, BusTestCase, DeliveryLoopError, UnexpectedDeadLetters)
from pyforge.model import records
from tests.apps import ChainApp, FlakyApp, RecorderApp, WriterApp
from tests.support import TempDirTestCase

APPS = {'recorder': RecorderApp, 'writer': WriterApp, 'chain': ChainApp,
        'flaky': FlakyApp}

#: Reactor settings of the tests; retries wait 1 s, then 2 s.
SETTINGS = {'reactor.max_attempts': '3', 'reactor.retry_delay': '1',
            'reactor.retry_backoff': '2'}


class BusCase(BusTestCase):
    """A bus of each test's own, running only the apps of tests.apps."""

    bus_config = SETTINGS
    bus_apps = []
    bus_extra_apps = APPS

    def setUp(self):
        super().setUp()
        self.bus.create_project(
            'demo', 'recorder:rec1', 'recorder:rec2', 'writer:notes',
            'chain:chain', 'flaky:flaky')


class PublishTest(BusCase):

    def test_publish_captured(self):
        publish('audit', 'rec.x', {'project_id': 'demo',
                                   'mount_point': 'rec1'})
        self.assertEqual(len(self.bus.published), 1)
        message = self.bus.published[0]
        self.assertEqual(message.exchange, 'audit')
        self.assertEqual(message.routing_key, 'rec.x')
        self.assertEqual(message.data, {'project_id': 'demo',
                                        'mount_point': 'rec1'})
        self.assertEqual(message.hops, 0)
        self.assertIsNone(message.published_by)
        self.assertEqual(len(message.message_id), 32)

    def test_publish_routed_like_rabbitmq(self):
        # kombu's own topic exchange would not match 'rec.#' with 'rec'.
        publish('audit', 'rec', {'project_id': 'demo'})
        self.assertEqual(self.bus.published[0].queues, (
            'audit.recorder.audit_class', 'audit.recorder.audit_instance'))

    def test_unrouted_publish_has_no_queues(self):
        publish('react', 'nobody.listens', {'project_id': 'demo'})
        self.assertEqual(self.bus.published[0].queues, ())
        self.assertEqual(self.bus.pending(), [])

    def test_find_published_filters(self):
        publish('audit', 'rec.a', {'project_id': 'demo'})
        publish('react', 'rec.a', {'project_id': 'demo'})
        publish('react', 'rec.b', {'project_id': 'demo'})
        found = self.bus.find_published(exchange='react', routing_key='rec.a')
        self.assertEqual(len(found), 1)
        self.assertEqual(found[0].exchange, 'react')
        self.assertEqual(len(self.bus.find_published(exchange='react')), 2)
        self.assertEqual(len(self.bus.find_published(routing_key='rec.a')),
                         2)

    def test_published_waits_until_delivered(self):
        publish('audit', 'rec.x', {'project_id': 'demo',
                                   'mount_point': 'rec1'})
        pending = self.bus.pending()
        self.assertEqual(sorted(item.queue for item in pending), [
            'audit.recorder.audit_class', 'audit.recorder.audit_instance'])
        self.assertEqual(self.bus.calls, [])


class DeliverTest(BusCase):

    def test_every_listener_case_called(self):
        publish('audit', 'rec.x', {'project_id': 'demo',
                                   'mount_point': 'rec2'})
        publish('react', 'rec.y', {'project_id': 'demo'})
        report = self.bus.deliver()
        calls = sorted((call.method_name, call.mount_point, call.routing_key)
                       for call in self.bus.calls)
        self.assertEqual(calls, [
            ('audit_class', 'rec2', 'rec.x'),
            ('audit_instance', 'rec2', 'rec.x'),
            ('react_class', None, 'rec.y'),
            ('react_instance', 'rec1', 'rec.y'),
            ('react_instance', 'rec2', 'rec.y'),
        ])
        self.assertEqual(report.statuses, {DONE: 4})
        self.assertEqual(report.rounds, 1)
        self.assertEqual(self.bus.pending(), [])

    def test_calls_record_context(self):
        publish('audit', 'rec.x', {'project_id': 'demo',
                                   'mount_point': 'rec1', 'n': 1})
        self.bus.deliver()
        call = [call for call in self.bus.calls
                if call.method_name == 'audit_instance'][0]
        self.assertEqual(call.listener,
                         'tests.apps:RecorderApp.audit_instance')
        self.assertEqual(call.app_name, 'recorder')
        self.assertEqual(call.queue, 'audit.recorder.audit_instance')
        self.assertEqual(call.exchange, 'audit')
        self.assertEqual(call.project_id, 'demo')
        self.assertEqual(call.attempt, 0)
        self.assertEqual(call.hops, 0)
        self.assertEqual(call.data, {'project_id': 'demo',
                                     'mount_point': 'rec1', 'n': 1})
        self.assertIsNone(call.error)
        self.assertEqual(call.message_id,
                         self.bus.published[0].message_id)

    def test_outbox_sent_after_flush(self):
        publish('audit', 'writer.x', {'project_id': 'demo',
                                      'mount_point': 'notes', 'text': 'hi'})
        self.bus.deliver()
        sent = self.bus.find_published(routing_key='writer.wrote')
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0].published_by, 'tests.apps:WriterApp.write')
        self.assertEqual(sent[0].hops, 1)
        self.assertEqual(sent[0].data, {'text': 'hi', 'project_id': 'demo',
                                        'mount_point': 'notes'})
        self.assertEqual([note['text'] for note in self.bus.db.notes.find()],
                         ['hi'])
        self.assertEqual(self.bus.app_options('demo', 'notes')['writes'], 1)

    def test_record_written_as_by_worker(self):
        publish('audit', 'writer.x', {'project_id': 'demo',
                                      'mount_point': 'notes', 'text': 'hi'})
        self.bus.deliver()
        record = records.find_record(self.bus.db, 'audit.writer.write',
                                     self.bus.published[0].message_id)
        self.assertEqual(record['status'], records.DONE)
        self.assertEqual(record['listener'], 'tests.apps:WriterApp.write')
        self.assertEqual(record['attempts'], 1)
        self.assertNotIn('outbox', record)

    def test_round_per_hop(self):
        publish('audit', 'chain.start', {'project_id': 'demo',
                                         'mount_point': 'chain', 'left': 3})
        report = self.bus.deliver()
        self.assertEqual(report.rounds, 4)
        steps = sorted((step['left'], step['hops'])
                       for step in self.bus.db.steps.find())
        self.assertEqual(steps, [(0, 3), (1, 2), (2, 1), (3, 0)])

    def test_loop_cut_by_max_hops_as_by_worker(self):
        publish('audit', 'chain.start', {'project_id': 'demo',
                                         'mount_point': 'chain', 'left': 50})
        report = self.bus.deliver()
        # Hops 0 to 10 are handled; the publish of hop 11 is dead.
        self.assertEqual(report.rounds, 11)
        self.assertEqual(self.bus.db.steps.count_documents({}), 11)
        dead = self.bus.assert_dead_letter(
            reason='max-hops', listener='tests.apps:ChainApp.step')
        self.assertEqual(dead.routing_key, 'chain.step')
        self.assertIn('over reactor.max_hops = 10', dead.error)

    def test_unknown_project_dead_lettered_at_once(self):
        publish('audit', 'writer.x', {'project_id': 'nowhere',
                                      'mount_point': 'notes'})
        report = self.bus.deliver()
        self.assertEqual(report.statuses, {DEAD: 1})
        dead = self.bus.assert_dead_letter(reason='unknown-project')
        self.assertEqual(dead.queue, 'audit.writer.write')
        self.assertEqual(dead.attempts, 0)
        self.assertEqual(dead.data, {'project_id': 'nowhere',
                                     'mount_point': 'notes'})
        self.assertEqual(self.bus.calls, [])

    def test_dispatch_error_requeues_message(self):
        publish('audit', 'writer.x', {'project_id': 'demo',
                                      'mount_point': 'notes'})
        with mock.patch.object(self.bus.dispatcher, 'handle',
                               side_effect=RuntimeError('worker died')):
            with self.assertRaises(RuntimeError):
                self.bus.deliver()
        pending = self.bus.pending()
        self.assertEqual([item.queue for item in pending],
                         ['audit.writer.write'])
        report = self.bus.deliver()
        self.assertEqual(report.statuses, {DONE: 1})
        self.assertEqual(self.bus.db.notes.count_documents({}), 1)


class LoopTest(BusCase):

    # A max_hops this high lets a loop run past the round bound.
    bus_config = dict(SETTINGS, **{'reactor.max_hops': '1000'})

    def test_loop_error_names_listener_and_key(self):
        publish('audit', 'chain.start', {'project_id': 'demo',
                                         'mount_point': 'chain', 'left': 500})
        with self.assertRaises(DeliveryLoopError) as caught:
            self.bus.deliver(max_rounds=5)
        text = str(caught.exception)
        self.assertIn('after 5 delivery rounds', text)
        self.assertIn("'chain.step' on audit.chain.step", text)
        self.assertIn('for tests.apps:ChainApp.step', text)
        self.assertIn('hop 5, published by tests.apps:ChainApp.step', text)

    def test_loop_error_keeps_messages(self):
        publish('audit', 'chain.start', {'project_id': 'demo',
                                         'mount_point': 'chain', 'left': 500})
        with self.assertRaises(DeliveryLoopError):
            self.bus.deliver(max_rounds=5)
        pending = self.bus.pending()
        self.assertEqual(len(pending), 1)
        self.assertEqual(pending[0].hops, 5)
        self.assertEqual(self.bus.db.steps.count_documents({}), 5)

    def test_default_bound_from_bus(self):
        self.bus.max_rounds = 3
        publish('audit', 'chain.start', {'project_id': 'demo',
                                         'mount_point': 'chain', 'left': 500})
        with self.assertRaises(DeliveryLoopError) as caught:
            self.bus.deliver()
        self.assertIn('after 3 delivery rounds', str(caught.exception))


class RetryTest(BusCase):

    def flaky(self, fail_times, text='x'):
        publish('audit', 'flaky.x', {'project_id': 'demo',
                                     'mount_point': 'flaky',
                                     'fail_times': fail_times,
                                     'text': text})

    def test_retries_run_on_fake_clock(self):
        self.flaky(2)
        with mock.patch('time.sleep', side_effect=AssertionError('slept')):
            report = self.bus.deliver()
        self.assertEqual([item.status for item in report.handled],
                         [RETRY, RETRY, DONE])
        self.assertEqual([call.attempt for call in self.bus.calls],
                         [0, 1, 2])
        self.assertEqual(self.bus.calls[0].error,
                         'RuntimeError: attempt 0 failed on purpose')
        self.assertIsNone(self.bus.calls[2].error)
        # Waits of 1 s and 2 s, from reactor.retry_delay and backoff.
        self.assertEqual(self.bus.clock.now, 3.0)
        notes = list(self.bus.db.notes.find({}, {'_id': 0}))
        self.assertEqual(notes, [{'text': 'x', 'attempt': 2}])

    def test_retry_waits_without_advance_clock(self):
        self.flaky(1)
        self.bus.deliver(advance_clock=False)
        pending = self.bus.pending()
        self.assertEqual(len(pending), 1)
        self.assertEqual(pending[0].queue, 'audit.flaky.work')
        self.assertEqual(pending[0].attempt, 1)
        self.assertEqual(pending[0].due_in, 1.0)
        self.assertEqual(self.bus.db.notes.count_documents({}), 0)
        self.bus.clock.advance(0.5)
        self.bus.deliver(advance_clock=False)
        self.assertEqual(self.bus.db.notes.count_documents({}), 0)
        self.bus.clock.advance(0.5)
        report = self.bus.deliver(advance_clock=False)
        self.assertEqual(report.statuses, {DONE: 1})
        self.assertEqual(self.bus.db.notes.count_documents({}), 1)

    def test_other_messages_pass_a_waiting_retry(self):
        self.flaky(1, text='first')
        self.flaky(0, text='second')
        self.bus.deliver()
        texts = [note['text'] for note in self.bus.db.notes.find()]
        self.assertEqual(texts, ['second', 'first'])

    def test_retry_then_dead_letter(self):
        self.flaky(99)
        report = self.bus.deliver()
        self.assertEqual(report.statuses, {RETRY: 2, DEAD: 1})
        dead = self.bus.assert_dead_letter(
            reason='max-attempts', queue='audit.flaky.work',
            error='failed on purpose')
        self.assertEqual(dead.attempts, 3)
        self.assertEqual(dead.error, 'RuntimeError: attempt 2 failed on '
                                     'purpose')
        self.assertEqual(dead.listener, 'tests.apps:FlakyApp.work')
        self.assertEqual(dead.exchange, 'audit')
        self.assertEqual(dead.routing_key, 'flaky.x')
        record = self.bus.db[records.COLLECTION].find_one(
            {'queue': 'audit.flaky.work'})
        self.assertEqual(record['status'], records.DEAD)
        self.assertEqual(self.bus.db.notes.count_documents({}), 0)


class DeadLetterAssertionTest(BusCase):

    def dead_letter(self):
        publish('audit', 'writer.x', {'project_id': 'nowhere',
                                      'mount_point': 'notes'})
        self.bus.deliver()

    def test_no_match_lists_dead_letters(self):
        self.dead_letter()
        with self.assertRaises(AssertionError) as caught:
            self.bus.assert_dead_letter(reason='max-attempts')
        text = str(caught.exception)
        self.assertIn("no dead letter with reason='max-attempts'", text)
        self.assertIn("'writer.x' on audit.writer.write", text)
        self.assertIn('unknown-project after 0 attempt(s)', text)
        self.bus.assert_dead_letter(reason='unknown-project')

    def test_no_dead_letters_said(self):
        with self.assertRaises(AssertionError) as caught:
            self.bus.assert_dead_letter()
        self.assertIn('the bus has none', str(caught.exception))

    def test_each_assertion_takes_one(self):
        self.dead_letter()
        self.dead_letter()
        self.bus.assert_dead_letter(reason='unknown-project')
        self.bus.assert_dead_letter(reason='unknown-project')
        with self.assertRaises(AssertionError):
            self.bus.assert_dead_letter(reason='unknown-project')

    def test_unexpected_dead_letter_fails(self):
        self.dead_letter()
        with self.assertRaises(UnexpectedDeadLetters) as caught:
            self.bus.check_dead_letters()
        text = str(caught.exception)
        self.assertIn('dead-lettered 1 message(s)', text)
        self.assertIn('tests.apps:WriterApp.write', text)
        self.assertIn("project 'nowhere' does not exist", text)
        # Reported once: the cleanup check of this test passes.
        self.bus.check_dead_letters()

    def test_expected_dead_letter_passes_check(self):
        self.dead_letter()
        self.bus.assert_dead_letter(reason='unknown-project')
        self.bus.check_dead_letters()


class ProjectTest(BusCase):

    def test_create_project_mounts_apps(self):
        project = self.bus.create_project('other', 'writer:a', 'writer:b',
                                          name='Other', project_id='p-1')
        self.assertEqual(project._id, 'p-1')
        self.assertEqual(project.name, 'Other')
        configs = project.app_configs(db=self.bus.db)
        self.assertEqual([(config.mount_point, config.tool_name)
                          for config in configs],
                         [('a', 'writer'), ('b', 'writer')])

    def test_unknown_app_rejected(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.create_project('other', 'tracker:bugs')
        self.assertIn("app 'tracker' does not run on this bus", str(
            caught.exception))
        self.assertIn('chain, flaky, recorder, writer', str(caught.exception))
        self.assertIsNone(self.bus.db.projects.find_one({'_id': 'other'}))

    def test_existing_project_explained(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.create_project('demo')
        self.assertIn('--pyforge-fresh-store=test', str(caught.exception))

    def test_invalid_mount_spec(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.create_project('other', 'writer')
        self.assertIn('write APP:MOUNT_POINT', str(caught.exception))

    def test_mount_with_options(self):
        config = self.bus.mount('demo', 'writer:more', options={'k': 'v'})
        self.assertEqual(config.options, {'k': 'v'})
        app = self.bus.app('demo', 'more')
        self.assertIsInstance(app, WriterApp)
        self.assertEqual(app.mount_point, 'more')

    def test_unknown_project_and_mount_point(self):
        with self.assertRaises(ConfigurationError):
            self.bus.project('nowhere')
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.app('demo', 'nothing')
        self.assertIn("no app mounted at 'nothing'", str(caught.exception))


class LifecycleTest(TempDirTestCase):

    def make_bus(self, **kwargs):
        bus = Bus(SETTINGS, apps=[], extra_apps=APPS, **kwargs)
        self.addCleanup(bus.close)
        bus.create_project('demo', 'writer:notes')
        return bus

    def test_buses_share_nothing(self):
        first = self.make_bus()
        second = self.make_bus()
        first.activate()
        publish('audit', 'writer.x', {'project_id': 'demo',
                                      'mount_point': 'notes'})
        self.assertEqual(len(first.pending()), 1)
        self.assertEqual(second.pending(), [])
        self.assertEqual(second.published, [])
        second.deliver()
        self.assertEqual(second.db.notes.count_documents({}), 0)

    def test_reset_keeps_store_only(self):
        bus = self.make_bus()
        bus.activate()
        publish('audit', 'flaky.x', {'project_id': 'demo'})
        publish('audit', 'writer.x', {'project_id': 'demo',
                                      'mount_point': 'notes', 'fail': True})
        bus.deliver(advance_clock=False)
        self.assertEqual(len(bus.pending()), 1)
        bus.reset()
        self.assertEqual(bus.pending(), [])
        self.assertEqual(bus.published, [])
        self.assertEqual(bus.calls, [])
        self.assertEqual(bus.dead_letters, [])
        self.assertEqual(bus.clock.now, 0.0)
        self.assertIsNotNone(bus.project('demo'))
        self.assertEqual(bus.deliver().handled, [])

    def test_settings_keep_reactor_replace_urls(self):
        ini = self.write_ini('amqp://guest:guest@127.0.0.1:5672/',
                             'mongodb://127.0.0.1:27017/forge',
                             'reactor.max_hops = 4\n')
        bus = Bus(ini, apps=[])
        self.addCleanup(bus.close)
        self.assertEqual(bus.settings.amqp_url, 'memory://')
        self.assertEqual(bus.settings.mongo_url, 'sqlite://')
        self.assertEqual(bus.settings.reactor_max_hops, 4)
        self.assertEqual(bus.settings.reactor_retry_delay, 0.05)

    def test_queues_declared_for_installed_apps(self):
        bus = Bus()
        self.addCleanup(bus.close)
        queues = [listener.queue for listener in bus.listeners]
        self.assertIn('audit.hello_forge.auditor', queues)
        self.assertIn('react.wiki.on_comment', queues)
        self.assertEqual(queues, sorted(queues))

    def test_activate_and_deactivate(self):
        previous = configure({'amqp.url': 'memory://',
                              'mongo.url': 'sqlite://'})
        bus = self.make_bus()
        bus.activate()
        self.assertIs(current_environment(), bus.environment)
        self.assertIs(current_environment().db, bus.db)
        bus.deactivate()
        self.assertIs(current_environment(), previous)

    def test_closed_bus_rejects_publish(self):
        bus = self.make_bus()
        environment = bus.environment
        bus.close()
        with self.assertRaises(ConfigurationError) as caught:
            environment.publisher()
        self.assertIn('test bus of this environment is closed',
                      str(caught.exception))

    def test_extra_app_name_clash_rejected(self):
        with self.assertRaises(ConfigurationError) as caught:
            Bus(apps=['wiki'], extra_apps={'wiki': WriterApp})
        self.assertIn("extra app 'wiki'", str(caught.exception))


class BusTestCaseTest(unittest.TestCase):

    def test_without_plugin_or_config_explains(self):
        class NoBus(BusTestCase):
            def runTest(self):
                pass

        case = NoBus()
        with self.assertRaises(ConfigurationError) as caught:
            case.setUp()
        self.assertIn('--with-pyforge=test.ini', str(caught.exception))


if __name__ == '__main__':
    unittest.main()

"""The hello_forge example app, delivered on the test bus."""

import unittest

from pyforge.lib.outcome import DEAD, DONE, RETRY
from pyforge.lib.publish import publish
from pyforge_examples.hello_forge import STATS, HelloForgeApp
from tests.examples.support import ExampleAppCase

AUDITOR = 'pyforge_examples.hello_forge:HelloForgeApp.auditor'
EMPTY_TEXT = 'ValueError: hello_forge.comment needs a non-empty "text"'


class HelloForgeCase(ExampleAppCase):

    def send(self, routing_key='hello_forge.comment', **fields):
        data = {'project_id': 'demo', 'mount_point': 'hello'}
        data.update(fields)
        return publish('audit', routing_key, data)


class CommentTest(HelloForgeCase):

    def test_comment_stored_on_instance(self):
        self.send(text='Hi')
        self.bus.deliver()
        options = self.bus.app_options('demo', 'hello')
        self.assertEqual(options['comments'], ['Hi'])

    def test_comments_kept_in_order(self):
        self.send(text='Hi')
        self.send(text='Again')
        self.bus.deliver()
        options = self.bus.app_options('demo', 'hello')
        self.assertEqual(options['comments'], ['Hi', 'Again'])

    def test_commented_published_to_react(self):
        self.send(text='Hi')
        self.bus.deliver()
        sent = self.bus.find_published(exchange='react')
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0].routing_key, 'hello_forge.commented')
        self.assertEqual(sent[0].data, {'text': 'Hi', 'project_id': 'demo',
                                        'mount_point': 'hello'})
        self.assertEqual(sent[0].published_by, AUDITOR)
        self.assertEqual(sent[0].hops, 1)
        self.assertEqual(sent[0].queues, ('react.wiki.count_events',
                                          'react.wiki.on_comment'))

    def test_comment_reaches_both_wikis(self):
        self.send(text='Hi')
        report = self.bus.deliver()
        change = {'routing_key': 'hello_forge.commented', 'text': 'Hi',
                  'from': 'hello'}
        for mount_point in ('wiki', 'notes'):
            with self.subTest(mount_point=mount_point):
                options = self.bus.app_options('demo', mount_point)
                self.assertEqual(options['recent_changes'], [change])
        self.assertEqual(report.rounds, 2)
        self.assertEqual(report.statuses, {DONE: 4})

    def test_wikis_called_in_mount_point_order(self):
        self.send(text='Hi')
        self.bus.deliver()
        calls = self.calls_of('on_comment')
        self.assertEqual([call.mount_point for call in calls],
                         ['notes', 'wiki'])
        self.assertEqual({call.message_id for call in calls},
                         {self.bus.find_published(exchange='react')[0]
                          .message_id})

    def test_other_instance_untouched(self):
        self.bus.mount('demo', 'hello_forge:other')
        self.send(text='Hi')
        self.bus.deliver()
        self.assertNotIn('comments', self.bus.app_options('demo', 'other'))

    def test_other_routing_key_ignored(self):
        self.send(routing_key='hello_forge.ping')
        self.bus.deliver()
        self.assertNotIn('comments', self.bus.app_options('demo', 'hello'))
        self.assertEqual(self.bus.find_published(exchange='react'), [])
        self.assertEqual(len(self.calls_of('auditor')), 1)


class CountTest(HelloForgeCase):

    def test_counted_once_per_message(self):
        self.send(text='Hi')
        self.bus.deliver()
        stats = self.bus.db[STATS].find_one({'_id': 'demo'})
        self.assertEqual(stats['messages'], 1)
        self.assertEqual(stats['last_routing_key'], 'hello_forge.comment')
        self.assertEqual(len(self.calls_of('count_messages')), 1)

    def test_every_key_counted(self):
        self.send(text='Hi')
        self.send(routing_key='hello_forge.ping')
        self.bus.deliver()
        stats = self.bus.db[STATS].find_one({'_id': 'demo'})
        self.assertEqual(stats['messages'], 2)
        self.assertEqual(stats['last_routing_key'], 'hello_forge.ping')

    def test_class_auditor_gets_instance(self):
        self.send(text='Hi')
        self.bus.deliver()
        call = self.calls_of('count_messages')[0]
        self.assertEqual(call.mount_point, 'hello')
        self.assertEqual(call.project_id, 'demo')

    def test_class_auditor_without_mount_point(self):
        publish('audit', 'hello_forge.ping', {'project_id': 'demo'})
        self.bus.deliver()
        call = self.calls_of('count_messages')[0]
        self.assertIsNone(call.mount_point)
        stats = self.bus.db[STATS].find_one({'_id': 'demo'})
        self.assertEqual(stats['messages'], 1)
        # The instance auditor cannot run without a mount point.
        self.bus.assert_dead_letter(reason='missing-mount-point',
                                    queue='audit.hello_forge.auditor')
        self.assertEqual(self.calls_of('auditor'), [])


class BadCommentTest(HelloForgeCase):

    def test_retried_then_dead_lettered(self):
        self.send()
        report = self.bus.deliver()
        calls = self.calls_of('auditor')
        self.assertEqual([call.attempt for call in calls], [0, 1, 2])
        self.assertEqual({call.error for call in calls}, {EMPTY_TEXT})
        auditor_outcomes = [item.status for item in report.handled
                            if item.listener == AUDITOR]
        self.assertEqual(auditor_outcomes, [RETRY, RETRY, DEAD])
        dead = self.bus.assert_dead_letter(
            reason='max-attempts', queue='audit.hello_forge.auditor',
            error='needs a non-empty "text"')
        self.assertEqual(dead.attempts, 3)
        self.assertEqual(dead.listener, AUDITOR)
        self.assertEqual(dead.routing_key, 'hello_forge.comment')
        self.assertEqual(dead.data, {'project_id': 'demo',
                                     'mount_point': 'hello'})

    def test_retries_wait_on_fake_clock(self):
        self.send()
        self.bus.deliver()
        self.bus.assert_dead_letter(reason='max-attempts')
        # test.ini: a retry_delay of 1 s, doubled for the second retry.
        self.assertEqual(self.bus.clock.now, 3.0)

    def test_nothing_stored_or_sent(self):
        self.send()
        self.bus.deliver()
        self.bus.assert_dead_letter(reason='max-attempts')
        self.assertNotIn('comments', self.bus.app_options('demo', 'hello'))
        self.assertEqual(self.bus.find_published(exchange='react'), [])
        for mount_point in ('wiki', 'notes'):
            options = self.bus.app_options('demo', mount_point)
            self.assertNotIn('recent_changes', options)

    def test_still_counted_once(self):
        self.send()
        self.bus.deliver()
        self.bus.assert_dead_letter(reason='max-attempts')
        stats = self.bus.db[STATS].find_one({'_id': 'demo'})
        self.assertEqual(stats['messages'], 1)

    def test_good_comment_passes_bad_one(self):
        self.send()
        self.send(text='Hi')
        self.bus.deliver()
        self.bus.assert_dead_letter(reason='max-attempts')
        options = self.bus.app_options('demo', 'hello')
        self.assertEqual(options['comments'], ['Hi'])
        notes = self.bus.app_options('demo', 'notes')
        self.assertEqual(len(notes['recent_changes']), 1)

    def test_unknown_mount_point_dead_at_once(self):
        self.send(mount_point='nowhere', text='Hi')
        self.bus.deliver()
        dead = self.bus.assert_dead_letter(
            reason='unknown-mount-point', queue='audit.hello_forge.auditor')
        self.assertEqual(dead.attempts, 0)
        self.assertIn("no app mounted at 'nowhere'", dead.error)
        self.assertEqual(self.calls_of('auditor'), [])

    def test_mount_point_of_other_app_dead_at_once(self):
        self.send(mount_point='wiki', text='Hi')
        self.bus.deliver()
        dead = self.bus.assert_dead_letter(reason='wrong-app')
        self.assertEqual(dead.queue, 'audit.hello_forge.auditor')
        self.assertNotIn('comments', self.bus.app_options('demo', 'wiki'))


class DirectCallTest(HelloForgeCase):

    def test_auditor_stores_and_publishes(self):
        app = self.bus.app('demo', 'hello')
        result = self.bus.call(app.auditor, {'text': 'Hi'},
                               routing_key='hello_forge.comment')
        self.assertEqual(self.bus.app_options('demo', 'hello')['comments'],
                         ['Hi'])
        self.assertEqual([sent.routing_key for sent in result.published],
                         ['hello_forge.commented'])
        # Published, not delivered: the wikis get it from deliver().
        self.assertNotIn('recent_changes',
                         self.bus.app_options('demo', 'wiki'))
        self.bus.deliver()
        self.assertEqual(
            len(self.bus.app_options('demo', 'wiki')['recent_changes']), 1)

    def test_auditor_rejects_empty_text(self):
        app = self.bus.app('demo', 'hello')
        with self.assertRaises(ValueError):
            self.bus.call(app.auditor, {'text': ''},
                          routing_key='hello_forge.comment')
        self.assertEqual(self.bus.published, [])

    def test_count_messages(self):
        self.bus.call(HelloForgeApp.count_messages, project='demo',
                      routing_key='hello_forge.anything')
        stats = self.bus.db[STATS].find_one({'_id': 'demo'})
        self.assertEqual(stats['messages'], 1)
        self.assertEqual(stats['last_routing_key'], 'hello_forge.anything')


if __name__ == '__main__':
    unittest.main()

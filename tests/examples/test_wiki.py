"""The wiki example app, delivered on the test bus."""

import unittest

from pyforge.lib.publish import publish
from pyforge_examples.wiki import ACTIVITY, WikiApp
from tests.examples.support import ExampleAppCase

CHANGE = {'routing_key': 'hello_forge.commented', 'text': 'Hi',
          'from': 'hello'}


class WikiCase(ExampleAppCase):

    def commented(self, project_id='demo', text='Hi'):
        publish('react', 'hello_forge.commented', {
            'project_id': project_id, 'mount_point': 'hello', 'text': text})


class OnCommentTest(WikiCase):

    def test_each_instance_records_comment(self):
        self.commented()
        self.bus.deliver()
        self.assertEqual(
            self.bus.app_options('demo', 'wiki')['recent_changes'], [CHANGE])
        self.assertEqual(
            self.bus.app_options('demo', 'notes')['recent_changes'], [CHANGE])

    def test_instances_called_in_mount_point_order(self):
        self.commented()
        self.bus.deliver()
        calls = self.calls_of('on_comment')
        self.assertEqual([call.mount_point for call in calls],
                         ['notes', 'wiki'])
        self.assertEqual({call.project_id for call in calls}, {'demo'})
        self.assertEqual({call.routing_key for call in calls},
                         {'hello_forge.commented'})

    def test_other_project_untouched(self):
        self.bus.create_project('other', 'wiki:wiki')
        self.commented()
        self.bus.deliver()
        self.assertNotIn('recent_changes',
                         self.bus.app_options('other', 'wiki'))

    def test_other_keys_not_recorded(self):
        publish('react', 'scm.commit', {'project_id': 'demo'})
        self.bus.deliver()
        self.assertEqual(self.calls_of('on_comment'), [])
        self.assertNotIn('recent_changes',
                         self.bus.app_options('demo', 'wiki'))

    def test_project_without_wiki(self):
        self.bus.create_project('solo', 'hello_forge:hello')
        self.commented(project_id='solo')
        self.bus.deliver()
        self.assertEqual(self.calls_of('on_comment'), [])
        activity = self.bus.db[ACTIVITY].find_one({'_id': 'solo'})
        self.assertEqual(activity['events'], 1)


class CountEventsTest(WikiCase):

    def test_counted_once_for_two_instances(self):
        self.commented()
        self.bus.deliver()
        activity = self.bus.db[ACTIVITY].find_one({'_id': 'demo'})
        self.assertEqual(activity['events'], 1)
        self.assertEqual(activity['last'], 'hello_forge.commented')
        self.assertEqual(len(self.calls_of('count_events')), 1)

    def test_every_react_key_counted(self):
        publish('react', 'scm.commit', {'project_id': 'demo'})
        publish('react', 'tracker.ticket.created', {'project_id': 'demo'})
        self.bus.deliver()
        activity = self.bus.db[ACTIVITY].find_one({'_id': 'demo'})
        self.assertEqual(activity['events'], 2)
        self.assertEqual(activity['last'], 'tracker.ticket.created')

    def test_audit_messages_not_counted(self):
        publish('audit', 'hello_forge.ping', {'project_id': 'demo',
                                              'mount_point': 'hello'})
        self.bus.deliver()
        self.assertIsNone(self.bus.db[ACTIVITY].find_one({'_id': 'demo'}))

    def test_class_reactor_has_no_app(self):
        self.commented()
        self.bus.deliver()
        call = self.calls_of('count_events')[0]
        self.assertIsNone(call.mount_point)
        self.assertEqual(call.project_id, 'demo')


class DirectCallTest(WikiCase):

    def test_on_comment_updates_one_instance(self):
        app = self.bus.app('demo', 'notes')
        self.bus.call(app.on_comment, {'text': 'Hi', 'mount_point': 'hello'})
        self.assertEqual(
            self.bus.app_options('demo', 'notes')['recent_changes'], [CHANGE])
        self.assertNotIn('recent_changes',
                         self.bus.app_options('demo', 'wiki'))

    def test_count_events(self):
        self.bus.call(WikiApp.count_events, project='demo',
                      routing_key='scm.commit')
        activity = self.bus.db[ACTIVITY].find_one({'_id': 'demo'})
        self.assertEqual(activity, {'_id': 'demo', 'events': 1,
                                    'last': 'scm.commit'})


if __name__ == '__main__':
    unittest.main()

"""``paster reactor`` end to end, in real processes."""

import os
import signal
import unittest

from pyforge.lib.publish import publish
from pyforge.lib.topology import inspect_queue
from pyforge.model import records
from tests.rabbit import RabbitTestCase
from tests.support import ReactorTestCase, wait_for


class ReactorFlowMixin:

    def test_comment_reaches_every_listener(self):
        reactor = self.start_reactor('--app', 'hello_forge', '--app', 'wiki')
        publish('audit', 'hello_forge.comment',
                {'project_id': 'demo', 'mount_point': 'hello',
                 'text': 'hi'})
        self.wait_for(lambda: self.app_options('notes').get('recent_changes')
                 and self.app_options('wiki').get('recent_changes')
                 and self.db.wiki_activity.find_one({'_id': 'demo'})
                 and self.db.hello_forge_stats.find_one({'_id': 'demo'}),
                 what='every listener')
        self.assertEqual(self.app_options('hello')['comments'], ['hi'])
        change = self.app_options('wiki')['recent_changes'][0]
        self.assertEqual(change['text'], 'hi')
        self.assertEqual(change['from'], 'hello')
        self.assertEqual(self.app_options('notes')['recent_changes'],
                         [change])
        stats = self.db.hello_forge_stats.find_one({'_id': 'demo'})
        self.assertEqual(stats['messages'], 1)
        activity = self.db.wiki_activity.find_one({'_id': 'demo'})
        self.assertEqual(activity['events'], 1)
        status, err = self.stop(reactor)
        self.assertEqual(status, 0, err)

    def test_sigterm_to_worker_mid_message_loses_nothing(self):
        marker = os.path.join(self.tmp, 'started')
        reactor = self.start_reactor('--queue', 'audit.slow.work')
        publish('audit', 'slow.work', {
            'project_id': 'demo', 'mount_point': 'slow', 'seconds': 2,
            'marker': marker, 'text': 'slow one'})
        worker_pid = int(self.wait_for(
            lambda: os.path.exists(marker) and open(marker).read().split(),
            what='the slow listener to start')[0])
        os.kill(worker_pid, signal.SIGTERM)
        self.wait_for(lambda: self.db.notes.find_one({'text': 'slow one'}),
                      what='the slow listener to finish')
        status, err = self.stop(reactor)
        self.assertEqual(status, 0, err)
        self.assertEqual(self.db.notes.count_documents({}), 1)
        self.assertEqual(
            self.db.notes.find_one()['pid'], worker_pid,
            'the signalled worker finished the message itself')

    def test_sigterm_to_reactor_finishes_message_and_exits_0(self):
        marker = os.path.join(self.tmp, 'started')
        reactor = self.start_reactor('--queue', 'audit.slow.work')
        publish('audit', 'slow.work', {
            'project_id': 'demo', 'mount_point': 'slow', 'seconds': 1,
            'marker': marker, 'text': 'slow one'})
        self.wait_for(lambda: os.path.exists(marker),
                      what='the slow listener to start')
        status, err = self.stop(reactor)
        self.assertEqual(status, 0, err)
        self.assertEqual(self.db.notes.count_documents({}), 1)
        record = self.db[records.COLLECTION].find_one(
            {'queue': 'audit.slow.work'})
        self.assertEqual(record['status'], records.DONE)


class FilesystemReactorTest(ReactorFlowMixin, ReactorTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitReactorTest(ReactorFlowMixin, ReactorTestCase, RabbitTestCase):

    extra_settings = 'reactor.prefetch = 1\n'

    def amqp_url(self):
        return self.vhost.url

    def test_two_reactors_share_a_queue(self):
        queue = 'audit.hello_forge.count_messages'
        first = self.start_reactor('--queue', queue)
        second = self.start_reactor('--queue', queue)
        with self.environment.connection() as connection:
            wait_for(lambda: inspect_queue(connection, queue)[1] == 2,
                     what='two consumers on %s' % queue)
        total = 200
        for number in range(total):
            publish('audit', 'hello_forge.ping',
                    {'project_id': 'demo', 'number': number})
        self.wait_for(lambda: self.db[records.COLLECTION].count_documents(
            {'queue': queue, 'status': records.DONE}) == total,
            what='%d records' % total)
        for process in (first, second):
            status, err = self.stop(process)
            self.assertEqual(status, 0, err)
        stats = self.db.hello_forge_stats.find_one({'_id': 'demo'})
        self.assertEqual(stats['messages'], total)
        workers = self.db[records.COLLECTION].distinct(
            'worker', {'queue': queue})
        self.assertEqual(len(workers), 2)


if __name__ == '__main__':
    unittest.main()

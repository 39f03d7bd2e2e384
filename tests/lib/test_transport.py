"""Unacked messages of the embedded broker, kept on disk until their ack.

Each test publishes to one queue of a filesystem:// broker in a
temporary folder and checks the files under ``queues/`` and
``unacked/`` after a fetch, an ack, a reject, a closed channel or the
death of the process that fetched.
"""

import json
import multiprocessing
import os
import shutil
import unittest

import kombu

from pyforge.lib import amqp, transport, unacked
from tests.support import TempDirTestCase, make_settings

QUEUE = 'audit.transport.test'
# Seconds to wait for a child process; each one takes well under one.
JOIN_TIMEOUT = 60


def take_and_exit(url, ready, release):
    """Fetch one message without acking it, tell the parent, wait for the
    parent's word, then exit without closing anything, as a killed
    worker would."""
    connection = amqp.connect(make_settings(url, 'sqlite://'))
    message = connection.channel().basic_get(QUEUE)
    ready.put(message.body if message is not None else None)
    release.get(timeout=JOIN_TIMEOUT)
    os._exit(0)


class UnackedFilesTest(TempDirTestCase):

    def setUp(self):
        super().setUp()
        self.url = self.embedded_urls()[0]
        self.connection = amqp.connect(make_settings(self.url, 'sqlite://'))
        self.addCleanup(self.connection.release)
        exchange = kombu.Exchange('audit', 'topic', durable=True)
        self.queue = kombu.Queue(QUEUE, exchange, 'transport.#')
        self.queue(self.connection.default_channel).declare()
        self.folder = os.path.join(self.tmp, 'broker')

    def publish(self, *texts):
        producer = kombu.Producer(self.connection.default_channel)
        for text in texts:
            producer.publish({'text': text}, exchange='audit',
                             routing_key='transport.test')

    def queued(self):
        return sorted(name for name in os.listdir(
            os.path.join(self.folder, 'queues'))
            if name.endswith('.%s.msg' % QUEUE))

    def unacked(self):
        """Return the message files under unacked/, in every process's
        folder."""
        root = os.path.join(self.folder, 'unacked')
        if not os.path.isdir(root):
            return []
        return sorted(name for owner in os.listdir(root)
                      for name in os.listdir(os.path.join(root, owner))
                      if name.endswith('.msg'))

    def fetch(self, channel=None, no_ack=False):
        channel = channel or self.connection.channel()
        return channel.basic_get(QUEUE, no_ack=no_ack)

    def test_fetch_keeps_file_until_ack(self):
        self.publish('a')
        name = self.queued()[0]
        message = self.fetch()
        self.assertEqual(self.queued(), [])
        self.assertEqual(self.unacked(), [name])
        message.ack()
        self.assertEqual(self.unacked(), [])

    def test_messages_fetched_in_publish_order(self):
        texts = [str(number) for number in range(50)]
        self.publish(*texts)
        fetched = [self.fetch(no_ack=True).payload['text'] for _ in texts]
        self.assertEqual(fetched, texts)

    def test_fetch_without_ack_keeps_nothing(self):
        self.publish('a')
        message = self.fetch(no_ack=True)
        self.assertEqual(message.payload, {'text': 'a'})
        self.assertEqual(self.unacked(), [])
        self.assertEqual(self.queued(), [])

    def test_reject_removes_file(self):
        self.publish('a')
        self.fetch().reject()
        self.assertEqual(self.unacked(), [])
        self.assertEqual(self.queued(), [])

    def test_requeue_moves_file_back(self):
        self.publish('a')
        self.fetch().reject(requeue=True)
        self.assertEqual(self.unacked(), [])
        self.assertEqual(len(self.queued()), 1)
        again = self.fetch()
        self.assertTrue(again.delivery_info['redelivered'])

    def test_closed_channel_puts_unacked_back(self):
        self.publish('a', 'b')
        channel = self.connection.channel()
        self.fetch(channel).ack()
        self.fetch(channel)
        channel.close()
        self.assertEqual(self.unacked(), [])
        self.assertEqual(len(self.queued()), 1)
        self.assertEqual(self.fetch().payload, {'text': 'b'})

    def test_put_back_message_names_no_file(self):
        self.publish('a')
        self.fetch().reject(requeue=True)
        path = os.path.join(self.folder, 'queues', self.queued()[0])
        with open(path) as stream:
            info = json.load(stream)['properties']['delivery_info']
        self.assertNotIn(transport.UNACKED_KEY, info)

    def run_child(self):
        """Start a child that takes one message; return it, its body and
        the queue that lets it exit."""
        context = multiprocessing.get_context('fork')
        ready, release = context.Queue(), context.Queue()
        child = context.Process(target=take_and_exit,
                                args=(self.url, ready, release),
                                daemon=True)
        child.start()
        self.addCleanup(child.kill)
        return child, ready.get(timeout=JOIN_TIMEOUT), release

    def test_dead_process_messages_put_back(self):
        self.publish('a', 'b')
        first = self.queued()[0]
        child, body, release = self.run_child()
        self.assertEqual(json.loads(body), {'text': 'a'})
        release.put(True)
        child.join(JOIN_TIMEOUT)
        self.assertEqual(child.exitcode, 0)
        self.assertEqual(self.unacked(), [first])

        message = self.fetch()
        self.assertEqual(message.payload, {'text': 'a'})
        self.assertTrue(message.delivery_info['redelivered'])
        self.assertEqual(self.fetch().payload, {'text': 'b'})
        self.assertEqual(os.listdir(os.path.join(self.folder, 'unacked')),
                         [os.path.basename(unacked.OWNERS[
                             os.path.join(self.folder, 'unacked')][1])])

    def test_live_process_messages_left_alone(self):
        self.publish('a')
        child, body, release = self.run_child()
        self.assertIsNotNone(body)
        root = unacked.unacked_root(os.path.join(self.folder, 'queues'))
        queue_folder = os.path.join(self.folder, 'queues')
        self.assertEqual(unacked.recover_unacked(root, queue_folder), 0)
        self.assertEqual(len(self.unacked()), 1)
        release.put(True)
        child.join(JOIN_TIMEOUT)
        self.assertEqual(unacked.recover_unacked(root, queue_folder), 1)
        self.assertEqual(self.unacked(), [])
        self.assertEqual(len(self.queued()), 1)

    def test_empty_folder_removed_at_exit(self):
        self.publish('a', 'b')
        self.fetch().ack()
        pending = self.fetch()
        root = os.path.join(self.folder, 'unacked')
        unacked.remove_empty_unacked_folders()
        self.assertEqual(len(os.listdir(root)), 1)
        pending.ack()
        unacked.remove_empty_unacked_folders()
        self.assertEqual(os.listdir(root), [])
        self.publish('c')
        self.fetch()
        self.assertEqual(len(self.unacked()), 1)

    def test_removed_folder_made_again(self):
        self.publish('a', 'b')
        self.fetch().ack()
        shutil.rmtree(os.path.join(self.folder, 'unacked'))
        with self.assertLogs('pyforge.lib.unacked', 'WARNING'):
            message = self.fetch()
        self.assertEqual(message.payload, {'text': 'b'})
        self.assertEqual(len(self.unacked()), 1)

    def write_queue_file(self, name, text):
        with open(os.path.join(self.folder, 'queues', name), 'w') as stream:
            stream.write(text)

    def test_invalid_files_moved_aside(self):
        cases = {
            'not json': 'not json',
            'no delivery tag': json.dumps(
                {'body': '{}', 'properties': {'delivery_info': {}}}),
            'bad base64 body': json.dumps(
                {'body': 'abc', 'headers': {},
                 'content-type': 'application/json',
                 'content-encoding': 'utf-8',
                 'properties': {'delivery_info': {}, 'delivery_tag': 'x',
                                'body_encoding': 'base64'}}),
        }
        for case, text in cases.items():
            with self.subTest(case):
                self.publish(case)
                # The lowest stamp, so that it is fetched first.
                broken = '0_%s.%s.msg' % (case.replace(' ', '-'), QUEUE)
                self.write_queue_file(broken, text)
                with self.assertLogs('pyforge.lib.unacked',
                                     'ERROR') as logs:
                    message = self.fetch()
                self.assertEqual(message.payload, {'text': case})
                self.assertIn(broken, logs.output[0])
                self.assertIn(broken, os.listdir(
                    os.path.join(self.folder, 'invalid')))
                message.ack()

    def test_old_file_names_fetched_first(self):
        self.publish('old')
        # The name kombu gives: milliseconds since boot, unpadded.
        old = self.queued()[0]
        os.rename(os.path.join(self.folder, 'queues', old),
                  os.path.join(self.folder, 'queues',
                               '5623142_' + old.partition('_')[2]))
        self.publish('new')
        fetched = [self.fetch(no_ack=True).payload['text'] for _ in '12']
        self.assertEqual(fetched, ['old', 'new'])

    def test_closed_channel_keeps_order(self):
        texts = ['a', 'b', 'c', 'd']
        self.publish(*texts)
        channel = self.connection.channel()
        for _ in texts:
            self.fetch(channel)
        self.publish('e')
        channel.close()
        fetched = [self.fetch(no_ack=True) for _ in range(5)]
        self.assertEqual([message.payload['text'] for message in fetched],
                         texts + ['e'])
        self.assertTrue(all(message.delivery_info['redelivered']
                            for message in fetched[:4]))

    def dead_folder(self, *files, lock=True):
        """Make the folder of a dead process holding `files`, as
        (name, text) pairs; return the unacked root."""
        root = os.path.join(self.folder, 'unacked')
        folder = os.path.join(root, '99999999-dead')
        os.makedirs(folder)
        if lock:
            open(os.path.join(folder, unacked.LOCK_NAME), 'w').close()
        for name, text in files:
            with open(os.path.join(folder, name), 'w') as stream:
                stream.write(text)
        return root

    def message_file(self, text):
        """Publish `text`; return the name and content of its file, taken
        off the queue."""
        self.publish(text)
        name = self.queued()[0]
        path = os.path.join(self.folder, 'queues', name)
        with open(path) as stream:
            content = stream.read()
        os.remove(path)
        return name, content

    def test_bad_file_in_dead_folder_moved_aside(self):
        good = self.message_file('good')
        broken = '1_broken.%s.msg' % QUEUE
        self.dead_folder((broken, ''), good)
        with self.assertLogs('pyforge.lib.unacked', 'ERROR'):
            message = self.fetch()
        self.assertEqual(message.payload, {'text': 'good'})
        self.assertEqual(os.listdir(os.path.join(self.folder, 'invalid')),
                         [broken])

    def test_folder_without_lock_put_back(self):
        self.dead_folder(self.message_file('orphan'), lock=False)
        message = self.fetch()
        self.assertEqual(message.payload, {'text': 'orphan'})
        self.assertTrue(message.delivery_info['redelivered'])
        self.assertNotIn('99999999-dead',
                         os.listdir(os.path.join(self.folder, 'unacked')))

    def test_removed_lock_gives_new_folder(self):
        self.publish('a', 'b')
        self.fetch().ack()
        root = os.path.join(self.folder, 'unacked')
        owner = os.path.join(root, os.listdir(root)[0])
        os.remove(os.path.join(owner, unacked.LOCK_NAME))
        with self.assertLogs('pyforge.lib.unacked', 'WARNING'):
            self.fetch()
        folders = os.listdir(root)
        self.assertEqual(len(folders), 2)
        self.assertEqual(self.unacked(), [self.unacked()[0]])
        fresh = [name for name in folders
                 if os.path.join(root, name) != owner][0]
        self.assertIn(unacked.LOCK_NAME,
                      os.listdir(os.path.join(root, fresh)))

if __name__ == '__main__':
    unittest.main()

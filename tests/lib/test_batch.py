"""Batches on the SQLite store: chunks that commit together, and what
keeps a message out of a chunk."""

import threading
import unittest

from pyforge.lib import store
from pyforge.lib.batch import handle_batch
from pyforge.lib.dispatch import Dispatcher
from pyforge.lib.outcome import DONE, DUPLICATE, RETRY
from pyforge.model import records
from tests import apps
from tests.apps import BatchApp, committed_count, listener
from tests.support import (
    CapturingPublisher, TempDirTestCase, create_project, delivery_for,
    make_settings)


class ObservingPublisher(CapturingPublisher):
    """Notes how many documents were committed when each send happened."""

    def __init__(self, db):
        super().__init__()
        self.db = db
        self.committed_at_send = []

    def send(self, message):
        self.committed_at_send.append(
            committed_count(self.db, 'batch_notes', {}))
        return super().send(message)


class BatchTest(TempDirTestCase):

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.db = store.connect(mongo_url)
        self.db.batch_notes.create_index('key', unique=True)
        self.publisher = ObservingPublisher(self.db)
        self.dispatcher = Dispatcher(
            self.db, make_settings('memory://', mongo_url), self.publisher)
        create_project(self.db, 'demo', [('batch', 'batch')])
        self.listener = listener(BatchApp, 'write', 'audit')
        del apps.OBSERVED[:]

    def delivery(self, message_id=None, **data):
        data.update(project_id='demo', mount_point='batch')
        delivery = delivery_for(self.listener, data)
        if message_id is not None:
            delivery.message_id = message_id
        return delivery

    def run_batch(self, deliveries):
        batch = [(self.listener, None, delivery) for delivery in deliveries]
        chunks = []
        for chunk in handle_batch(
                self.dispatcher, batch,
                lambda found, delivery: self.dispatcher.dispatch(
                    delivery, found, defer=True),
                lambda: False):
            chunks.append([outcome.status for _, _, _, outcome in chunk])
        return chunks

    def keys(self):
        return sorted(note['key'] for note in self.db.batch_notes.find())

    def test_fast_listeners_flush_together(self):
        chunks = self.run_batch([
            self.delivery(documents=[{'key': 'a'}]),
            self.delivery(documents=[{'key': 'b'}], observe=True),
            self.delivery(documents=[{'key': 'c'}], observe=True)])
        self.assertEqual(chunks, [[DONE, DONE, DONE]])
        # Nothing is written until every listener of the chunk returned.
        self.assertEqual(apps.OBSERVED, [0, 0])
        self.assertEqual(self.keys(), ['a', 'b', 'c'])

    def test_no_write_lock_while_listeners_run(self):
        seen = []

        def call(found, delivery):
            # Another connection can write while the chunk is open.
            writer = threading.Thread(target=lambda: seen.append(
                self.db.batch_notes.insert_one({'key': delivery.message_id})
                .inserted_id), daemon=True)
            writer.start()
            writer.join(timeout=5)
            return self.dispatcher.dispatch(delivery, found, defer=True)

        batch = [(self.listener, None, self.delivery(
            documents=[{'key': key}])) for key in 'ab']
        for _ in handle_batch(self.dispatcher, batch, call, lambda: False):
            pass
        self.assertEqual(len(seen), 2)

    def test_same_message_twice_in_chunk_runs_once(self):
        first = self.delivery(message_id='twice', documents=[{'key': 'a'}])
        second = self.delivery(message_id='twice', documents=[{'key': 'b'}])
        chunks = self.run_batch([first, second])
        self.assertEqual(chunks, [[DONE, DUPLICATE]])
        self.assertEqual(self.keys(), ['a'])

    def test_failed_flush_rolls_back_only_its_writes(self):
        self.db.batch_notes.insert_one({'key': 'taken'})
        chunks = self.run_batch([
            self.delivery(documents=[{'key': 'a'}]),
            self.delivery(documents=[{'key': 'b'}, {'key': 'taken'}]),
            self.delivery(documents=[{'key': 'c'}])])
        self.assertEqual(chunks, [[DONE, RETRY, DONE]])
        self.assertEqual(self.keys(), ['a', 'c', 'taken'])

    def test_outbox_sent_after_commit(self):
        from tests.apps import WriterApp
        create_project(self.db, 'other', [('writer', 'notes')])
        writer = listener(WriterApp, 'write', 'audit')
        batch = [(writer, None, delivery_for(writer, {
            'project_id': 'other', 'mount_point': 'notes', 'text': text}))
            for text in ('one', 'two')]
        for _ in handle_batch(
                self.dispatcher, batch,
                lambda found, delivery: self.dispatcher.dispatch(
                    delivery, found, defer=True),
                lambda: False):
            pass
        self.assertEqual(len(self.publisher.sent), 2)
        notes = committed_count(self.db, 'notes', {})
        self.assertEqual(notes, 2)
        self.assertEqual(
            [self.db.message_records.find_one(
                {'message_id': delivery.message_id})['status']
             for _, _, delivery in batch], ['done', 'done'])

    def test_slow_listener_gets_chunk_of_its_own(self):
        chunks = self.run_batch([
            self.delivery(documents=[{'key': 'a'}], sleep=0.02),
            self.delivery(documents=[{'key': 'b'}], sleep=0.02),
            self.delivery(documents=[{'key': 'c'}], observe=True)])
        self.assertEqual(chunks, [[DONE], [DONE], [DONE]])
        self.assertEqual(apps.OBSERVED, [2])

    def test_redelivered_message_counted_before_listener(self):
        first = self.delivery(documents=[{'key': 'a'}])
        record_id = records.record_id(self.listener.queue, 'again')
        redelivered = self.delivery(message_id='again',
                                    documents=[{'key': 'b'}],
                                    observe_record=record_id)
        redelivered.redelivered = True
        chunks = self.run_batch([first, redelivered])
        self.assertEqual(chunks, [[DONE, DONE]])
        # The count a dying worker must leave behind was committed
        # before the listener ran.
        self.assertEqual(apps.OBSERVED, [1])

    def test_exception_rolls_back_whole_chunk(self):
        calls = []

        def call(found, delivery):
            calls.append(delivery)
            if len(calls) == 2:
                raise KeyboardInterrupt()
            return self.dispatcher.dispatch(delivery, found, defer=True)

        batch = [(self.listener, None, self.delivery(
            documents=[{'key': key}])) for key in 'abc']
        with self.assertRaises(KeyboardInterrupt):
            for _ in handle_batch(self.dispatcher, batch, call,
                                  lambda: False):
                pass
        self.assertEqual(self.keys(), [])
        self.assertEqual(self.db.message_records.count_documents({}), 0)

    def test_stopping_leaves_rest_unhandled(self):
        stopping = []
        batch = [(self.listener, None, self.delivery(
            documents=[{'key': key}])) for key in 'abc']

        def call(found, delivery):
            stopping.append(True)
            return self.dispatcher.dispatch(delivery, found, defer=True)

        handled = [outcome for chunk in handle_batch(
            self.dispatcher, batch, call, lambda: len(stopping) >= 1)
            for _, _, _, outcome in chunk]
        self.assertEqual(len(handled), 1)
        self.assertEqual(self.keys(), ['a'])


if __name__ == '__main__':
    unittest.main()

"""WAL checkpoints of a SQLite store file, on commit or in a thread."""

import os
import threading
import time
import unittest
from unittest import mock

from pyforge.lib.store import checkpoint_in_background, connect, engine
from pyforge.lib.store.engine import DEFAULT_AUTOCHECKPOINT
from tests.lib.store.support import TemporaryFolderMixin, run_forked
from tests.support import wait_for

PAGE_SIZE = 4096
#: Each document takes about ten pages, so WRITES of them fill the WAL
#: past SQLite's auto-checkpoint size twice over.
DOCUMENT_TEXT = 'x' * (10 * PAGE_SIZE)
WRITES = 2 * DEFAULT_AUTOCHECKPOINT // 10
DATA_SIZE = WRITES * len(DOCUMENT_TEXT)
JOIN_TIMEOUT = 60
# Seconds a checkpoint takes where a test slows it down on purpose.
SLOW_CHECKPOINT = 0.5


def write_documents(db):
    for number in range(WRITES):
        db.items.insert_one({'_id': number, 'text': DOCUMENT_TEXT})


def write_in_child(url):
    write_documents(connect(url))


def note_start_and_write(url, note):
    """Write the child's start time to `note`, then write documents."""
    with open(note, 'w') as stream:
        # CLOCK_MONOTONIC is one clock for every process on the machine.
        stream.write(repr(time.monotonic()))
    write_in_child(url)


def checkpoint_threads():
    return [thread for thread in threading.enumerate()
            if thread.name == 'sqlite-checkpoint' and thread.is_alive()]


class CheckpointTest(TemporaryFolderMixin, unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.make_folder(), 'store.sqlite')
        self.url = 'sqlite://' + self.path
        self.db = connect(self.url)
        self.addCleanup(self.db.close)
        self.db.items.insert_one({'_id': 'first'})

    def wal_size(self):
        return os.path.getsize(self.path + '-wal')

    def file_size(self):
        return os.path.getsize(self.path)

    def test_commits_checkpoint_by_default(self):
        write_documents(self.db)
        # Each commit past the auto-checkpoint size copies the WAL back,
        # and the next one starts the WAL over.
        self.assertLess(self.wal_size(), 1.5 * DEFAULT_AUTOCHECKPOINT
                        * PAGE_SIZE)
        self.assertGreater(self.file_size(), DATA_SIZE / 4)

    def test_background_leaves_commits_alone(self):
        # The thread's first checkpoint would come after an hour.
        self.db._engine.checkpoint_in_background(interval=3600)
        write_documents(self.db)
        self.assertGreater(self.wal_size(), DATA_SIZE)
        self.assertLess(self.file_size(), DATA_SIZE / 4)

    def test_close_checkpoints_once_more(self):
        self.db._engine.checkpoint_in_background(interval=3600)
        write_documents(self.db)
        self.db.close()
        self.assertGreater(self.file_size(), DATA_SIZE)

    def test_thread_copies_wal_into_file(self):
        checkpoint_in_background(self.db)
        write_documents(self.db)
        wait_for(lambda: self.file_size() > DATA_SIZE,
                 what='the WAL copied into the database file', timeout=30)
        self.assertEqual(self.db.items.count_documents({}), WRITES + 1)

    def test_second_call_keeps_first_thread(self):
        checkpoint_in_background(self.db)
        first = self.db._engine._checkpointer
        checkpoint_in_background(self.db)
        self.assertIs(self.db._engine._checkpointer, first)
        self.assertTrue(first.is_alive())

    def test_close_stops_thread(self):
        checkpoint_in_background(self.db)
        thread = self.db._engine._checkpointer
        self.db.close()
        self.assertFalse(thread.is_alive())

    def test_child_process_checkpoints_on_commit(self):
        self.db._engine.checkpoint_in_background(interval=3600)
        # The child inherits the engine but not the thread, so its own
        # commits must checkpoint, or its WAL would grow without end.
        self.assertEqual(run_forked(write_in_child, (self.url,),
                                    JOIN_TIMEOUT), 0)
        self.assertLess(self.wal_size(), 1.5 * DEFAULT_AUTOCHECKPOINT
                        * PAGE_SIZE)

    def test_fork_waits_for_checkpoint(self):
        # A child forked while the thread is inside SQLite could inherit
        # one of SQLite's mutexes locked, so a fork waits for the
        # checkpoint to end. A slow checkpoint makes the wait visible.
        started = threading.Event()
        finished = []

        def slow_checkpoint(checkpointer, connection):
            started.set()
            time.sleep(SLOW_CHECKPOINT)
            finished.append(time.monotonic())

        with mock.patch.object(engine._Checkpointer, '_checkpoint',
                               slow_checkpoint):
            checkpoint_in_background(self.db)
            self.assertTrue(started.wait(JOIN_TIMEOUT))
            note = self.path + '.started'
            self.assertEqual(run_forked(note_start_and_write,
                                        (self.url, note), JOIN_TIMEOUT), 0)
            self.db.close()
        with open(note) as stream:
            child_started = float(stream.read())
        self.assertLessEqual(finished[0], child_started)
        self.assertGreater(self.file_size(), DATA_SIZE)

    def test_other_stores_ignored(self):
        memory = connect('sqlite://')
        self.addCleanup(memory.close)
        mongo = connect('mongomock://')
        running = checkpoint_threads()
        checkpoint_in_background(memory)
        checkpoint_in_background(mongo)
        self.assertEqual(checkpoint_threads(), running)


if __name__ == '__main__':
    unittest.main()

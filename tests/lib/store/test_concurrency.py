"""Concurrent writers on one SQLite store file: processes and threads.

Workers are bounded in count, and every join has a timeout, so a
deadlock fails the test instead of hanging it.
"""

import multiprocessing
import threading
import unittest

from pymongo.errors import DuplicateKeyError

from pyforge.lib.store import connect
from tests.lib.store.support import TemporaryFolderMixin

PROCESSES = 4
# Seconds to wait for a worker; the work takes about a second here.
JOIN_TIMEOUT = 120


def increment(url, times):
    """Apply $inc to one counter document, times times."""
    db = connect(url)
    for _ in range(times):
        db.counters.update_one({'_id': 'hits'}, {'$inc': {'n': 1}})


def upsert(url, times):
    """Upsert one document by _id and one by another field, times times."""
    db = connect(url)
    for _ in range(times):
        db.counters.update_one(
            {'_id': 'shared'}, {'$inc': {'n': 1}}, upsert=True)
        db.counters.update_one(
            {'name': 'by-name'}, {'$inc': {'n': 1}}, upsert=True)


def insert_keys(url, keys, results):
    """Insert one document per key; put the number inserted on results."""
    db = connect(url)
    inserted = 0
    for key in keys:
        try:
            db.claims.insert_one({'key': key})
        except DuplicateKeyError:
            continue
        inserted += 1
    results.put(inserted)


def report_connection_reopened(db, inherited, results):
    """Put on results whether db gives this process its own connection."""
    results.put(db._engine.connection() is not inherited)


class ProcessConcurrencyTest(TemporaryFolderMixin, unittest.TestCase):
    """Several processes writing to one store file."""

    def setUp(self):
        super().setUp()
        self.url = 'sqlite:///%s/store.sqlite' % self.make_folder()
        # The parent opens the store before forking, so the children
        # must replace the connection they inherit.
        self.db = connect(self.url)

    def run_processes(self, target, args, method='fork'):
        context = multiprocessing.get_context(method)
        processes = [context.Process(target=target, args=args, daemon=True)
                     for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(JOIN_TIMEOUT)
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        for process in processes:
            self.assertEqual(process.exitcode, 0)

    def test_child_reopens_connection(self):
        inherited = self.db._engine.connection()
        context = multiprocessing.get_context('fork')
        results = context.Queue()
        child = context.Process(
            target=report_connection_reopened,
            args=(self.db, inherited, results), daemon=True)
        child.start()
        reopened = results.get(timeout=JOIN_TIMEOUT)
        child.join(JOIN_TIMEOUT)
        self.assertTrue(reopened)
        self.assertEqual(child.exitcode, 0)

    def test_inc_from_four_processes(self):
        self.db.counters.insert_one({'_id': 'hits', 'n': 0})
        self.run_processes(increment, (self.url, 300))
        self.assertEqual(self.db.counters.find_one('hits')['n'], 1200)

    def test_inc_from_spawned_processes(self):
        self.db.counters.insert_one({'_id': 'hits', 'n': 0})
        self.run_processes(increment, (self.url, 25), method='spawn')
        self.assertEqual(self.db.counters.find_one('hits')['n'], 100)

    def test_concurrent_upserts_one_document(self):
        self.run_processes(upsert, (self.url, 100))
        self.assertEqual(self.db.counters.count_documents({}), 2)
        self.assertEqual(self.db.counters.find_one('shared')['n'], 400)
        by_name = self.db.counters.find_one({'name': 'by-name'})
        self.assertEqual(by_name['n'], 400)

    def test_unique_index_concurrent_inserts(self):
        self.db.claims.create_index('key', unique=True)
        results = multiprocessing.get_context('fork').Queue()
        self.run_processes(insert_keys, (self.url, range(100), results))
        counts = [results.get(timeout=JOIN_TIMEOUT)
                  for _ in range(PROCESSES)]
        self.assertEqual(sum(counts), 100)
        self.assertEqual(self.db.claims.count_documents({}), 100)
        self.assertEqual(len(self.db.claims.distinct('key')), 100)


class ThreadConcurrencyTest(TemporaryFolderMixin, unittest.TestCase):
    """Several threads of one process writing to one store."""

    def run_threads(self, target):
        threads = [threading.Thread(target=target, daemon=True)
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        for thread in threads:
            self.assertFalse(thread.is_alive())

    def check_increments(self, db):
        db.counters.insert_one({'_id': 'hits', 'n': 0})

        def work():
            for _ in range(200):
                db.counters.update_one({'_id': 'hits'}, {'$inc': {'n': 1}})

        self.run_threads(work)
        self.assertEqual(db.counters.find_one('hits')['n'], 800)

    def test_threads_inc_file_store(self):
        db = connect('sqlite:///%s/store.sqlite' % self.make_folder())
        self.check_increments(db)

    def test_threads_inc_memory_store(self):
        self.check_increments(connect('sqlite://'))

    def test_file_store_uses_wal(self):
        db = connect('sqlite:///%s/store.sqlite' % self.make_folder())
        mode = db._engine.connection().execute(
            'PRAGMA journal_mode').fetchone()[0]
        self.assertEqual(mode, 'wal')

"""transaction(): atomic blocks on SQLite, a no-op on MongoDB clients."""

import threading
import unittest
from unittest import mock

import mongomock
import pymongo
from pymongo.errors import DuplicateKeyError

from pyforge.lib.store import connect, transaction
from pyforge.lib.store.storage import Table
from tests.lib.store.support import TemporaryFolderMixin


class Abort(Exception):
    """Raised by a test to leave a transaction block."""


class IndexWriteFailure(Exception):
    """Raised in place of writing the entries of one index."""


def failing_index(name):
    """Patch Table so that writing entries of index name raises."""
    add_entries = Table._add_entries

    def add_or_fail(table, index, id_key, entries):
        if index.name == name:
            raise IndexWriteFailure(name)
        add_entries(table, index, id_key, entries)

    return mock.patch.object(Table, '_add_entries', add_or_fail)


class TransactionCases:
    """Transaction behaviour shared by the memory and file stores."""

    def test_raising_block_leaves_no_writes(self):
        self.db.items.insert_one({'_id': 1, 'n': 0})
        with self.assertRaises(Abort):
            with transaction(self.db):
                self.db.items.insert_one({'_id': 2})
                self.db.items.update_one({'_id': 1}, {'$inc': {'n': 1}})
                self.db.other.insert_one({'_id': 3})
                raise Abort()
        self.assertEqual(self.db.items.find_one(1)['n'], 0)
        self.assertIsNone(self.db.items.find_one(2))
        self.assertNotIn('other', self.db.list_collection_names())

    def test_block_commits_writes(self):
        with transaction(self.db) as db:
            db.items.insert_one({'_id': 1})
            db.items.update_one({'_id': 1}, {'$set': {'done': True}})
        self.assertEqual(self.db.items.find_one(1), {'_id': 1, 'done': True})

    def test_block_reads_own_writes(self):
        with transaction(self.db):
            self.db.items.insert_one({'_id': 1})
            self.assertEqual(self.db.items.count_documents({}), 1)

    def test_nested_joins_outer(self):
        with self.assertRaises(Abort):
            with transaction(self.db):
                self.db.items.insert_one({'_id': 1})
                with transaction(self.db):
                    self.db.items.insert_one({'_id': 2})
                raise Abort()
        self.assertEqual(self.db.items.count_documents({}), 0)

    def test_nested_raise_undoes_inner_only(self):
        with transaction(self.db):
            self.db.items.insert_one({'_id': 1})
            with self.assertRaises(Abort):
                with transaction(self.db):
                    self.db.items.insert_one({'_id': 2})
                    raise Abort()
            self.db.items.insert_one({'_id': 3})
        self.assertEqual(sorted(self.db.items.distinct('_id')), [1, 3])

    def test_failed_write_inside_block(self):
        self.db.items.insert_one({'_id': 1})
        with transaction(self.db):
            self.db.items.insert_one({'_id': 2})
            with self.assertRaises(DuplicateKeyError):
                self.db.items.insert_one({'_id': 1})
        self.assertEqual(sorted(self.db.items.distinct('_id')), [1, 2])

    def test_failed_unique_index_leaves_none(self):
        self.db.items.insert_many([{'a': 1}, {'a': 1}])
        with transaction(self.db):
            with self.assertRaises(DuplicateKeyError):
                self.db.items.create_index('a', unique=True)
        self.assertEqual(list(self.db.items.index_information()), ['_id_'])
        self.assertEqual(self.db.items.count_documents({'a': 1}), 2)

    def test_failed_insert_undone(self):
        self.db.items.create_index('a', unique=True)
        self.db.items.create_index('b')
        with transaction(self.db):
            with failing_index('b_1'), self.assertRaises(IndexWriteFailure):
                self.db.items.insert_one({'_id': 1, 'a': 1, 'b': 1})
        self.assertIsNone(self.db.items.find_one({'_id': 1}))
        # The entry in the unique index on a was removed too.
        self.db.items.insert_one({'_id': 2, 'a': 1, 'b': 1})
        self.assertEqual(self.db.items.find_one({'a': 1})['_id'], 2)

    def test_failed_update_undone(self):
        self.db.items.create_index('a', unique=True)
        self.db.items.create_index('b')
        self.db.items.insert_one({'_id': 1, 'a': 1, 'b': 1})
        with transaction(self.db):
            with failing_index('b_1'), self.assertRaises(IndexWriteFailure):
                self.db.items.update_one(
                    {'_id': 1}, {'$set': {'a': 2, 'b': 2}})
        self.assertEqual(self.db.items.find_one({'_id': 1}),
                         {'_id': 1, 'a': 1, 'b': 1})
        self.assertEqual(self.db.items.find_one({'a': 1})['_id'], 1)
        self.assertEqual(self.db.items.find_one({'b': 1})['_id'], 1)
        self.assertIsNone(self.db.items.find_one({'b': 2}))
        # The entry for a = 2 was removed again, the one for 1 restored.
        self.db.items.insert_one({'_id': 2, 'a': 2})
        with self.assertRaises(DuplicateKeyError):
            self.db.items.insert_one({'_id': 3, 'a': 1})

    def test_rollback_restores_indexes(self):
        self.db.items.create_index('name', unique=True)
        with self.assertRaises(Abort):
            with transaction(self.db):
                self.db.items.insert_one({'name': 'a'})
                raise Abort()
        self.db.items.insert_one({'name': 'a'})
        self.assertEqual(self.db.items.count_documents({'name': 'a'}), 1)


class MemoryTransactionTest(TransactionCases, unittest.TestCase):

    def setUp(self):
        self.db = connect('sqlite://')
        self.addCleanup(self.db.close)


class FileTransactionTest(TransactionCases, TemporaryFolderMixin,
                          unittest.TestCase):

    def setUp(self):
        self.url = 'sqlite:///%s/store.sqlite' % self.make_folder()
        self.db = connect(self.url)
        self.addCleanup(self.db.close)

    def count_from_other_thread(self):
        counts = []
        reader = threading.Thread(
            target=lambda: counts.append(
                self.db.items.count_documents({})), daemon=True)
        reader.start()
        reader.join(60)
        self.assertFalse(reader.is_alive())
        return counts[0]

    def test_writes_hidden_until_commit(self):
        with transaction(self.db):
            self.db.items.insert_one({'_id': 1})
            self.assertEqual(self.count_from_other_thread(), 0)
        self.assertEqual(self.count_from_other_thread(), 1)

    def test_databases_on_one_file_share_transaction(self):
        other = connect(self.url)
        with self.assertRaises(Abort):
            with transaction(self.db):
                other.items.insert_one({'_id': 1})
                raise Abort()
        self.assertEqual(other.items.count_documents({}), 0)


class MongoTransactionTest(unittest.TestCase):
    """On MongoDB clients transaction() yields the database unchanged."""

    def test_mongomock_no_op(self):
        db = mongomock.MongoClient()['test']
        with self.assertRaises(Abort):
            with transaction(db) as yielded:
                self.assertIs(yielded, db)
                db.items.insert_one({'_id': 1})
                raise Abort()
        # No rollback: MongoDB has no transactions without a replica set.
        self.assertEqual(db.items.count_documents({}), 1)

    def test_pymongo_no_op(self):
        client = pymongo.MongoClient('mongodb://localhost:27017',
                                     connect=False)
        self.addCleanup(client.close)
        db = client['test']
        with transaction(db) as yielded:
            self.assertIs(yielded, db)

    def test_other_object_rejected(self):
        with self.assertRaises(TypeError):
            with transaction({'not': 'a database'}):
                pass

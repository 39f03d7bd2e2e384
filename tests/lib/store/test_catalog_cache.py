"""The per-connection catalog cache and changes made elsewhere.

Each test lets the first connection cache a collection's catalog
entry, changes the catalog from another process, another connection
or a rolled back transaction, and checks that the first connection's
next operation honours the change.
"""

import os
import unittest

from pymongo.errors import DuplicateKeyError

from pyforge.lib.store import connect, engine, sqlite, transaction
from tests.lib.store.support import TemporaryFolderMixin, run_forked

# Seconds to wait for a child process; each one takes well under one.
JOIN_TIMEOUT = 60


class Abort(Exception):
    """Raised by a test to leave a transaction block."""


def create_unique_index(url):
    connect(url).claims.create_index('key', unique=True)


def create_index(url):
    connect(url).items.create_index('name')


def drop_items(url):
    connect(url).items.drop()


def replace_index(url):
    """Drop the index on name and create one on other in its place."""
    db = connect(url)
    db.items.drop_index('name_1')
    db.items.create_index('other')


class OtherProcessTest(TemporaryFolderMixin, unittest.TestCase):
    """Catalog changes made by another process."""

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.make_folder(), 'store.sqlite')
        self.url = 'sqlite://' + self.path
        self.db = connect(self.url)
        self.addCleanup(self.db.close)

    def run_child(self, target):
        self.assertEqual(run_forked(target, (self.url,), JOIN_TIMEOUT), 0)

    def test_unique_index_rejects_insert(self):
        self.db.claims.insert_one({'_id': 1, 'key': 'a'})
        self.assertIsNotNone(self.db.claims.find_one({'_id': 1}))
        self.run_child(create_unique_index)
        with self.assertRaises(DuplicateKeyError):
            self.db.claims.insert_one({'_id': 2, 'key': 'a'})
        self.assertEqual(self.db.claims.count_documents({}), 1)

    def test_unique_index_rejects_upsert(self):
        self.db.claims.insert_one({'_id': 1, 'key': 'a'})
        self.assertIsNotNone(self.db.claims.find_one({'_id': 1}))
        self.run_child(create_unique_index)
        with self.assertRaises(DuplicateKeyError):
            with transaction(self.db):
                self.db.claims.update_one(
                    {'_id': 2}, {'$set': {'key': 'a'}}, upsert=True)
        self.assertIsNone(self.db.claims.find_one({'_id': 2}))

    def test_new_index_gets_entries(self):
        self.db.items.insert_one({'_id': 1, 'name': 'x'})
        self.assertIsNotNone(self.db.items.find_one({'_id': 1}))
        self.run_child(create_index)
        self.db.items.insert_one({'_id': 2, 'name': 'y'})
        self.db.items.update_one({'_id': 1}, {'$set': {'name': 'z'}})
        # A new connection reads by the index, so it finds only what
        # the index lists.
        fresh = sqlite.Database(engine.FileEngine(self.path), 'pyforge')
        self.addCleanup(fresh.close)
        self.assertEqual(fresh.items.find_one({'name': 'y'})['_id'], 2)
        self.assertEqual(fresh.items.find_one({'name': 'z'})['_id'], 1)
        self.assertIsNone(fresh.items.find_one({'name': 'x'}))

    def test_dropped_collection_is_empty(self):
        self.db.items.insert_one({'_id': 1, 'name': 'x'})
        self.assertIsNotNone(self.db.items.find_one({'_id': 1}))
        self.run_child(drop_items)
        self.assertIsNone(self.db.items.find_one({'_id': 1}))
        self.assertEqual(self.db.items.count_documents({}), 0)
        self.assertEqual(self.db.items.estimated_document_count(), 0)
        self.assertNotIn('items', self.db.list_collection_names())

    def test_dropped_collection_upsert_creates(self):
        self.db.items.insert_one({'_id': 1, 'n': 5})
        self.assertIsNotNone(self.db.items.find_one({'_id': 1}))
        self.run_child(drop_items)
        result = self.db.items.update_one(
            {'_id': 1}, {'$inc': {'n': 1}}, upsert=True)
        self.assertEqual(result.upserted_id, 1)
        self.assertEqual(self.db.items.find_one({'_id': 1}),
                         {'_id': 1, 'n': 1})

    def test_replaced_index_not_used(self):
        # The new index may get the dropped one's table, so a stale
        # cache would look up name in the index on other.
        self.db.items.create_index('name')
        self.db.items.insert_one({'_id': 1, 'name': 'x', 'other': 'y'})
        self.assertEqual(self.db.items.find_one({'name': 'x'})['_id'], 1)
        self.run_child(replace_index)
        self.assertEqual(self.db.items.find_one({'name': 'x'})['_id'], 1)
        self.assertEqual(self.db.items.find_one({'other': 'y'})['_id'], 1)
        self.assertEqual(list(self.db.items.index_information()),
                         ['_id_', 'other_1'])


class RolledBackChangeTest(TemporaryFolderMixin, unittest.TestCase):
    """Catalog entries read inside a transaction that rolls back."""

    def test_rolled_back_collection_forgotten(self):
        path = os.path.join(self.make_folder(), 'store.sqlite')
        db = connect('sqlite://' + path)
        self.addCleanup(db.close)
        # A second connection in this process, with a cache of its own.
        other = sqlite.Database(engine.FileEngine(path), 'pyforge')
        self.addCleanup(other.close)
        with self.assertRaises(Abort):
            with transaction(db):
                db.first.insert_one({'_id': 1, 'name': 'first'})
                self.assertIsNotNone(db.first.find_one({'_id': 1}))
                raise Abort()
        # The same DDL gives second the table number and the schema
        # version that first had in the rolled back transaction.
        other.second.insert_one({'_id': 1, 'name': 'second'})
        self.assertIsNone(db.first.find_one({'_id': 1}))
        self.assertEqual(db.second.find_one({'_id': 1})['name'], 'second')

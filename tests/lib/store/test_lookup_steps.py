"""Lookups by _id and by indexed fields do not scan the collection.

Instead of timing, the tests count the SQLite virtual machine steps
that one find_one() runs (Engine.count_steps), which depends only on
the query plan. A lookup in a 100,000-document collection must take
about as many steps as in an empty one, while a full scan takes
orders of magnitude more.
"""

import shutil
import tempfile
import unittest

from pyforge.lib.store import connect

DOCUMENTS = 100_000
# A lookup may cost this many times the steps of the empty collection.
MAX_RATIO = 2


class LookupStepsTest(unittest.TestCase):
    """VM steps of find_one() on an empty and a large collection."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix='pyforge-store-test-')
        cls.db = connect('sqlite:///%s/store.sqlite' % cls.folder)
        for name in ('empty', 'large'):
            cls.db[name].create_index('name', unique=True)
            cls.db[name].create_index([('group', 1), ('rank', 1)])
        cls.db.large.insert_many([
            {'_id': number, 'name': 'item-%d' % number,
             'group': number % 100, 'rank': number, 'text': 'x' * 20}
            for number in range(DOCUMENTS)])

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        shutil.rmtree(cls.folder, ignore_errors=True)

    def steps(self, collection, query):
        with self.db._engine.count_steps() as counter:
            collection.find_one(query)
        return counter[0]

    def compare(self, query):
        """Return the steps of query on the empty and large collections."""
        empty = self.steps(self.db.empty, query)
        large = self.steps(self.db.large, query)
        return empty, large

    def test_find_by_id_does_not_scan(self):
        empty, large = self.compare({'_id': 54321})
        self.assertLess(large, MAX_RATIO * empty)

    def test_find_by_id_in_does_not_scan(self):
        empty, large = self.compare({'_id': {'$in': [7, 54321]}})
        self.assertLess(large, MAX_RATIO * empty)

    def test_unique_index_does_not_scan(self):
        empty, large = self.compare({'name': 'item-54321'})
        self.assertLess(large, MAX_RATIO * empty)

    def test_compound_index_does_not_scan(self):
        empty, large = self.compare({'group': 21, 'rank': 54321})
        self.assertLess(large, MAX_RATIO * empty)

    def test_lookups_find_document(self):
        self.assertEqual(self.db.large.find_one(54321)['name'], 'item-54321')
        found = self.db.large.find_one({'name': 'item-54321'})
        self.assertEqual(found['_id'], 54321)
        found = self.db.large.find_one({'group': 21, 'rank': 54321})
        self.assertEqual(found['_id'], 54321)

    def test_unindexed_query_scans(self):
        # Shows that the measure detects a scan: the last document
        # matches, so the whole collection is read.
        empty, large = self.compare({'text': 'x' * 20, 'rank': 99_999})
        self.assertGreater(large, 1000 * empty)

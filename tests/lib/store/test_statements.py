"""The SQL statements that a worker's store calls run, traced by SQLite.

For each message a worker looks documents up by _id or by an indexed
field and upserts one inside transaction(). These tests pin the
statements of those calls once the connection has cached the catalog.
They count statements instead of timing them, so they do not depend
on the machine.
"""

import unittest

from pyforge.lib.store import connect, transaction
from tests.lib.store.support import TemporaryFolderMixin


class StatementsTest(TemporaryFolderMixin, unittest.TestCase):
    """Statements of lookups and upserts on a file store."""

    def setUp(self):
        super().setUp()
        self.db = connect('sqlite:///%s/store.sqlite' % self.make_folder())
        self.addCleanup(self.db.close)
        self.db.items.create_index('name', unique=True)
        self.db.items.create_index([('queue', 1), ('status', 1)])
        self.db.items.insert_many([
            {'_id': number, 'name': 'item-%d' % number, 'queue': 'q',
             'status': 'new'} for number in range(10)])
        # Cache the catalog, as every call after a worker's first does.
        self.db.items.find_one({'_id': 0})

    def statements(self, operation):
        """Return the statements that operation runs, whitespace joined.

        Leaves out the lines that SQLite starts with '--': statements
        run inside another one, like the pragma_schema_version table's.
        """
        traced = []
        connection = self.db._engine.connection()
        connection.set_trace_callback(traced.append)
        try:
            operation()
        finally:
            connection.set_trace_callback(None)
        return [' '.join(statement.split()) for statement in traced
                if not statement.startswith('--')]

    def test_find_by_id_one_select(self):
        statements = self.statements(
            lambda: self.db.items.find_one({'_id': 3}))
        self.assertEqual(len(statements), 1)
        self.assertTrue(statements[0].startswith('SELECT'))
        self.assertIn('schema_version', statements[0])

    def test_find_by_unique_field_one_select(self):
        statements = self.statements(
            lambda: self.db.items.find_one({'name': 'item-3'}))
        self.assertEqual(len(statements), 1)
        self.assertTrue(statements[0].startswith('SELECT'))

    def test_missing_collection_one_pragma(self):
        self.assertIsNone(self.db.missing.find_one({'_id': 1}))
        statements = self.statements(
            lambda: self.db.missing.find_one({'_id': 1}))
        self.assertEqual(statements, ['PRAGMA schema_version'])

    def test_several_lookups_one_snapshot(self):
        found = []
        statements = self.statements(lambda: found.extend(
            self.db.items.find({'_id': {'$in': [2, 5]}})))
        self.assertEqual(len(found), 2)
        self.assertEqual(statements[0], 'BEGIN')
        self.assertEqual(statements[-1], 'COMMIT')

    def test_upsert_in_transaction(self):
        def upsert():
            with transaction(self.db):
                self.db.items.update_one(
                    {'_id': 'new'},
                    {'$set': {'queue': 'q', 'status': 'done'}},
                    upsert=True)

        statements = self.statements(upsert)
        self.assertEqual(statements[:2],
                         ['BEGIN IMMEDIATE', 'PRAGMA schema_version'])
        self.assertTrue(statements[2].startswith('SELECT'))
        # The document, then one entry in each index (name as null).
        self.assertTrue(statements[3].startswith('INSERT INTO store_docs'))
        self.assertTrue(statements[4].startswith('INSERT INTO store_index'))
        self.assertTrue(statements[5].startswith('INSERT INTO store_index'))
        self.assertEqual(statements[6:], ['COMMIT'])
        self.assertEqual(self.db.items.find_one({'_id': 'new'})['status'],
                         'done')

    def test_update_without_catalog_reads(self):
        statements = self.statements(lambda: self.db.items.update_one(
            {'_id': 4}, {'$set': {'status': 'done'}}))
        # The entry in the (queue, status) index moves to the new key.
        self.assertEqual(
            [statement.split()[0] for statement in statements],
            ['BEGIN', 'PRAGMA', 'SELECT', 'UPDATE', 'DELETE', 'INSERT',
             'COMMIT'])

    def test_transaction_checks_catalog_once(self):
        def two_writes():
            with transaction(self.db):
                self.db.items.update_one({'_id': 1}, {'$inc': {'n': 1}})
                self.db.items.update_one({'_id': 2}, {'$inc': {'n': 1}})

        statements = self.statements(two_writes)
        self.assertEqual(statements.count('PRAGMA schema_version'), 1)

    def test_nested_transaction_savepoint(self):
        def nested():
            with transaction(self.db):
                with transaction(self.db):
                    self.db.items.insert_one({'_id': 'nested'})

        statements = self.statements(nested)
        self.assertIn('SAVEPOINT store_2', statements)
        self.assertIn('RELEASE store_2', statements)

"""Behaviour of the SQLite store that the conformance suite cannot show.

These tests cover the store's documented limits (unsupported operators
and options raise instead of being ignored), its own objects (cursor
helpers, results, Database equality) and in-memory store lifetime.
"""

import os
import re
import unittest

from bson.errors import InvalidDocument
from pymongo.errors import (
    DocumentTooLarge, InvalidName, InvalidOperation, OperationFailure,
    WriteError)

from pyforge.lib.store import connect
from pyforge.lib.store.query import FIELD_OPERATORS


class UnsupportedFeatureTest(unittest.TestCase):
    """Features outside the supported subset raise clear errors."""

    def setUp(self):
        self.db = connect('sqlite://', 'test')
        self.db.items.insert_one({'_id': 1, 'name': 'alpha', 'tags': ['x']})

    def test_regex_rejected(self):
        for query in ({'name': re.compile('^a')},
                      {'name': {'$regex': '^a'}}):
            with self.subTest(query=query):
                with self.assertRaises(OperationFailure) as caught:
                    list(self.db.items.find(query))
                self.assertEqual(caught.exception.code, 2)

    def test_unknown_operator_lists_supported(self):
        with self.assertRaises(OperationFailure) as caught:
            list(self.db.items.find({'tags': {'$size': 1}}))
        message = str(caught.exception)
        self.assertIn('$size', message)
        for operator in FIELD_OPERATORS:
            self.assertIn(operator, message)

    def test_nor_rejected(self):
        with self.assertRaises(OperationFailure) as caught:
            list(self.db.items.find({'$nor': [{'name': 'alpha'}]}))
        self.assertIn('$nor', str(caught.exception))
        self.assertIn('$and, $or', str(caught.exception))

    def test_query_error_on_empty_collection(self):
        with self.assertRaises(OperationFailure):
            list(self.db.missing.find({'a': {'$where': 1}}))

    def test_projection_operator_rejected(self):
        with self.assertRaises(OperationFailure):
            self.db.items.find_one({}, {'tags': {'$slice': 1}})

    def test_push_modifier_rejected(self):
        update = {'$push': {'tags': {'$each': ['y'], '$slice': -5}}}
        with self.assertRaises(WriteError) as caught:
            self.db.items.update_one({'_id': 1}, update)
        self.assertIn('$slice', str(caught.exception))

    def test_update_pipeline_rejected(self):
        pipeline = [{'$set': {'name': 'beta'}}]
        with self.assertRaises(OperationFailure) as caught:
            self.db.items.update_one({'_id': 1}, pipeline)
        self.assertIn('pipeline', str(caught.exception))

    def test_positional_update_rejected(self):
        update = {'$set': {'tags.$': 'y'}}
        with self.assertRaises(WriteError):
            self.db.items.update_one({'_id': 1, 'tags': 'x'}, update)

    def test_update_operator_rejected_on_no_match(self):
        with self.assertRaises(WriteError):
            self.db.items.update_one({'_id': 9}, {'$rename': {'a': 'b'}})

    def test_index_option_rejected(self):
        with self.assertRaises(OperationFailure):
            self.db.items.create_index('name', sparse=True)

    def test_index_type_rejected(self):
        with self.assertRaises(OperationFailure):
            self.db.items.create_index([('name', 'text')])

    def test_background_option_ignored(self):
        self.assertEqual(
            self.db.items.create_index('name', background=True), 'name_1')


class UpdateConflictTest(unittest.TestCase):
    """Update paths that overlap raise WriteError 40, as in MongoDB."""

    def setUp(self):
        self.db = connect('sqlite://', 'test')
        self.db.items.insert_one({'_id': 1})

    def test_overlapping_paths_rejected(self):
        for update in ({'$set': {'a': 1}, '$inc': {'a': 1}},
                       {'$set': {'a': 1}, '$unset': {'a.b.c': ''}},
                       {'$set': {'a.b.c': 1, 'x': 2}, '$inc': {'a.b': 1}}):
            with self.subTest(update=update):
                with self.assertRaises(WriteError) as caught:
                    self.db.items.update_one({'_id': 1}, update)
                self.assertEqual(caught.exception.code, 40)
        self.assertEqual(self.db.items.find_one(1), {'_id': 1})

    def test_conflict_names_both_paths(self):
        with self.assertRaises(WriteError) as caught:
            self.db.items.update_one(
                {'_id': 1}, {'$set': {'a.b': 1}, '$inc': {'a': 1}})
        self.assertIn("Updating the path 'a.b' would create a conflict "
                      "at 'a'", str(caught.exception))

    def test_similar_paths_accepted(self):
        update = {'$set': {'a': 1, 'ab': 2, 'b.c': 3, 'b.cd': 4}}
        self.db.items.update_one({'_id': 1}, update)
        self.assertEqual(self.db.items.find_one(1), {
            '_id': 1, 'a': 1, 'ab': 2, 'b': {'c': 3, 'cd': 4}})


class DocumentLimitTest(unittest.TestCase):
    """Limits on stored documents."""

    def setUp(self):
        self.db = connect('sqlite://', 'test')

    def test_nested_dollar_field_rejected(self):
        with self.assertRaises(InvalidDocument):
            self.db.items.insert_one({'a': {'$b': 1}})
        with self.assertRaises(InvalidDocument):
            self.db.items.insert_one({'a': [{'$b': 1}]})

    def test_set_creating_dollar_field_rejected(self):
        self.db.items.insert_one({'_id': 1})
        with self.assertRaises(InvalidDocument):
            self.db.items.update_one({'_id': 1}, {'$set': {'a': {'$b': 1}}})

    def test_document_too_large(self):
        with self.assertRaises(DocumentTooLarge):
            self.db.items.insert_one({'blob': b'x' * (16 * 1024 * 1024)})

    def test_integer_overflow(self):
        with self.assertRaises(OverflowError):
            self.db.items.insert_one({'n': 2 ** 64})

    def test_inc_overflow(self):
        self.db.items.insert_one({'_id': 1, 'n': 2 ** 63 - 1})
        with self.assertRaises(WriteError):
            self.db.items.update_one({'_id': 1}, {'$inc': {'n': 1}})

    def test_invalid_collection_names(self):
        for name in ('', 'a..b', '.a', 'a$b'):
            with self.subTest(name=name):
                with self.assertRaises(InvalidName):
                    self.db[name]


class CursorTest(unittest.TestCase):
    """Cursor helpers beyond iteration."""

    def setUp(self):
        self.db = connect('sqlite://', 'test')
        self.db.items.insert_many([{'_id': number} for number in range(5)])

    def test_to_list(self):
        cursor = self.db.items.find()
        self.assertEqual(len(cursor.to_list(2)), 2)
        self.assertEqual(len(cursor.to_list()), 3)

    def test_rewind_runs_again(self):
        cursor = self.db.items.find()
        list(cursor)
        self.db.items.insert_one({'_id': 5})
        self.assertEqual(len(list(cursor.rewind())), 6)

    def test_clone_keeps_options(self):
        cursor = self.db.items.find().sort('_id', -1).limit(2)
        self.assertEqual([item['_id'] for item in cursor.clone()], [4, 3])

    def test_close_drops_results(self):
        with self.db.items.find() as cursor:
            next(cursor)
        self.assertEqual(list(cursor), [])

    def test_write_between_next_calls(self):
        cursor = self.db.items.find()
        next(cursor)
        self.db.items.delete_many({})
        self.assertEqual(len(list(cursor)), 4)

    def test_estimated_document_count(self):
        self.assertEqual(self.db.items.estimated_document_count(), 5)
        self.assertEqual(self.db.missing.estimated_document_count(), 0)


class DatabaseObjectTest(unittest.TestCase):
    """Database and Collection objects themselves."""

    def test_equality(self):
        db = connect('sqlite://')
        self.assertEqual(db.items, db['items'])
        self.assertNotEqual(db.items, db.other)
        self.assertEqual(db.items.full_name, 'pyforge.items')
        self.assertIs(db.items.database, db)

    def test_truth_value_rejected(self):
        db = connect('sqlite://')
        with self.assertRaises(NotImplementedError):
            bool(db)
        with self.assertRaises(NotImplementedError):
            bool(db.items)

    def test_invalid_database_name(self):
        with self.assertRaises(InvalidName):
            connect('sqlite://', 'a.b')

    def test_closed_memory_store_rejected(self):
        db = connect('sqlite://')
        db.close()
        with self.assertRaises(InvalidOperation):
            db.items.find_one()

    def test_memory_store_rejected_after_fork(self):
        db = connect('sqlite://')
        child = os.fork()
        if child == 0:
            # The child must never return into the test runner.
            try:
                db.items.find_one()
            except InvalidOperation:
                os._exit(0)
            finally:
                os._exit(1)
        _, status = os.waitpid(child, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

"""Conformance of indexes and of the Database API.

Each test runs on the SQLite store (in memory and in a file) and on
mongomock, and expects the same results from all three.
"""

import unittest

from pymongo.errors import (
    DuplicateKeyError, OperationFailure, WriteError)

from tests.lib.store.support import (
    FileBackend, MemoryBackend, MongomockBackend, mongomock_differs)


class IndexCases:
    """create_index, unique indexes, index_information and drop_index."""

    def test_create_index_names(self):
        self.assertEqual(self.db.items.create_index('name'), 'name_1')
        self.assertEqual(
            self.db.items.create_index([('a', 1), ('b', -1)]), 'a_1_b_-1')
        self.assertEqual(
            self.db.items.create_index('c', name='by_c'), 'by_c')

    def test_create_index_twice(self):
        self.db.items.create_index('name', unique=True)
        self.assertEqual(
            self.db.items.create_index('name', unique=True), 'name_1')
        self.assertEqual(len(self.db.items.index_information()), 2)

    def test_index_information(self):
        self.db.items.create_index('name', unique=True)
        self.db.items.create_index([('a', 1), ('b', -1)])
        information = self.db.items.index_information()
        self.assertEqual(information['_id_']['key'], [('_id', 1)])
        self.assertEqual(information['name_1']['key'], [('name', 1)])
        self.assertTrue(information['name_1']['unique'])
        self.assertEqual(information['a_1_b_-1']['key'],
                         [('a', 1), ('b', -1)])
        self.assertNotIn('unique', information['a_1_b_-1'])

    def test_unique_rejects_insert(self):
        self.db.items.create_index('name', unique=True)
        self.db.items.insert_one({'name': 'a'})
        with self.assertRaises(DuplicateKeyError) as caught:
            self.db.items.insert_one({'name': 'a'})
        self.assertEqual(caught.exception.code, 11000)
        self.assertEqual(self.db.items.count_documents({}), 1)

    def test_unique_rejects_update(self):
        self.db.items.create_index('name', unique=True)
        self.db.items.insert_many([{'_id': 1, 'name': 'a'},
                                   {'_id': 2, 'name': 'b'}])
        with self.assertRaises(DuplicateKeyError):
            self.db.items.update_one({'_id': 2}, {'$set': {'name': 'a'}})
        self.assertEqual(self.db.items.find_one(2)['name'], 'b')

    def test_unique_allows_update_of_same_document(self):
        self.db.items.create_index('name', unique=True)
        self.db.items.insert_one({'_id': 1, 'name': 'a', 'n': 1})
        self.db.items.update_one({'_id': 1}, {'$inc': {'n': 1}})
        self.assertEqual(self.db.items.find_one(1)['n'], 2)

    def test_unique_missing_field_once(self):
        self.db.items.create_index('email', unique=True)
        self.db.items.insert_one({'_id': 1})
        with self.assertRaises(DuplicateKeyError):
            self.db.items.insert_one({'_id': 2})
        with self.assertRaises(DuplicateKeyError):
            self.db.items.insert_one({'_id': 3, 'email': None})

    def test_unique_compound(self):
        self.db.items.create_index([('a', 1), ('b', 1)], unique=True)
        self.db.items.insert_many([{'a': 1, 'b': 1}, {'a': 1, 'b': 2}])
        with self.assertRaises(DuplicateKeyError):
            self.db.items.insert_one({'a': 1, 'b': 2})

    def test_unique_numbers_across_types(self):
        self.db.items.create_index('n', unique=True)
        self.db.items.insert_one({'n': 1})
        with self.assertRaises(DuplicateKeyError):
            self.db.items.insert_one({'n': 1.0})

    @mongomock_differs('does not index array elements in unique indexes')
    def test_unique_multikey(self):
        self.db.items.create_index('tags', unique=True)
        self.db.items.insert_one({'tags': ['a', 'b', 'b']})
        with self.assertRaises(DuplicateKeyError):
            self.db.items.insert_one({'tags': ['c', 'b']})
        self.db.items.insert_one({'tags': ['c']})
        self.assertEqual(self.db.items.count_documents({}), 2)

    def test_unique_index_over_duplicates(self):
        self.db.items.insert_many([{'name': 'a'}, {'name': 'a'}])
        with self.assertRaises(DuplicateKeyError):
            self.db.items.create_index('name', unique=True)
        self.assertNotIn('name_1', self.db.items.index_information())

    @mongomock_differs('indexes parallel arrays, MongoDB WriteError 171')
    def test_parallel_arrays_rejected(self):
        self.db.items.create_index([('a', 1), ('b', 1)])
        with self.assertRaises(WriteError) as caught:
            self.db.items.insert_one({'a': [1, 2], 'b': [3, 4]})
        self.assertEqual(caught.exception.code, 171)

    def test_indexed_queries_match_unindexed(self):
        documents = [
            {'_id': 1, 'a': 1, 'b': 'x', 'tags': ['p', 'q']},
            {'_id': 2, 'a': 1.0, 'b': 'y', 'tags': []},
            {'_id': 3, 'a': None, 'b': 'x'},
            {'_id': 4, 'b': 'z', 'tags': 'p', 'sub': {'c': 1}},
            {'_id': 5, 'a': [1, 2], 'sub': [{'c': 1}, {'c': 2}]},
        ]
        queries = [
            {'a': 1}, {'a': None}, {'a': {'$in': [2, None]}}, {'b': 'x'},
            {'a': 1, 'b': 'x'}, {'tags': 'p'}, {'sub.c': 1},
            {'a': {'$eq': 2}}, {'$and': [{'a': 1}, {'b': 'y'}]},
            {'tags': []}, {'a': [1, 2]}, {'a': {'$in': []}},
        ]
        self.db.items.insert_many(documents)
        expected = [sorted(self.db.items.distinct('_id', query))
                    for query in queries]
        self.db.items.create_index('a')
        self.db.items.create_index([('a', 1), ('b', 1)])
        self.db.items.create_index('tags')
        self.db.items.create_index('sub.c')
        for query, ids in zip(queries, expected):
            with self.subTest(query=query):
                found = sorted(self.db.items.distinct('_id', query))
                self.assertEqual(found, ids)

    def test_drop_index_by_name(self):
        self.db.items.insert_one({'name': 'a'})
        self.db.items.create_index('name')
        self.db.items.drop_index('name_1')
        self.assertEqual(list(self.db.items.index_information()), ['_id_'])

    def test_drop_index_by_keys(self):
        self.db.items.insert_one({'a': 1})
        self.db.items.create_index([('a', 1), ('b', -1)])
        self.db.items.drop_index([('a', 1), ('b', -1)])
        self.assertEqual(list(self.db.items.index_information()), ['_id_'])

    def test_drop_index_keeps_unique_off(self):
        self.db.items.create_index('name', unique=True)
        self.db.items.drop_index('name_1')
        self.db.items.insert_many([{'name': 'a'}, {'name': 'a'}])
        self.assertEqual(self.db.items.count_documents({'name': 'a'}), 2)

    @mongomock_differs('reports index not found, MongoDB code 72')
    def test_drop_id_index_rejected(self):
        self.db.items.insert_one({})
        with self.assertRaises(OperationFailure) as caught:
            self.db.items.drop_index('_id_')
        self.assertEqual(caught.exception.code, 72)

    def test_drop_missing_index(self):
        self.db.items.insert_one({})
        with self.assertRaises(OperationFailure):
            self.db.items.drop_index('nope_1')

    def test_same_name_other_keys_rejected(self):
        self.db.items.create_index('a', name='custom')
        with self.assertRaises(OperationFailure):
            self.db.items.create_index('b', name='custom')


class DatabaseCases:
    """Database: collections by item, attribute and name; drops."""

    def test_item_and_attribute_access(self):
        self.db['items'].insert_one({'_id': 1})
        self.assertEqual(self.db.items.find_one(1), {'_id': 1})
        self.assertEqual(self.db.get_collection('items').find_one(1),
                         {'_id': 1})
        self.assertEqual(self.db.items.name, 'items')

    def test_underscore_attribute_rejected(self):
        with self.assertRaises(AttributeError):
            self.db._private

    def test_name(self):
        self.assertEqual(self.db.name, 'test')

    def test_list_collection_names(self):
        self.assertEqual(self.db.list_collection_names(), [])
        self.db.b.insert_one({})
        self.db.a.create_index('x')
        self.assertEqual(sorted(self.db.list_collection_names()), ['a', 'b'])

    def test_drop_collection(self):
        self.db.items.insert_one({'_id': 1})
        self.db.items.create_index('name', unique=True)
        self.db.drop_collection('items')
        self.assertEqual(self.db.list_collection_names(), [])
        self.assertIsNone(self.db.items.find_one(1))
        self.db.items.insert_many([{'name': 'a'}, {'name': 'a'}])
        self.assertEqual(self.db.items.count_documents({}), 2)

    def test_collection_drop(self):
        self.db.items.insert_one({})
        self.db.items.drop()
        self.assertEqual(self.db.list_collection_names(), [])

    def test_drop_missing_collection(self):
        self.db.drop_collection('nothing')
        self.assertEqual(self.db.list_collection_names(), [])

    def test_collections_independent(self):
        self.db.a.insert_one({'_id': 1, 'v': 'a'})
        self.db.b.insert_one({'_id': 1, 'v': 'b'})
        self.assertEqual(self.db.a.find_one(1)['v'], 'a')
        self.assertEqual(self.db.b.find_one(1)['v'], 'b')


class MemoryIndexTest(IndexCases, MemoryBackend, unittest.TestCase):
    pass


class FileIndexTest(IndexCases, FileBackend, unittest.TestCase):
    pass


class MongomockIndexTest(IndexCases, MongomockBackend, unittest.TestCase):
    pass


class MemoryDatabaseTest(DatabaseCases, MemoryBackend, unittest.TestCase):
    pass


class FileDatabaseTest(DatabaseCases, FileBackend, unittest.TestCase):
    pass


class MongomockDatabaseTest(DatabaseCases, MongomockBackend,
                            unittest.TestCase):
    pass

"""Conformance of inserts, filters, projections, sorts and counts.

Each test runs on the SQLite store (in memory and in a file) and on
mongomock, and expects the same results from all three.
"""

import datetime
import unittest

from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo.errors import (
    BulkWriteError, DuplicateKeyError, InvalidOperation, OperationFailure,
    WriteError)

from tests.lib.store.support import (
    FileBackend, MemoryBackend, MongomockBackend, mongomock_differs)


class InsertCases:
    """insert_one and insert_many."""

    def test_insert_one_adds_object_id(self):
        document = {'name': 'alpha'}
        result = self.db.items.insert_one(document)
        self.assertIsInstance(document['_id'], ObjectId)
        self.assertEqual(result.inserted_id, document['_id'])
        self.assertTrue(result.acknowledged)

    def test_insert_one_keeps_given_id(self):
        result = self.db.items.insert_one({'_id': 'a', 'n': 1})
        self.assertEqual(result.inserted_id, 'a')
        self.assertEqual(self.db.items.find_one('a'), {'_id': 'a', 'n': 1})

    def test_insert_one_duplicate_id(self):
        self.db.items.insert_one({'_id': 1})
        with self.assertRaises(DuplicateKeyError) as caught:
            self.db.items.insert_one({'_id': 1})
        self.assertEqual(caught.exception.code, 11000)

    def test_numeric_ids_equal_across_types(self):
        self.db.items.insert_one({'_id': 1})
        with self.assertRaises(DuplicateKeyError):
            self.db.items.insert_one({'_id': 1.0})
        self.db.items.insert_one({'_id': '1'})
        self.assertEqual(self.db.items.count_documents({}), 2)
        self.assertEqual(self.db.items.find_one(1.0), {'_id': 1})
        self.assertEqual(self.db.items.find_one(Int64(1)), {'_id': 1})

    def test_insert_one_rejects_non_document(self):
        with self.assertRaises(TypeError):
            self.db.items.insert_one(['not', 'a', 'document'])

    def test_insert_one_rejects_set(self):
        with self.assertRaises(InvalidDocument):
            self.db.items.insert_one({'tags': {'a', 'b'}})

    def test_insert_one_rejects_dollar_field(self):
        with self.assertRaises(InvalidDocument):
            self.db.items.insert_one({'$name': 1})

    @mongomock_differs('raises TypeError (unhashable list), not WriteError')
    def test_insert_one_rejects_array_id(self):
        with self.assertRaises(WriteError):
            self.db.items.insert_one({'_id': [1, 2]})

    def test_datetime_keeps_milliseconds(self):
        moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
        self.db.items.insert_one({'_id': 1, 'at': moment})
        stored = self.db.items.find_one(1)['at']
        self.assertEqual(stored, moment.replace(microsecond=123000))

    def test_insert_many_returns_ids_in_order(self):
        result = self.db.items.insert_many([{'_id': 3}, {'_id': 1}, {}])
        self.assertEqual(result.inserted_ids[:2], [3, 1])
        self.assertIsInstance(result.inserted_ids[2], ObjectId)
        self.assertEqual(self.db.items.count_documents({}), 3)

    def test_insert_many_ordered_stops_at_error(self):
        self.db.items.insert_one({'_id': 2})
        with self.assertRaises(BulkWriteError) as caught:
            self.db.items.insert_many([{'_id': 1}, {'_id': 2}, {'_id': 3}])
        details = caught.exception.details
        self.assertEqual(details['nInserted'], 1)
        self.assertEqual(details['writeErrors'][0]['index'], 1)
        self.assertEqual(details['writeErrors'][0]['code'], 11000)
        self.assertEqual(sorted(self.db.items.distinct('_id')), [1, 2])

    def test_insert_many_unordered_continues(self):
        self.db.items.insert_one({'_id': 2})
        with self.assertRaises(BulkWriteError) as caught:
            self.db.items.insert_many(
                [{'_id': 1}, {'_id': 2}, {'_id': 3}], ordered=False)
        self.assertEqual(caught.exception.details['nInserted'], 2)
        self.assertEqual(sorted(self.db.items.distinct('_id')), [1, 2, 3])

    def test_insert_many_rejects_empty_list(self):
        with self.assertRaises(TypeError):
            self.db.items.insert_many([])


class FilterCases:
    """find() filters: equality, dotted paths, arrays and operators."""

    def setUp(self):
        super().setUp()
        self.db.items.insert_many([
            {'_id': 1, 'name': 'alpha', 'n': 1, 'tags': ['x', 'y'],
             'owner': {'name': 'ann', 'age': 30}},
            {'_id': 2, 'name': 'beta', 'n': 2.5, 'tags': ['y'],
             'owner': {'name': 'bob', 'age': 40}},
            {'_id': 3, 'name': 'gamma', 'n': None, 'tags': [],
             'items': [{'sku': 'a', 'qty': 1}, {'sku': 'b', 'qty': 5}]},
            {'_id': 4, 'name': 'delta', 'n': '2',
             'items': [{'sku': 'c', 'qty': 2}]},
            {'_id': 5, 'name': 'epsilon', 'n': True},
        ])

    def ids(self, query, **options):
        return [item['_id'] for item in self.db.items.find(query, **options)]

    def test_empty_filter_natural_order(self):
        self.assertEqual(self.ids({}), [1, 2, 3, 4, 5])
        self.assertEqual(self.ids(None), [1, 2, 3, 4, 5])

    def test_equality_top_level(self):
        self.assertEqual(self.ids({'name': 'beta'}), [2])

    def test_equality_dotted_field(self):
        self.assertEqual(self.ids({'owner.name': 'ann'}), [1])

    def test_equality_scalar_in_array(self):
        self.assertEqual(self.ids({'tags': 'y'}), [1, 2])

    def test_equality_whole_array(self):
        self.assertEqual(self.ids({'tags': ['x', 'y']}), [1])
        self.assertEqual(self.ids({'tags': ['y', 'x']}), [])

    def test_equality_through_array_of_documents(self):
        self.assertEqual(self.ids({'items.sku': 'b'}), [3])

    def test_equality_array_position(self):
        self.assertEqual(self.ids({'tags.0': 'y'}), [2])
        self.assertEqual(self.ids({'items.1.qty': 5}), [3])

    @mongomock_differs('ignores field order when comparing documents')
    def test_equality_embedded_document_order_matters(self):
        self.assertEqual(self.ids({'owner': {'name': 'ann', 'age': 30}}), [1])
        self.assertEqual(self.ids({'owner': {'age': 30, 'name': 'ann'}}), [])

    def test_null_matches_missing_and_null(self):
        self.assertEqual(self.ids({'n': None}), [3])
        self.assertEqual(self.ids({'owner': None}), [3, 4, 5])

    @mongomock_differs('does not compare Decimal128 with int or float')
    def test_numbers_equal_across_types(self):
        self.db.items.insert_many([
            {'_id': 6, 'n': 7}, {'_id': 7, 'n': 7.0},
            {'_id': 8, 'n': Int64(7)}, {'_id': 9, 'n': Decimal128('7')}])
        self.assertEqual(self.ids({'n': 7}), [6, 7, 8, 9])

    @mongomock_differs('matches True against 1, as Python compares')
    def test_number_differs_from_string_and_bool(self):
        self.assertEqual(self.ids({'n': 1}), [1])
        self.assertEqual(self.ids({'n': '2'}), [4])
        self.assertEqual(self.ids({'n': True}), [5])

    def test_eq_operator(self):
        self.assertEqual(self.ids({'name': {'$eq': 'gamma'}}), [3])

    def test_ne_includes_missing(self):
        self.assertEqual(self.ids({'tags': {'$ne': 'y'}}), [3, 4, 5])

    def test_in(self):
        self.assertEqual(self.ids({'name': {'$in': ['beta', 'delta']}}),
                         [2, 4])
        self.assertEqual(self.ids({'tags': {'$in': ['x', 'z']}}), [1])

    def test_in_with_null_matches_missing(self):
        self.assertEqual(self.ids({'owner': {'$in': [None]}}), [3, 4, 5])

    def test_nin(self):
        self.assertEqual(self.ids({'tags': {'$nin': ['y']}}), [3, 4, 5])

    def test_in_requires_array(self):
        with self.assertRaises(OperationFailure):
            self.ids({'name': {'$in': 'beta'}})

    def test_exists(self):
        self.assertEqual(self.ids({'owner': {'$exists': True}}), [1, 2])
        self.assertEqual(self.ids({'items': {'$exists': False}}),
                         [1, 2, 5])
        self.assertEqual(self.ids({'n': {'$exists': True}}),
                         [1, 2, 3, 4, 5])

    def test_exists_dotted(self):
        self.assertEqual(self.ids({'owner.age': {'$exists': True}}), [1, 2])

    def test_comparisons_same_type_only(self):
        self.assertEqual(self.ids({'n': {'$gt': 1}}), [2])
        self.assertEqual(self.ids({'n': {'$gte': 1}}), [1, 2])
        self.assertEqual(self.ids({'n': {'$lt': 2.5}}), [1])
        self.assertEqual(self.ids({'n': {'$lte': 2.5}}), [1, 2])
        self.assertEqual(self.ids({'n': {'$gte': '1'}}), [4])

    def test_comparison_range(self):
        self.assertEqual(self.ids({'owner.age': {'$gt': 30, '$lte': 40}}),
                         [2])

    def test_comparison_any_array_element(self):
        self.assertEqual(self.ids({'items.qty': {'$gt': 4}}), [3])
        self.assertEqual(self.ids({'items.qty': {'$lt': 2}}), [3])

    def test_comparison_dates(self):
        start = datetime.datetime(2024, 1, 1)
        self.db.events.insert_many([
            {'_id': day, 'at': start + datetime.timedelta(days=day)}
            for day in range(5)])
        found = self.db.events.find(
            {'at': {'$gte': start + datetime.timedelta(days=3)}})
        self.assertEqual([item['_id'] for item in found], [3, 4])

    def test_and(self):
        query = {'$and': [{'tags': 'y'}, {'n': {'$gt': 2}}]}
        self.assertEqual(self.ids(query), [2])

    def test_or(self):
        query = {'$or': [{'name': 'alpha'}, {'items.sku': 'c'}]}
        self.assertEqual(self.ids(query), [1, 4])

    def test_nested_logical(self):
        query = {'$or': [
            {'$and': [{'tags': 'x'}, {'n': 1}]}, {'name': 'epsilon'}]}
        self.assertEqual(self.ids(query), [1, 5])

    def test_and_rejects_empty_array(self):
        with self.assertRaises(OperationFailure):
            self.ids({'$and': []})

    def test_unknown_operator(self):
        with self.assertRaises(OperationFailure):
            self.ids({'name': {'$foo': 1}})

    def test_unknown_top_level_operator(self):
        with self.assertRaises(OperationFailure):
            self.ids({'$foo': [{'name': 'alpha'}]})

    def test_find_one_by_plain_id(self):
        self.assertEqual(self.db.items.find_one(2)['name'], 'beta')

    def test_find_one_missing_returns_none(self):
        self.assertIsNone(self.db.items.find_one({'name': 'omega'}))
        self.assertIsNone(self.db.missing.find_one())

    def test_find_one_with_filter(self):
        self.assertEqual(self.db.items.find_one({'tags': 'y'})['_id'], 1)

    def test_find_rejects_non_mapping_filter(self):
        with self.assertRaises(TypeError):
            self.db.items.find(['name'])

    def test_count_documents(self):
        self.assertEqual(self.db.items.count_documents({}), 5)
        self.assertEqual(self.db.items.count_documents({'tags': 'y'}), 2)
        self.assertEqual(self.db.missing.count_documents({}), 0)

    def test_count_documents_skip_limit(self):
        self.assertEqual(self.db.items.count_documents({}, skip=1), 4)
        self.assertEqual(self.db.items.count_documents({}, limit=2), 2)
        self.assertEqual(
            self.db.items.count_documents({}, skip=4, limit=2), 1)

    def test_distinct(self):
        self.assertEqual(sorted(self.db.items.distinct('tags')), ['x', 'y'])
        self.assertEqual(sorted(self.db.items.distinct('items.sku')),
                         ['a', 'b', 'c'])
        self.assertEqual(self.db.items.distinct('name', {'tags': 'x'}),
                         ['alpha'])

    def test_distinct_numbers_once(self):
        self.db.numbers.insert_many([{'v': 1}, {'v': 1.0}, {'v': 2}])
        self.assertEqual(sorted(self.db.numbers.distinct('v')), [1, 2])


class ProjectionCases:
    """find() projections."""

    def setUp(self):
        super().setUp()
        self.db.items.insert_one({
            '_id': 1, 'name': 'alpha', 'owner': {'name': 'ann', 'age': 30},
            'items': [{'sku': 'a', 'qty': 1}, {'sku': 'b', 'qty': 5}]})

    def test_inclusion(self):
        found = self.db.items.find_one({}, {'name': 1})
        self.assertEqual(found, {'_id': 1, 'name': 'alpha'})

    def test_inclusion_list(self):
        found = self.db.items.find_one({}, ['name'])
        self.assertEqual(found, {'_id': 1, 'name': 'alpha'})

    def test_inclusion_without_id(self):
        found = self.db.items.find_one({}, {'name': 1, '_id': 0})
        self.assertEqual(found, {'name': 'alpha'})

    def test_exclusion(self):
        found = self.db.items.find_one({}, {'items': 0, 'owner': 0})
        self.assertEqual(found, {'_id': 1, 'name': 'alpha'})

    def test_dotted_inclusion(self):
        found = self.db.items.find_one({}, {'owner.name': 1, 'items.sku': 1})
        self.assertEqual(found, {
            '_id': 1, 'owner': {'name': 'ann'},
            'items': [{'sku': 'a'}, {'sku': 'b'}]})

    def test_dotted_exclusion(self):
        found = self.db.items.find_one({}, {'owner.age': 0, 'items.qty': 0})
        self.assertEqual(found['owner'], {'name': 'ann'})
        self.assertEqual(found['items'], [{'sku': 'a'}, {'sku': 'b'}])

    def test_only_id(self):
        self.assertEqual(self.db.items.find_one({}, {'_id': 1}), {'_id': 1})

    def test_empty_projection_returns_all(self):
        self.assertEqual(len(self.db.items.find_one({}, {})), 4)

    @mongomock_differs('raises ValueError, MongoDB OperationFailure')
    def test_mixed_projection_rejected(self):
        with self.assertRaises(OperationFailure):
            self.db.items.find_one({}, {'name': 1, 'owner': 0})


class SortCases:
    """Cursor sort, skip and limit."""

    def setUp(self):
        super().setUp()
        self.db.items.insert_many([
            {'_id': 1, 'n': 3, 'group': 'b'},
            {'_id': 2, 'n': 1, 'group': 'a'},
            {'_id': 3, 'group': 'a'},
            {'_id': 4, 'n': 2, 'group': 'b'},
            {'_id': 5, 'n': 'text', 'group': 'a'},
        ])

    def ids(self, cursor):
        return [item['_id'] for item in cursor]

    def test_sort_ascending_by_type_then_value(self):
        cursor = self.db.items.find().sort('n', 1)
        self.assertEqual(self.ids(cursor), [3, 2, 4, 1, 5])

    def test_sort_descending(self):
        cursor = self.db.items.find().sort('n', -1)
        self.assertEqual(self.ids(cursor), [5, 1, 4, 2, 3])

    def test_sort_compound(self):
        cursor = self.db.items.find(sort=[('group', 1), ('n', -1)])
        self.assertEqual(self.ids(cursor), [5, 2, 3, 1, 4])

    @mongomock_differs('sorts arrays by their first element')
    def test_sort_array_by_min_and_max(self):
        self.db.lists.insert_many([
            {'_id': 'a', 'v': [1, 9]}, {'_id': 'b', 'v': [5]},
            {'_id': 'c', 'v': 3}])
        ascending = self.db.lists.find().sort('v', 1)
        self.assertEqual(self.ids(ascending), ['a', 'c', 'b'])
        descending = self.db.lists.find().sort('v', -1)
        self.assertEqual(self.ids(descending), ['a', 'b', 'c'])

    def test_skip_and_limit(self):
        cursor = self.db.items.find().sort('_id', 1).skip(1).limit(2)
        self.assertEqual(self.ids(cursor), [2, 3])

    def test_skip_and_limit_arguments(self):
        cursor = self.db.items.find(sort=[('_id', -1)], skip=1, limit=2)
        self.assertEqual(self.ids(cursor), [4, 3])

    def test_limit_zero_means_no_limit(self):
        self.assertEqual(len(list(self.db.items.find().limit(0))), 5)

    @mongomock_differs('lets sort() change a cursor already iterated')
    def test_sort_after_iteration_rejected(self):
        cursor = self.db.items.find()
        next(cursor)
        with self.assertRaises(InvalidOperation):
            cursor.sort('n')

    @mongomock_differs('accepts a negative skip, which pymongo rejects')
    def test_negative_skip_rejected(self):
        with self.assertRaises(ValueError):
            self.db.items.find().skip(-1)

    @mongomock_differs('accepts a limit of any type; pymongo checks it')
    def test_limit_type_checked(self):
        with self.assertRaises(TypeError):
            self.db.items.find().limit('2')

    @mongomock_differs('accepts any direction, MongoDB raises')
    def test_invalid_sort_direction(self):
        with self.assertRaises(OperationFailure):
            list(self.db.items.find().sort('n', 2))


class MemoryInsertTest(InsertCases, MemoryBackend, unittest.TestCase):
    pass


class FileInsertTest(InsertCases, FileBackend, unittest.TestCase):
    pass


class MongomockInsertTest(InsertCases, MongomockBackend, unittest.TestCase):
    pass


class MemoryFilterTest(FilterCases, MemoryBackend, unittest.TestCase):
    pass


class FileFilterTest(FilterCases, FileBackend, unittest.TestCase):
    pass


class MongomockFilterTest(FilterCases, MongomockBackend, unittest.TestCase):
    pass


class MemoryProjectionTest(ProjectionCases, MemoryBackend, unittest.TestCase):
    pass


class FileProjectionTest(ProjectionCases, FileBackend, unittest.TestCase):
    pass


class MongomockProjectionTest(ProjectionCases, MongomockBackend,
                              unittest.TestCase):
    pass


class MemorySortTest(SortCases, MemoryBackend, unittest.TestCase):
    pass


class FileSortTest(SortCases, FileBackend, unittest.TestCase):
    pass


class MongomockSortTest(SortCases, MongomockBackend, unittest.TestCase):
    pass

"""Conformance of updates, replacements, upserts and deletes.

Each test runs on the SQLite store (in memory and in a file) and on
mongomock, and expects the same results from all three.
"""

import unittest

from bson.objectid import ObjectId
from pymongo.collection import ReturnDocument
from pymongo.errors import WriteError

from tests.lib.store.support import (
    FileBackend, MemoryBackend, MongomockBackend, mongomock_differs)


class UpdateOperatorCases:
    """update_one and update_many with each update operator."""

    def setUp(self):
        super().setUp()
        self.items = self.db.items
        self.items.insert_many([
            {'_id': 1, 'name': 'alpha', 'n': 1, 'tags': ['x']},
            {'_id': 2, 'name': 'beta', 'n': 2.5, 'tags': ['x', 'y']},
            {'_id': 3, 'name': 'gamma', 'text': 'abc'},
        ])

    def test_set_top_level(self):
        result = self.items.update_one({'_id': 1}, {'$set': {'name': 'A'}})
        self.assertEqual(result.matched_count, 1)
        self.assertEqual(result.modified_count, 1)
        self.assertIsNone(result.upserted_id)
        self.assertEqual(self.items.find_one(1)['name'], 'A')

    def test_set_dotted_creates_documents(self):
        self.items.update_one({'_id': 1}, {'$set': {'meta.a.b': 5}})
        self.assertEqual(self.items.find_one(1)['meta'], {'a': {'b': 5}})

    def test_set_array_position(self):
        self.items.update_one({'_id': 2}, {'$set': {'tags.1': 'z'}})
        self.assertEqual(self.items.find_one(2)['tags'], ['x', 'z'])

    def test_set_same_value_not_modified(self):
        result = self.items.update_one({'_id': 1}, {'$set': {'n': 1}})
        self.assertEqual(result.matched_count, 1)
        self.assertEqual(result.modified_count, 0)

    def test_no_match(self):
        result = self.items.update_one({'_id': 9}, {'$set': {'n': 1}})
        self.assertEqual(result.matched_count, 0)
        self.assertEqual(result.modified_count, 0)

    def test_update_many_counts(self):
        result = self.items.update_many(
            {'tags': 'x'}, {'$set': {'seen': True}})
        self.assertEqual(result.matched_count, 2)
        self.assertEqual(result.modified_count, 2)
        self.assertEqual(self.items.count_documents({'seen': True}), 2)

    def test_update_one_changes_first_match(self):
        self.items.update_one({'tags': 'x'}, {'$set': {'seen': True}})
        self.assertEqual(self.items.distinct('_id', {'seen': True}), [1])

    def test_unset(self):
        self.items.update_one({'_id': 1}, {'$unset': {'tags': ''}})
        self.assertNotIn('tags', self.items.find_one(1))

    def test_unset_missing_field_not_modified(self):
        result = self.items.update_one({'_id': 1}, {'$unset': {'nope': 1}})
        self.assertEqual(result.modified_count, 0)

    def test_inc(self):
        self.items.update_one({'_id': 1}, {'$inc': {'n': 2}})
        self.items.update_one({'_id': 2}, {'$inc': {'n': -0.5}})
        self.assertEqual(self.items.find_one(1)['n'], 3)
        self.assertEqual(self.items.find_one(2)['n'], 2.0)

    def test_inc_missing_field(self):
        self.items.update_one({'_id': 3}, {'$inc': {'stats.views': 1}})
        self.assertEqual(self.items.find_one(3)['stats'], {'views': 1})

    @mongomock_differs('raises TypeError, MongoDB WriteError code 14')
    def test_inc_non_number_field(self):
        with self.assertRaises(WriteError) as caught:
            self.items.update_one({'_id': 3}, {'$inc': {'text': 1}})
        self.assertEqual(caught.exception.code, 14)

    @mongomock_differs('raises TypeError, MongoDB WriteError code 14')
    def test_inc_non_number_argument(self):
        with self.assertRaises(WriteError) as caught:
            self.items.update_one({'_id': 1}, {'$inc': {'n': 'x'}})
        self.assertEqual(caught.exception.code, 14)

    def test_push(self):
        self.items.update_one({'_id': 1}, {'$push': {'tags': 'x'}})
        self.assertEqual(self.items.find_one(1)['tags'], ['x', 'x'])

    def test_push_each(self):
        self.items.update_one(
            {'_id': 1}, {'$push': {'tags': {'$each': ['y', 'z']}}})
        self.assertEqual(self.items.find_one(1)['tags'], ['x', 'y', 'z'])

    def test_push_creates_array(self):
        self.items.update_one({'_id': 3}, {'$push': {'log.lines': 'a'}})
        self.assertEqual(self.items.find_one(3)['log'], {'lines': ['a']})

    @mongomock_differs('raises AttributeError, MongoDB WriteError')
    def test_push_non_array(self):
        with self.assertRaises(WriteError):
            self.items.update_one({'_id': 3}, {'$push': {'text': 'd'}})

    def test_add_to_set(self):
        self.items.update_one({'_id': 2}, {'$addToSet': {'tags': 'y'}})
        self.items.update_one({'_id': 2}, {'$addToSet': {'tags': 'z'}})
        self.assertEqual(self.items.find_one(2)['tags'], ['x', 'y', 'z'])

    @mongomock_differs('adds a value repeated inside $each twice')
    def test_add_to_set_each(self):
        self.items.update_one(
            {'_id': 1}, {'$addToSet': {'tags': {'$each': ['x', 'q', 'q']}}})
        self.assertEqual(self.items.find_one(1)['tags'], ['x', 'q'])

    @mongomock_differs('raises TypeError, MongoDB WriteError')
    def test_add_to_set_non_array(self):
        with self.assertRaises(WriteError):
            self.items.update_one({'_id': 3}, {'$addToSet': {'text': 'd'}})

    def test_pull_equality(self):
        self.items.update_one({'_id': 2}, {'$pull': {'tags': 'x'}})
        self.assertEqual(self.items.find_one(2)['tags'], ['y'])

    def test_pull_condition(self):
        self.items.insert_one({'_id': 4, 'scores': [1, 5, 8, 3]})
        self.items.update_one({'_id': 4}, {'$pull': {'scores': {'$gte': 5}}})
        self.assertEqual(self.items.find_one(4)['scores'], [1, 3])

    def test_pull_documents_by_query(self):
        self.items.insert_one({'_id': 4, 'lines': [
            {'sku': 'a', 'qty': 1}, {'sku': 'b', 'qty': 2}]})
        self.items.update_one({'_id': 4}, {'$pull': {'lines': {'sku': 'b'}}})
        self.assertEqual(self.items.find_one(4)['lines'],
                         [{'sku': 'a', 'qty': 1}])

    def test_set_on_insert_ignored_on_update(self):
        self.items.update_one(
            {'_id': 1}, {'$setOnInsert': {'created': True}}, upsert=True)
        self.assertNotIn('created', self.items.find_one(1))

    def test_mixed_operators_and_fields(self):
        with self.assertRaises(ValueError):
            self.items.update_one({'_id': 1}, {'name': 'x', '$set': {'n': 1}})
        with self.assertRaises(ValueError):
            self.items.update_one({'_id': 1}, {'$set': {'n': 1}, 'name': 'x'})

    def test_empty_update(self):
        with self.assertRaises(ValueError):
            self.items.update_one({'_id': 1}, {})

    @mongomock_differs('raises ValueError, MongoDB WriteError code 9')
    def test_unknown_update_operator(self):
        with self.assertRaises(WriteError) as caught:
            self.items.update_one({'_id': 1}, {'$foo': {'n': 'm'}})
        self.assertEqual(caught.exception.code, 9)

    def test_changing_id(self):
        with self.assertRaises(WriteError):
            self.items.update_one({'_id': 1}, {'$set': {'_id': 5}})
        self.assertEqual(self.items.find_one(1)['name'], 'alpha')

    @mongomock_differs('applies both operators, MongoDB WriteError code 40')
    def test_conflicting_paths(self):
        with self.assertRaises(WriteError) as caught:
            self.items.update_one(
                {'_id': 1}, {'$set': {'meta': {}}, '$inc': {'meta.n': 1}})
        self.assertEqual(caught.exception.code, 40)

    @mongomock_differs('raises TypeError, MongoDB WriteError code 14')
    def test_update_many_keeps_earlier_updates(self):
        self.items.insert_many([{'_id': 4, 'n': 'text'}, {'_id': 5, 'n': 5}])
        with self.assertRaises(WriteError):
            self.items.update_many({}, {'$inc': {'n': 1}})
        self.assertEqual(self.items.find_one(1)['n'], 2)
        self.assertEqual(self.items.find_one(3)['n'], 1)
        self.assertEqual(self.items.find_one(4)['n'], 'text')
        self.assertEqual(self.items.find_one(5)['n'], 5)

    def test_failed_update_leaves_document(self):
        with self.assertRaises(WriteError):
            self.items.update_one(
                {'_id': 1}, {'$set': {'name': 'changed', '_id': 7}})
        self.assertEqual(self.items.find_one(1)['name'], 'alpha')


class UpsertCases:
    """Upserts through update_one, update_many and replace_one."""

    def test_upsert_builds_from_filter(self):
        result = self.db.items.update_one(
            {'name': 'a', 'owner.id': 7, 'n': {'$gt': 1}, 'k': {'$eq': 2}},
            {'$set': {'extra': True}}, upsert=True)
        self.assertIsInstance(result.upserted_id, ObjectId)
        self.assertEqual(result.matched_count, 0)
        document = self.db.items.find_one(result.upserted_id)
        self.assertEqual(document, {
            '_id': result.upserted_id, 'name': 'a', 'owner': {'id': 7},
            'k': 2, 'extra': True})

    def test_upsert_uses_filter_id(self):
        result = self.db.items.update_one(
            {'_id': 'key'}, {'$inc': {'n': 1}}, upsert=True)
        self.assertEqual(result.upserted_id, 'key')
        self.assertEqual(self.db.items.find_one('key'), {'_id': 'key', 'n': 1})

    def test_upsert_applies_set_on_insert(self):
        self.db.items.update_one(
            {'_id': 1}, {'$setOnInsert': {'created': 1}, '$inc': {'n': 1}},
            upsert=True)
        self.db.items.update_one(
            {'_id': 1}, {'$setOnInsert': {'created': 2}, '$inc': {'n': 1}},
            upsert=True)
        self.assertEqual(self.db.items.find_one(1),
                         {'_id': 1, 'created': 1, 'n': 2})

    def test_upsert_many_inserts_one(self):
        result = self.db.items.update_many(
            {'kind': 'x'}, {'$set': {'v': 1}}, upsert=True)
        self.assertIsNotNone(result.upserted_id)
        self.assertEqual(self.db.items.count_documents({'kind': 'x'}), 1)

    def test_replace_one(self):
        self.db.items.insert_one({'_id': 1, 'a': 1, 'b': 2})
        result = self.db.items.replace_one({'a': 1}, {'c': 3})
        self.assertEqual(result.matched_count, 1)
        self.assertEqual(result.modified_count, 1)
        self.assertEqual(self.db.items.find_one(1), {'_id': 1, 'c': 3})

    def test_replace_one_upsert(self):
        result = self.db.items.replace_one(
            {'_id': 5}, {'name': 'new'}, upsert=True)
        self.assertEqual(result.upserted_id, 5)
        self.assertEqual(self.db.items.find_one(5), {'_id': 5, 'name': 'new'})

    def test_replace_one_rejects_operators(self):
        with self.assertRaises(ValueError):
            self.db.items.replace_one({'_id': 1}, {'$set': {'a': 1}})

    @mongomock_differs('raises OperationFailure, MongoDB WriteError')
    def test_replace_one_changing_id(self):
        self.db.items.insert_one({'_id': 1, 'a': 1})
        with self.assertRaises(WriteError):
            self.db.items.replace_one({'_id': 1}, {'_id': 2, 'a': 2})
        self.assertEqual(self.db.items.find_one(1), {'_id': 1, 'a': 1})


class FindOneAndUpdateCases:
    """find_one_and_update."""

    def setUp(self):
        super().setUp()
        self.db.jobs.insert_many([
            {'_id': 1, 'state': 'new', 'priority': 1},
            {'_id': 2, 'state': 'new', 'priority': 5},
            {'_id': 3, 'state': 'done', 'priority': 9},
        ])

    def test_returns_before_by_default(self):
        found = self.db.jobs.find_one_and_update(
            {'state': 'new'}, {'$set': {'state': 'taken'}})
        self.assertEqual(found, {'_id': 1, 'state': 'new', 'priority': 1})
        self.assertEqual(self.db.jobs.find_one(1)['state'], 'taken')

    def test_returns_after(self):
        found = self.db.jobs.find_one_and_update(
            {'_id': 2}, {'$inc': {'priority': 1}},
            return_document=ReturnDocument.AFTER)
        self.assertEqual(found['priority'], 6)

    def test_sort_picks_document(self):
        found = self.db.jobs.find_one_and_update(
            {'state': 'new'}, {'$set': {'state': 'taken'}},
            sort=[('priority', -1)])
        self.assertEqual(found['_id'], 2)
        self.assertEqual(self.db.jobs.find_one(1)['state'], 'new')

    def test_projection(self):
        found = self.db.jobs.find_one_and_update(
            {'_id': 3}, {'$set': {'state': 'old'}}, projection={'state': 1},
            return_document=ReturnDocument.AFTER)
        self.assertEqual(found, {'_id': 3, 'state': 'old'})

    def test_no_match_returns_none(self):
        found = self.db.jobs.find_one_and_update(
            {'state': 'lost'}, {'$set': {'state': 'x'}})
        self.assertIsNone(found)
        self.assertEqual(self.db.jobs.count_documents({'state': 'x'}), 0)

    def test_upsert_after(self):
        found = self.db.jobs.find_one_and_update(
            {'_id': 7}, {'$set': {'state': 'new'}}, upsert=True,
            return_document=ReturnDocument.AFTER)
        self.assertEqual(found, {'_id': 7, 'state': 'new'})

    def test_upsert_before_returns_none(self):
        found = self.db.jobs.find_one_and_update(
            {'_id': 8}, {'$set': {'state': 'new'}}, upsert=True)
        self.assertIsNone(found)
        self.assertEqual(self.db.jobs.find_one(8), {'_id': 8, 'state': 'new'})


class DeleteCases:
    """delete_one and delete_many."""

    def setUp(self):
        super().setUp()
        self.db.items.insert_many([{'_id': i, 'even': i % 2 == 0}
                                   for i in range(6)])

    def test_delete_one(self):
        result = self.db.items.delete_one({'even': True})
        self.assertEqual(result.deleted_count, 1)
        self.assertTrue(result.acknowledged)
        self.assertIsNone(self.db.items.find_one(0))
        self.assertEqual(self.db.items.count_documents({}), 5)

    def test_delete_many(self):
        result = self.db.items.delete_many({'even': False})
        self.assertEqual(result.deleted_count, 3)
        self.assertEqual(sorted(self.db.items.distinct('_id')), [0, 2, 4])

    def test_delete_no_match(self):
        self.assertEqual(self.db.items.delete_many({'x': 1}).deleted_count, 0)
        self.assertEqual(self.db.missing.delete_one({}).deleted_count, 0)

    def test_delete_all(self):
        self.assertEqual(self.db.items.delete_many({}).deleted_count, 6)
        self.assertEqual(self.db.items.count_documents({}), 0)


class MemoryUpdateOperatorTest(UpdateOperatorCases, MemoryBackend,
                               unittest.TestCase):
    pass


class FileUpdateOperatorTest(UpdateOperatorCases, FileBackend,
                             unittest.TestCase):
    pass


class MongomockUpdateOperatorTest(UpdateOperatorCases, MongomockBackend,
                                  unittest.TestCase):
    pass


class MemoryUpsertTest(UpsertCases, MemoryBackend, unittest.TestCase):
    pass


class FileUpsertTest(UpsertCases, FileBackend, unittest.TestCase):
    pass


class MongomockUpsertTest(UpsertCases, MongomockBackend, unittest.TestCase):
    pass


class MemoryFindOneAndUpdateTest(FindOneAndUpdateCases, MemoryBackend,
                                 unittest.TestCase):
    pass


class FileFindOneAndUpdateTest(FindOneAndUpdateCases, FileBackend,
                               unittest.TestCase):
    pass


class MongomockFindOneAndUpdateTest(FindOneAndUpdateCases, MongomockBackend,
                                    unittest.TestCase):
    pass


class MemoryDeleteTest(DeleteCases, MemoryBackend, unittest.TestCase):
    pass


class FileDeleteTest(DeleteCases, FileBackend, unittest.TestCase):
    pass


class MongomockDeleteTest(DeleteCases, MongomockBackend, unittest.TestCase):
    pass

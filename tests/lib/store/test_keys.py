"""Canonical key encoding and MongoDB's comparison order of values."""

import datetime
import itertools
import unittest

from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from pyforge.lib.store.keys import (
    encode_compound_key, encode_key, prefix_range)
from pyforge.lib.store.order import sort_key
from pyforge.lib.store.paths import MISSING, iter_values

OBJECT_ID = ObjectId('65f000000000000000000001')
MOMENT = datetime.datetime(2024, 1, 2, 3, 4, 5, 6000)

# Values in MongoDB's ascending order; each differs from the others.
ORDERED_VALUES = [
    MinKey(), None, float('nan'), -1.5, 0, 0.5, Decimal128('0.75'), 2,
    '', 'a', 'b', '\u00e9', {}, {'a': 1}, {'a': 1, 'b': 1}, {'b': 0},
    [], [1], [1, 2], [2], b'', b'a', Binary(b'a', 5), b'ab', OBJECT_ID,
    False, True, MOMENT, Timestamp(1, 1), Regex('a', 0), MaxKey(),
]


class EncodeKeyTest(unittest.TestCase):
    """encode_key()."""

    def test_equal_numbers_share_key(self):
        numbers = [1, 1.0, Int64(1), Decimal128('1'), Decimal128('1.00')]
        keys = {encode_key(number) for number in numbers}
        self.assertEqual(len(keys), 1)

    def test_zero_signs_share_key(self):
        self.assertEqual(encode_key(0.0), encode_key(-0.0))

    def test_nan_equals_nan(self):
        self.assertEqual(encode_key(float('nan')),
                         encode_key(Decimal128('NaN')))

    def test_double_differs_from_decimal(self):
        self.assertNotEqual(encode_key(0.1), encode_key(Decimal128('0.1')))

    def test_large_integers_exact(self):
        self.assertNotEqual(encode_key(2 ** 53 + 1), encode_key(2.0 ** 53))

    def test_types_differ(self):
        for first, second in [(1, '1'), (1, True), (0, False), (None, 0),
                              ({}, []), ('', b''), (1, [1])]:
            with self.subTest(first=first, second=second):
                self.assertNotEqual(encode_key(first), encode_key(second))

    def test_document_field_order_matters(self):
        self.assertNotEqual(encode_key({'a': 1, 'b': 2}),
                            encode_key({'b': 2, 'a': 1}))

    def test_aware_datetime_as_utc(self):
        aware = MOMENT.replace(tzinfo=datetime.timezone(
            datetime.timedelta(hours=2))) + datetime.timedelta(hours=2)
        self.assertEqual(encode_key(aware), encode_key(MOMENT))

    def test_distinct_values_distinct_keys(self):
        keys = [encode_key(value) for value in ORDERED_VALUES]
        self.assertEqual(len(set(keys)), len(keys))

    def test_no_key_prefixes_another(self):
        keys = [encode_key(value) for value in ORDERED_VALUES]
        for first, second in itertools.permutations(keys, 2):
            self.assertFalse(second.startswith(first),
                             '%r is a prefix of %r' % (first, second))

    def test_compound_prefix_range(self):
        low, high = prefix_range(encode_key('a'))
        inside = encode_compound_key(['a', 5])
        outside = encode_compound_key(['ab', 5])
        self.assertTrue(low <= inside < high)
        self.assertFalse(low <= outside < high)


class SortKeyTest(unittest.TestCase):
    """sort_key() orders values as MongoDB does."""

    def test_ordered_values(self):
        keys = [sort_key(value) for value in ORDERED_VALUES]
        for position in range(len(keys) - 1):
            with self.subTest(value=ORDERED_VALUES[position]):
                self.assertLess(keys[position], keys[position + 1])

    def test_numbers_compare_across_types(self):
        self.assertLess(sort_key(1), sort_key(1.5))
        self.assertLess(sort_key(Decimal128('1.4')), sort_key(1.5))
        self.assertEqual(sort_key(Int64(3)), sort_key(3.0))


class IterValuesTest(unittest.TestCase):
    """iter_values() reads dotted paths like MongoDB's query language."""

    def values(self, document, path):
        return list(iter_values(document, path.split('.')))

    def test_cases(self):
        document = {
            'a': {'b': 1}, 'list': [{'b': 2}, {'c': 3}, 4],
            'nested': [[{'b': 5}]], 'scalar': 6}
        cases = [
            ('a.b', [1]),
            ('a.x', [MISSING]),
            ('list.b', [2, MISSING]),
            ('list.1.c', [3]),
            ('list.5', [MISSING]),
            ('list.2', [4]),
            ('nested.b', [MISSING]),
            ('scalar.b', [MISSING]),
            ('missing', [MISSING]),
        ]
        for path, expected in cases:
            with self.subTest(path=path):
                self.assertEqual(self.values(document, path), expected)

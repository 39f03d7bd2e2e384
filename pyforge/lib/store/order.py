"""MongoDB's comparison order of BSON values, as Python sort keys.

MongoDB orders values first by type: MinKey, null, numbers, strings,
documents, arrays, binary data, ObjectId, booleans, dates, timestamps,
regular expressions, code, MaxKey. Within a type it compares values:
numbers by value whatever their BSON type, strings by their UTF-8
bytes, documents field by field (type, then name, then value) and
arrays element by element.
"""

import datetime

import bson
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from pyforge.lib.store.keys import datetime_to_milliseconds
from pyforge.lib.store.paths import MISSING

MIN_KEY_RANK = 1
# An empty array sorts before null in find().sort(), and only there.
EMPTY_ARRAY_SORT_RANK = 2
NULL_RANK = 3
NUMBER_RANK = 4
STRING_RANK = 5
DOCUMENT_RANK = 6
ARRAY_RANK = 7
BINARY_RANK = 8
OBJECT_ID_RANK = 9
BOOLEAN_RANK = 10
DATETIME_RANK = 11
TIMESTAMP_RANK = 12
REGEX_RANK = 13
CODE_RANK = 14
MAX_KEY_RANK = 15
OTHER_RANK = 16

NULL_SORT_KEY = (NULL_RANK,)
EMPTY_ARRAY_SORT_KEY = (EMPTY_ARRAY_SORT_RANK,)


def type_rank(value):
    """Return the position of value's BSON type in MongoDB's order."""
    return sort_key(value)[0]


def sort_key(value):
    """Return a tuple that orders like value in MongoDB's comparison.

    Values of one type compare by content, values of different types by
    type rank, so sort keys of any two BSON values are comparable.
    """
    if value is None:
        return NULL_SORT_KEY
    if value is True or value is False:
        return (BOOLEAN_RANK, int(value))
    if isinstance(value, (int, float)):
        if value != value:
            # NaN sorts below every other number and equals itself.
            return (NUMBER_RANK, 0)
        return (NUMBER_RANK, 1, value)
    if isinstance(value, Decimal128):
        number = value.to_decimal()
        if number.is_nan():
            return (NUMBER_RANK, 0)
        return (NUMBER_RANK, 1, number)
    if isinstance(value, Code):
        return (CODE_RANK, str(value), sort_key(value.scope))
    if isinstance(value, str):
        return (STRING_RANK, value)
    if isinstance(value, dict):
        fields = []
        for name, item in value.items():
            item_key = sort_key(item)
            fields.append((item_key[0], name, item_key))
        return (DOCUMENT_RANK, tuple(fields))
    if isinstance(value, (list, tuple)):
        return (ARRAY_RANK, tuple(sort_key(item) for item in value))
    return _sort_key_of_scalar(value)


def _sort_key_of_scalar(value):
    if isinstance(value, ObjectId):
        return (OBJECT_ID_RANK, value.binary)
    if isinstance(value, (datetime.datetime, DatetimeMS)):
        return (DATETIME_RANK, datetime_to_milliseconds(value))
    if isinstance(value, bytes):
        subtype = value.subtype if isinstance(value, Binary) else 0
        return (BINARY_RANK, len(value), subtype, bytes(value))
    if isinstance(value, Timestamp):
        return (TIMESTAMP_RANK, value.time, value.inc)
    if isinstance(value, Regex):
        return (REGEX_RANK, value.pattern, value.flags)
    if isinstance(value, MinKey):
        return (MIN_KEY_RANK,)
    if isinstance(value, MaxKey):
        return (MAX_KEY_RANK,)
    return (OTHER_RANK, bson.encode({'v': value}))


def field_sort_key(values, descending):
    """Return the sort key of a field reached through values.

    values contains what the field's path reached in one document (see
    paths.iter_values), where a missing field sorts as null. An array
    sorts by its smallest element in an ascending sort and by its
    largest in a descending one.
    """
    candidates = []
    for value in values:
        if value is MISSING:
            candidates.append(NULL_SORT_KEY)
        elif isinstance(value, list):
            if not value:
                candidates.append(EMPTY_ARRAY_SORT_KEY)
            candidates.extend(sort_key(item) for item in value)
        else:
            candidates.append(sort_key(value))
    if not candidates:
        return NULL_SORT_KEY
    if descending:
        return max(candidates)
    return min(candidates)

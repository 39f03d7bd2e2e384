"""Secondary indexes: key patterns, names and the keys of a document.

A document's entries in an index follow MongoDB: a missing field is
indexed as null, an array field gives one entry per element (a
multikey index), and a compound index may have at most one array
field per document. Entries are canonical keys (see keys.py), so an
equality query finds its documents with one range lookup.
"""

import collections.abc
import itertools

from pymongo.errors import OperationFailure, WriteError

from pyforge.lib.store.keys import encode_compound_key, encode_key
from pyforge.lib.store.paths import MISSING, iter_values

ID_INDEX_NAME = '_id_'
ID_INDEX_KEYS = (('_id', 1),)
DIRECTIONS = (1, -1)
# Options MongoDB has ignored since 4.2; any other option is rejected.
IGNORED_OPTIONS = ('background',)

CANNOT_CREATE_INDEX = 67
CANNOT_INDEX_PARALLEL_ARRAYS = 171


def normalize_keys(keys):
    """Return a key pattern as a tuple of (field, direction) pairs.

    Accepts what pymongo's create_index accepts: a field name, or a
    list of field names and (field, direction) pairs. Raises TypeError
    or ValueError as pymongo does, and OperationFailure for an index
    type other than ascending (1) or descending (-1).
    """
    if isinstance(keys, str):
        pairs = [(keys, 1)]
    elif isinstance(keys, collections.abc.Mapping):
        pairs = list(keys.items())
    elif isinstance(keys, (list, tuple)):
        pairs = [(item, 1) if isinstance(item, str) else item
                 for item in keys]
    else:
        raise TypeError(
            'if no direction is specified, key_or_list must be an '
            'instance of list, not %s' % type(keys))
    if not pairs:
        raise ValueError('key_or_list must not be empty')
    normalized = []
    for field, direction in pairs:
        if not isinstance(field, str):
            raise TypeError(
                'first item in each key pair must be an instance of str, '
                'not %s' % type(field))
        if direction is True or direction not in DIRECTIONS:
            raise OperationFailure(
                'index type %r on field %r is not supported by this store; '
                'use 1 (ascending) or -1 (descending)' % (direction, field),
                CANNOT_CREATE_INDEX)
        normalized.append((field, int(direction)))
    return tuple(normalized)


def index_name(keys):
    """Return MongoDB's default name for a key pattern, like 'a_1_b_-1'."""
    return '_'.join('%s_%s' % pair for pair in keys)


def key_pattern(keys):
    """Return a key pattern as a document, like {'a': 1, 'b': -1}."""
    return dict(keys)


def index_entries(document, keys):
    """Return {encoded key: field values} of a document's index entries.

    Raises WriteError when two fields of a compound index are arrays.
    """
    per_field = []
    array_fields = []
    for field, _ in keys:
        values, is_array = _field_keys(document, field)
        if is_array:
            array_fields.append(field)
        per_field.append(values)
    if len(array_fields) > 1:
        message = 'cannot index parallel arrays [%s] [%s]' % (
            array_fields[1], array_fields[0])
        raise WriteError(message, CANNOT_INDEX_PARALLEL_ARRAYS, {
            'index': 0, 'code': CANNOT_INDEX_PARALLEL_ARRAYS,
            'errmsg': message})
    if len(per_field) == 1:
        return {encode_key(value): (value,) for value in per_field[0]}
    entries = {}
    for combination in itertools.product(*per_field):
        entries[encode_compound_key(combination)] = combination
    return entries


def _field_keys(document, field):
    """Return (distinct values to index, whether an array was reached)."""
    values = []
    seen = set()
    is_array = False
    for value in iter_values(document, field.split('.')):
        if value is MISSING:
            candidates = [None]
        elif isinstance(value, list):
            is_array = True
            # An empty array is indexed as itself, so that two documents
            # with an empty array collide in a unique index as in MongoDB.
            candidates = value if value else [value]
        else:
            candidates = [value]
        for candidate in candidates:
            key = encode_key(candidate)
            if key not in seen:
                seen.add(key)
                values.append(candidate)
    return values, is_array

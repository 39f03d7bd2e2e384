"""Secondary indexes: key patterns, names and the keys of a document.

A document's entries in an index follow MongoDB. A missing field is
indexed as null, and an array field gives one entry per element (a
multikey index). A compound index may have at most one array field
per document. Entries are canonical keys (see keys.py), so an
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

# MongoDB's error codes for index and namespace errors.
NAMESPACE_NOT_FOUND = 26
INDEX_NOT_FOUND = 27
CANNOT_CREATE_INDEX = 67
INVALID_OPTIONS = 72
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
CANNOT_INDEX_PARALLEL_ARRAYS = 171
INVALID_INDEX_SPECIFICATION_OPTION = 197


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
    found = list(iter_values(document, field.split('.')))
    if len(found) == 1 and not isinstance(found[0], list):
        # One value needs no encoding to remove repeats.
        return [None if found[0] is MISSING else found[0]], False
    values = []
    seen = set()
    is_array = False
    for value in found:
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


def create_index(collection, keys, unique, name, options):
    """Create an index on a collection unless it exists; return its name.

    Raises DuplicateKeyError when unique and two stored documents share
    a key, and OperationFailure for an unsupported option or when an
    index with the same name or the same keys but other options exists.
    """
    keys = normalize_keys(keys)
    for option in options:
        if option not in IGNORED_OPTIONS:
            raise OperationFailure(
                'index option %r is not supported by this store; it '
                'supports unique and name' % option,
                INVALID_INDEX_SPECIFICATION_OPTION)
    name = name or index_name(keys)
    # A savepoint, so that a DuplicateKeyError from filling the index
    # inside transaction() leaves no index behind.
    with collection._write_table(create=True, savepoint=True) as table:
        if keys == ID_INDEX_KEYS:
            # Every collection has a unique _id index already.
            return name
        existing = _conflicting_index(table.info, keys, unique, name)
        if existing is not None:
            return existing
        table.info = table.catalog.add_index(
            table.info, name, keys, bool(unique))
        table.fill_index(table.info.indexes[-1])
    return name


def drop_index(collection, index_or_name):
    """Drop a collection's index given by name or by key pattern."""
    name = index_or_name
    if not isinstance(name, str):
        name = index_name(normalize_keys(index_or_name))
    if name == ID_INDEX_NAME:
        raise OperationFailure('cannot drop _id index', INVALID_OPTIONS)
    with collection._write_table() as table:
        if table is None:
            raise OperationFailure(
                'ns not found %s' % collection.full_name,
                NAMESPACE_NOT_FOUND)
        for index in table.info.indexes:
            if index.name == name:
                table.catalog.remove_index(table.info, index)
                return
    raise OperationFailure(
        'index not found with name [%s]' % name, INDEX_NOT_FOUND)


def _conflicting_index(info, keys, unique, name):
    """Return name if the index exists as requested, None if it does not.

    Raises OperationFailure when an index has the same name or keys
    but differs otherwise.
    """
    for index in info.indexes:
        same_keys = index.keys == keys
        if index.name == name:
            if same_keys and index.unique == bool(unique):
                return name
            raise OperationFailure(
                'An existing index has the same name as the requested '
                'index. Requested index: %s %s unique=%s, existing index: '
                '%s %s unique=%s' % (name, list(keys), bool(unique),
                                     index.name, list(index.keys),
                                     index.unique),
                INDEX_KEY_SPECS_CONFLICT)
        if same_keys:
            raise OperationFailure(
                'Index already exists with a different name: %s; requested '
                'name: %s' % (index.name, name), INDEX_OPTIONS_CONFLICT)
    if name == ID_INDEX_NAME:
        raise OperationFailure(
            'index name %r is reserved for the _id index' % name,
            INDEX_KEY_SPECS_CONFLICT)
    return None

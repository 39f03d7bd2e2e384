"""Update documents: validation and application of update operators.

Supports $set, $unset, $inc, $push and $addToSet (both with $each),
$pull and $setOnInsert on top-level and dotted fields. Errors match
MongoDB's: a WriteError with the server's code and message, or a
ValueError where pymongo checks the update before sending it.
"""

import collections.abc
import decimal

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from pymongo.errors import OperationFailure

from pyforge.lib.store.documents import (
    bson_type_name, is_number, normalize, write_error)
from pyforge.lib.store.keys import encode_key
from pyforge.lib.store.paths import MISSING, get_field, locate, store_field
from pyforge.lib.store.query import compile_filter, is_operator_expression

UPDATE_OPERATORS = (
    '$set', '$unset', '$inc', '$push', '$addToSet', '$pull', '$setOnInsert')

# MongoDB's error codes for invalid updates.
BAD_VALUE = 2
FAILED_TO_PARSE = 9
TYPE_MISMATCH = 14
CONFLICTING_UPDATE_OPERATORS = 40
EMPTY_FIELD_NAME = 56
IMMUTABLE_FIELD = 66

_INT64_RANGE = range(-2 ** 63, 2 ** 63)
_DECIMAL128_CONTEXT = create_decimal128_context()


class Update:
    """A validated update document, applied to one document at a time."""

    def __init__(self, spec):
        """Validate spec like pymongo and the server do.

        Raises ValueError for an empty update or one that mixes update
        operators with plain fields, and WriteError for an unknown
        operator, an empty field name or two paths that conflict.
        Update pipelines raise OperationFailure.
        """
        if isinstance(spec, list):
            raise OperationFailure(
                'update pipelines (a list of stages) are not supported by '
                'this store; pass an update document with $ operators',
                FAILED_TO_PARSE)
        if not isinstance(spec, collections.abc.Mapping):
            raise TypeError(
                'update must either be a list or an instance of dict, '
                'bson.son.SON, or any other type that inherits from '
                'collections.Mapping, not %s' % type(spec))
        if not spec:
            raise ValueError('update cannot be empty')
        plain = [name for name in spec if not name.startswith('$')]
        if plain:
            raise ValueError(
                'update only works with $ operators, but field %r is not '
                'one; wrap plain fields in {"$set": {...}} or use '
                'replace_one()' % plain[0])
        self.operations = []
        for operator, fields in normalize(spec).items():
            self._parse(operator, fields)
        _check_conflicts([path for _, path, _, _ in self.operations])

    def _parse(self, operator, fields):
        if operator not in UPDATE_OPERATORS:
            raise write_error(
                'Unknown modifier: %s. This store supports %s'
                % (operator, ', '.join(UPDATE_OPERATORS)), FAILED_TO_PARSE)
        if not isinstance(fields, dict):
            raise write_error(
                'Modifiers operate on fields but we found type %s instead. '
                'For example: {$mod: {<field>: ...}} not {%s: %r}'
                % (bson_type_name(fields), operator, fields),
                FAILED_TO_PARSE)
        for path, operand in fields.items():
            parts = path.split('.')
            if '' in parts:
                raise write_error(
                    "The update path '%s' contains an empty field name, "
                    'which is not allowed.' % path, EMPTY_FIELD_NAME)
            if operator == '$inc' and not is_number(operand):
                raise write_error(
                    'Cannot increment with non-numeric argument: '
                    '{%s: %r}' % (path, operand), TYPE_MISMATCH)
            operand = _parse_operand(operator, path, operand)
            self.operations.append((operator, path, parts, operand))

    def apply(self, document, inserting=False):
        """Apply the update to document in place.

        inserting is True when the document is being created by an
        upsert, the only case in which $setOnInsert applies.
        """
        original_id = document.get('_id', MISSING)
        for operator, path, parts, operand in self.operations:
            if operator == '$setOnInsert' and not inserting:
                continue
            _APPLY[operator](document, path, parts, operand)
        new_id = document.get('_id', MISSING)
        if inserting or new_id is original_id:
            return
        if (original_id is MISSING or new_id is MISSING
                or encode_key(original_id) != encode_key(new_id)):
            raise write_error(
                "Performing an update on the path '_id' would modify the "
                "immutable field '_id'", IMMUTABLE_FIELD)


def _parse_operand(operator, path, operand):
    """Return the operand in the form _APPLY expects for operator."""
    if operator in ('$push', '$addToSet'):
        if isinstance(operand, dict) and '$each' in operand:
            return _parse_each(operator, path, operand)
        return [operand]
    if operator == '$pull':
        return _compile_pull_condition(operand)
    return operand


def _parse_each(operator, path, operand):
    other = [name for name in operand if name != '$each']
    if other:
        raise write_error(
            '%s modifier %s on field %r is not supported by this store; '
            'only $each is' % (operator, other[0], path), BAD_VALUE)
    values = operand['$each']
    if not isinstance(values, list):
        raise write_error(
            'The argument to $each in %s must be an array but it was of '
            'type: %s' % (operator, bson_type_name(values)), BAD_VALUE)
    return values


def _compile_pull_condition(operand):
    """Return a test of one array element for $pull."""
    if is_operator_expression(operand):
        matcher = compile_filter({'element': operand})
        return lambda item: matcher({'element': item})
    if isinstance(operand, dict):
        # A document operand is a query on the array's documents.
        matcher = compile_filter(operand)
        return lambda item: isinstance(item, dict) and matcher(item)
    key = encode_key(operand)
    return lambda item: encode_key(item) == key


def _check_conflicts(paths):
    if not _may_conflict(paths):
        return
    # Compare every pair, to name the same pair as the server does.
    for index, path in enumerate(paths):
        for other in paths[index + 1:]:
            shorter, longer = sorted((path, other), key=len)
            if longer == shorter or longer.startswith(shorter + '.'):
                raise write_error(
                    "Updating the path '%s' would create a conflict at "
                    "'%s'" % (longer, shorter),
                    CONFLICTING_UPDATE_OPERATORS)


def _may_conflict(paths):
    """Return whether a path repeats or is a dotted prefix of another.

    Runs in time linear in the total length of the paths, where
    comparing every pair would not.
    """
    distinct = set(paths)
    if len(distinct) < len(paths):
        return True
    for path in paths:
        position = path.find('.')
        while position != -1:
            if path[:position] in distinct:
                return True
            position = path.find('.', position + 1)
    return False


def _apply_set(document, path, parts, value):
    container, key = locate(document, parts, create=True)
    store_field(container, key, value)


def _apply_unset(document, path, parts, operand):
    location = locate(document, parts, create=False)
    if location is None:
        return
    container, key = location
    if isinstance(container, dict):
        container.pop(key, None)
    elif get_field(container, key) is not MISSING:
        # $unset on an array element sets it to null, keeping positions.
        container[int(key)] = None


def _apply_inc(document, path, parts, amount):
    container, key = locate(document, parts, create=True)
    current = get_field(container, key)
    if current is MISSING:
        store_field(container, key, amount)
        return
    if not is_number(current):
        raise write_error(
            'Cannot apply $inc to a value of non-numeric type. {_id: %r} '
            "has the field '%s' of non-numeric type %s"
            % (document.get('_id'), path, bson_type_name(current)),
            TYPE_MISMATCH)
    store_field(container, key, _add(current, amount, document, path))


def _add(current, amount, document, path):
    if isinstance(current, Decimal128) or isinstance(amount, Decimal128):
        total = _DECIMAL128_CONTEXT.add(
            _to_decimal(current), _to_decimal(amount))
        return Decimal128(total)
    if isinstance(current, float) or isinstance(amount, float):
        return float(current) + float(amount)
    total = int(current) + int(amount)
    if total not in _INT64_RANGE:
        raise write_error(
            'Failed to apply $inc operations to current value %r for '
            "document {_id: %r}: the result of field '%s' overflows a "
            '64-bit integer' % (current, document.get('_id'), path),
            BAD_VALUE)
    if isinstance(current, Int64) or isinstance(amount, Int64):
        return Int64(total)
    return total


def _to_decimal(number):
    if isinstance(number, Decimal128):
        return number.to_decimal()
    return decimal.Decimal(number)


def _array_at(document, path, parts, operator, create):
    """Return the array at path for operator, or None where missing."""
    location = locate(document, parts, create=create)
    if location is None:
        return None
    container, key = location
    current = get_field(container, key)
    if current is MISSING:
        if not create:
            return None
        current = []
        store_field(container, key, current)
    if isinstance(current, list):
        return current
    if operator == '$push':
        message = (
            "The field '%s' must be an array but is of type %s in "
            'document {_id: %r}' % (path, bson_type_name(current),
                                    document.get('_id')))
    elif operator == '$addToSet':
        message = (
            "Cannot apply $addToSet to non-array field. Field named '%s' "
            'has non-array type %s' % (path, bson_type_name(current)))
    else:
        message = 'Cannot apply $pull to a non-array value'
    raise write_error(message, BAD_VALUE)


def _apply_push(document, path, parts, values):
    array = _array_at(document, path, parts, '$push', create=True)
    array.extend(values)


def _apply_add_to_set(document, path, parts, values):
    array = _array_at(document, path, parts, '$addToSet', create=True)
    present = {encode_key(item) for item in array}
    for value in values:
        key = encode_key(value)
        if key not in present:
            present.add(key)
            array.append(value)


def _apply_pull(document, path, parts, condition):
    array = _array_at(document, path, parts, '$pull', create=False)
    if array is not None:
        array[:] = [item for item in array if not condition(item)]


_APPLY = {
    '$set': _apply_set,
    '$setOnInsert': _apply_set,
    '$unset': _apply_unset,
    '$inc': _apply_inc,
    '$push': _apply_push,
    '$addToSet': _apply_add_to_set,
    '$pull': _apply_pull,
}

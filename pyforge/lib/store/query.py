"""Query filters: validation, document matching and equality extraction.

compile_filter turns a filter document into a function that returns
whether a stored document matches, with MongoDB's semantics for the
supported operators. Unsupported operators raise OperationFailure with
code 2 (BadValue), as the server does for unknown ones.
"""

import functools

from bson.regex import Regex
from pymongo.errors import OperationFailure

from pyforge.lib.store.keys import encode_key
from pyforge.lib.store.order import sort_key
from pyforge.lib.store.paths import MISSING, iter_values

BAD_VALUE = 2

LOGICAL_OPERATORS = ('$and', '$or')
FIELD_OPERATORS = (
    '$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists')

_COMPARISONS = {
    '$gt': lambda order: order > 0,
    '$gte': lambda order: order >= 0,
    '$lt': lambda order: order < 0,
    '$lte': lambda order: order <= 0,
}


def compile_filter(query):
    """Validate a filter document and return a matching function.

    The function takes a decoded document and returns True when the
    document matches. query must already be BSON-normalized (see
    documents.normalize), so that it contains only decoded BSON types.
    """
    conditions = []
    for name, value in query.items():
        if name in LOGICAL_OPERATORS:
            conditions.append(_compile_logical(name, value))
        elif name.startswith('$'):
            raise OperationFailure(
                'unknown top level operator: %s; this store supports %s '
                'at the top level of a filter'
                % (name, ', '.join(LOGICAL_OPERATORS)), BAD_VALUE)
        else:
            conditions.append(_compile_field(name, value))
    return functools.partial(_match_all, conditions)


def is_operator_expression(value):
    """Return whether a filter value is an operator document like
    {'$gt': 1}, as opposed to an embedded document to compare with."""
    if not isinstance(value, dict) or not value:
        return False
    return next(iter(value)).startswith('$')


def equality_values(query, include_in=True):
    """Return {path: [values]} for the equality conditions of a filter.

    Collects plain values, $eq and, with include_in, $in at the top
    level and inside a top-level $and. A document matches only if, for
    each path, its field equals one of the values. A path with several
    conditions keeps the first one, which is enough to narrow a lookup.
    """
    found = {}
    for name, value in query.items():
        if name == '$and':
            for clause in value:
                nested = equality_values(clause, include_in)
                for path, values in nested.items():
                    found.setdefault(path, values)
        elif name.startswith('$'):
            continue
        elif not is_operator_expression(value):
            found.setdefault(name, [value])
        elif '$eq' in value:
            found.setdefault(name, [value['$eq']])
        elif include_in and isinstance(value.get('$in'), list):
            found.setdefault(name, list(value['$in']))
    return found


def _match_all(conditions, document):
    for condition in conditions:
        if not condition(document):
            return False
    return True


def _match_any(conditions, document):
    for condition in conditions:
        if condition(document):
            return True
    return False


def _compile_logical(name, clauses):
    if not isinstance(clauses, list) or not clauses:
        raise OperationFailure(
            '%s must be a nonempty array, got %r' % (name, clauses),
            BAD_VALUE)
    compiled = []
    for clause in clauses:
        if not isinstance(clause, dict):
            raise OperationFailure(
                '%s entries need to be full objects, got %r'
                % (name, clause), BAD_VALUE)
        compiled.append(compile_filter(clause))
    if name == '$and':
        return functools.partial(_match_all, compiled)
    return functools.partial(_match_any, compiled)


def _compile_field(path, value):
    parts = path.split('.')
    if not is_operator_expression(value):
        return _field_condition(parts, _compile_equality(value))
    conditions = []
    for operator, operand in value.items():
        conditions.append(_compile_operator(parts, operator, operand))
    return functools.partial(_match_all, conditions)


def _compile_operator(parts, operator, operand):
    if operator == '$eq':
        return _field_condition(parts, _compile_equality(operand))
    if operator == '$ne':
        return _negate(_field_condition(parts, _compile_equality(operand)))
    if operator in ('$in', '$nin'):
        condition = _field_condition(parts, _compile_in(operator, operand))
        return condition if operator == '$in' else _negate(condition)
    if operator == '$exists':
        return functools.partial(_match_exists, parts, bool(operand))
    if operator in _COMPARISONS:
        _reject_regex(operator, operand)
        test = _compile_comparison(operator, operand)
        return _field_condition(parts, test)
    raise OperationFailure(
        'unknown operator: %s; this store supports %s'
        % (operator, ', '.join(FIELD_OPERATORS)), BAD_VALUE)


def _reject_regex(operator, operand):
    if isinstance(operand, Regex):
        raise OperationFailure(
            'regular expression %r in %s is not supported by this store; '
            'match the field with $eq or $in instead'
            % (operand.pattern, operator), BAD_VALUE)


def _compile_equality(operand):
    """Return a test of one value reached by a path against operand."""
    _reject_regex('an equality match', operand)
    key = encode_key(operand)
    return functools.partial(_equals, key, operand is None)


def _equals(key, matches_missing, value):
    if value is MISSING:
        return matches_missing
    if encode_key(value) == key:
        return True
    if isinstance(value, list):
        # Equality with a scalar matches an array that contains it.
        return any(encode_key(item) == key for item in value)
    return False


def _compile_in(operator, operand):
    if not isinstance(operand, list):
        raise OperationFailure(
            '%s needs an array, got %r' % (operator, operand), BAD_VALUE)
    tests = []
    for item in operand:
        if is_operator_expression(item):
            raise OperationFailure(
                'cannot nest $ under %s: %r' % (operator, item), BAD_VALUE)
        tests.append(_compile_equality(item))
    return functools.partial(_in, tests)


def _in(tests, value):
    for test in tests:
        if test(value):
            return True
    return False


def _compile_comparison(operator, operand):
    accept = _COMPARISONS[operator]
    operand_key = sort_key(operand)
    # $gte and $lte with null also match a missing field, like equality.
    matches_missing = operand is None and operator in ('$gte', '$lte')
    return functools.partial(
        _compare, accept, operand_key, matches_missing)


def _compare(accept, operand_key, matches_missing, value):
    if value is MISSING:
        return matches_missing
    candidates = [value]
    if isinstance(value, list):
        candidates.extend(value)
    for candidate in candidates:
        key = sort_key(candidate)
        # MongoDB compares only values of the same BSON type.
        if key[0] != operand_key[0]:
            continue
        order = (key > operand_key) - (key < operand_key)
        if accept(order):
            return True
    return False


def _field_condition(parts, test):
    return functools.partial(_match_field, parts, test)


def _match_field(parts, test, document):
    for value in iter_values(document, parts):
        if test(value):
            return True
    return False


def _match_exists(parts, expected, document):
    present = any(
        value is not MISSING for value in iter_values(document, parts))
    return present == expected


def _negate(condition):
    return lambda document: not condition(document)

"""Query planning: which rows to read for a filter.

Equality on _id reads rows by primary key. Otherwise equality on the
leading fields of a secondary index reads the rows that index lists.
Any other filter scans the collection in natural order. The rows
returned are candidates: the caller still applies the full filter,
unless the primary key lookup alone decides it (compile_matcher).
"""

import contextlib
import itertools

from bson.regex import Regex

from pyforge.lib.store.keys import (
    encode_compound_key, encode_key, prefix_range)
from pyforge.lib.store.query import (
    compile_filter, equality_values, is_operator_expression)
from pyforge.lib.store.storage import Lookup

# Compound $in lookups expand to the product of their value lists;
# past this many lookups the plan uses fewer index fields.
MAX_LOOKUPS = 1000


def compile_matcher(query):
    """Return the test that candidate documents must pass, or None.

    None means that every candidate matches: the filter is a single
    plain equality on _id, which plan_lookups turns into a primary key
    lookup of exactly that _id. Otherwise returns compile_filter(query),
    which raises OperationFailure for an invalid filter.
    """
    if len(query) == 1 and '_id' in query:
        value = query['_id']
        if not (isinstance(value, Regex) or is_operator_expression(value)):
            return None
    return compile_filter(query)


def plan_lookups(info, query):
    """Return the Lookups that find every candidate, or None to scan.

    info is the collection's catalog.CollectionInfo.
    """
    equalities = equality_values(query)
    id_values = equalities.get('_id')
    if id_values is not None and _usable(id_values, allow_arrays=True):
        keys = {encode_key(value) for value in id_values}
        return [Lookup(None, key, None) for key in keys]
    choice = _choose_index(info.indexes, equalities)
    if choice is None:
        return None
    index, value_lists = choice
    lookups = []
    for combination in itertools.product(*value_lists):
        low, high = prefix_range(encode_compound_key(combination))
        lookups.append(Lookup(index, low, high))
    return lookups


def candidate_rows(table, query):
    """Yield the Rows that can match query, in natural order."""
    lookups = plan_lookups(table.info, query)
    if lookups is None:
        yield from table.all_rows()
        return
    rows = []
    for lookup in lookups:
        rows.extend(table.lookup(lookup))
    yield from natural_order(rows)


def natural_order(rows):
    """Return rows without repeated documents, in natural order.

    A document is found twice when it has two index entries in the
    range of one lookup, or entries in the ranges of two lookups.
    """
    if len(rows) < 2:
        return rows
    unique = {}
    for row in rows:
        unique.setdefault(row.id_key, row)
    return sorted(unique.values(), key=_natural_order)


def matching_rows(table, query, matcher, stop=None):
    """Return the Rows of table whose documents match, in natural order.

    table may be None for a missing collection, and matcher None when
    every candidate matches (compile_matcher). Stops after stop matches
    when stop is given.
    """
    if table is None or stop == 0:
        return []
    with contextlib.closing(candidate_rows(table, query)) as rows:
        return first_matches(rows, matcher, stop)


def first_matches(rows, matcher, stop=None):
    """Return the rows whose documents pass matcher, at most stop."""
    found = []
    for row in rows:
        if matcher is None or matcher(row.document):
            found.append(row)
            if stop is not None and len(found) >= stop:
                break
    return found


def _natural_order(row):
    return row.seq


def _usable(values, allow_arrays=False):
    """Return whether an index lookup of values finds every match.

    An array value also matches arrays equal to it, which the index
    does not list as a key, so arrays need a scan except on _id,
    which cannot hold an array.
    """
    for value in values:
        if isinstance(value, Regex):
            return False
        if isinstance(value, list) and not allow_arrays:
            return False
    return True


def _choose_index(indexes, equalities):
    """Return (index, value lists of its leading fields) or None.

    Prefers the index whose longest prefix of fields has equality
    conditions, then a unique index, then the oldest.
    """
    best = None
    best_rank = None
    for position, index in enumerate(indexes):
        value_lists = []
        lookups = 1
        for field, _ in index.keys:
            values = equalities.get(field)
            if values is None or not _usable(values):
                break
            if lookups * len(values) > MAX_LOOKUPS:
                break
            lookups *= len(values)
            value_lists.append(values)
        if not value_lists:
            continue
        rank = (len(value_lists), index.unique, -position)
        if best_rank is None or rank > best_rank:
            best, best_rank = (index, value_lists), rank
    return best

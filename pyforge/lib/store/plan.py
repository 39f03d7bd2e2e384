"""Query planning: which rows to read for a filter.

Equality on _id reads rows by primary key. Otherwise equality on the
leading fields of a secondary index reads the rows that index lists.
Any other filter scans the collection in natural order. The rows
returned are candidates: the caller still applies the full filter.
"""

import contextlib
import itertools

from bson.regex import Regex

from pyforge.lib.store.keys import (
    encode_compound_key, encode_key, prefix_range)
from pyforge.lib.store.query import equality_values

# Compound $in lookups expand to the product of their value lists;
# past this many lookups the plan uses fewer index fields.
MAX_LOOKUPS = 1000


def candidate_rows(table, query):
    """Yield the Rows that can match query, in natural order."""
    equalities = equality_values(query)
    id_values = equalities.get('_id')
    if id_values is not None and _usable(id_values, allow_arrays=True):
        keys = {encode_key(value) for value in id_values}
        rows = [table.row_by_id_key(key) for key in keys]
        yield from sorted((row for row in rows if row), key=_natural_order)
        return
    choice = _choose_index(table.info.indexes, equalities)
    if choice is None:
        yield from table.all_rows()
        return
    index, value_lists = choice
    rows = {}
    for combination in itertools.product(*value_lists):
        low, high = prefix_range(encode_compound_key(combination))
        for row in table.rows_in_index_range(index, low, high):
            rows.setdefault(row.id_key, row)
    yield from sorted(rows.values(), key=_natural_order)


def matching_rows(table, query, matcher, stop=None):
    """Return the Rows of table whose documents match, in natural order.

    table may be None for a missing collection. Stops after stop
    matches when stop is given.
    """
    found = []
    if table is None or stop == 0:
        return found
    with contextlib.closing(candidate_rows(table, query)) as rows:
        for row in rows:
            if matcher(row.document):
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

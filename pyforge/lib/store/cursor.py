"""The cursor that find() returns, and the matching behind every read.

A cursor runs its query on first iteration, inside one read
transaction, and keeps the results in memory. It never keeps a
transaction open while the caller iterates, so the caller may write
to the store between two next() calls.
"""

import collections.abc

from pymongo.errors import InvalidOperation, OperationFailure

from pyforge.lib.store.documents import normalize
from pyforge.lib.store.order import field_sort_key
from pyforge.lib.store.paths import iter_values
from pyforge.lib.store.plan import compile_matcher
from pyforge.lib.store.projection import Projection
from pyforge.lib.store.reads import read_rows

BAD_SORT_ORDER = 15975


def check_mapping(name, value):
    """Raise TypeError, as pymongo does, unless value is a mapping."""
    if not isinstance(value, collections.abc.Mapping):
        raise TypeError(
            '%s must be an instance of dict, bson.son.SON, or any other '
            'type that inherits from collections.Mapping, not %s'
            % (name, type(value)))


def sort_spec(key_or_list, direction=None):
    """Return a sort specification as a list of (field, direction).

    Accepts pymongo's forms: a field and a direction, a field alone, a
    list of fields or (field, direction) pairs, or a mapping.
    """
    if direction is not None:
        if not isinstance(key_or_list, str):
            raise TypeError('Expected a string and a direction, not %s'
                            % type(key_or_list))
        pairs = [(key_or_list, direction)]
    elif isinstance(key_or_list, str):
        pairs = [(key_or_list, 1)]
    elif isinstance(key_or_list, collections.abc.Mapping):
        pairs = list(key_or_list.items())
    elif isinstance(key_or_list, (list, tuple)):
        pairs = [(item, 1) if isinstance(item, str) else tuple(item)
                 for item in key_or_list]
    else:
        raise TypeError(
            'if no direction is specified, key_or_list must be an '
            'instance of list, not %s' % type(key_or_list))
    if not pairs:
        raise ValueError('key_or_list must not be empty')
    for field, _ in pairs:
        if not isinstance(field, str):
            raise TypeError('first item in each key pair must be an '
                            'instance of str, not %s' % type(field))
    return pairs


def check_sort_directions(spec):
    """Raise OperationFailure, as the server does, for a bad direction."""
    for field, direction in spec:
        if direction is True or direction not in (1, -1):
            raise OperationFailure(
                '$sort key ordering must be 1 (for ascending) or -1 (for '
                'descending), got %r for field %r' % (direction, field),
                BAD_SORT_ORDER)


def sort_rows(rows, spec):
    """Sort Rows in place by their documents, like MongoDB's sort.

    Rows whose documents compare equal keep their order, which is
    natural order when they come from matching_rows().
    """
    check_sort_directions(spec)
    # Sorting by the last field first, then stably by each earlier one,
    # orders by all fields with the first one deciding.
    for field, direction in reversed(spec):
        parts = field.split('.')
        descending = direction == -1
        rows.sort(
            key=lambda row: field_sort_key(
                iter_values(row.document, parts), descending),
            reverse=descending)


class Cursor:
    """Iterator over the documents that a find() matches."""

    def __init__(self, collection, filter=None, projection=None, sort=None,
                 skip=0, limit=0):
        """Validate the arguments as pymongo's Cursor does."""
        if filter is None:
            filter = {}
        check_mapping('filter', filter)
        if not isinstance(skip, int):
            raise TypeError('skip must be an instance of int, not %s'
                            % type(skip))
        if not isinstance(limit, int):
            raise TypeError('limit must be an instance of int, not %s'
                            % type(limit))
        if projection is not None:
            projection = projection_spec(projection)
        self.collection = collection
        self._filter = filter
        self._projection = projection
        self._sort = sort_spec(sort) if sort else None
        self._skip = skip
        self._limit = limit
        self._results = None

    def _check_okay_to_chain(self):
        if self._results is not None:
            raise InvalidOperation(
                'cannot set options after executing query')

    def sort(self, key_or_list, direction=None):
        """Set the sort order of the results and return this cursor."""
        self._check_okay_to_chain()
        self._sort = sort_spec(key_or_list, direction)
        return self

    def skip(self, skip):
        """Skip the first skip results and return this cursor."""
        if not isinstance(skip, int):
            raise TypeError('skip must be an integer, not %s' % type(skip))
        if skip < 0:
            raise ValueError('skip must be >= 0')
        self._check_okay_to_chain()
        self._skip = skip
        return self

    def limit(self, limit):
        """Return at most limit results (0: no limit); return this cursor.

        A negative limit works as its absolute value, as in pymongo.
        """
        if not isinstance(limit, int):
            raise TypeError('limit must be an integer, not %s'
                            % type(limit))
        self._check_okay_to_chain()
        self._limit = limit
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self._results is None:
            self._results = collections.deque(self._execute())
        if not self._results:
            raise StopIteration
        return self._results.popleft()

    def next(self):
        """Return the next document, as pymongo's Cursor.next() does."""
        return self.__next__()

    def to_list(self, length=None):
        """Return the remaining documents, at most length of them."""
        documents = []
        for document in self:
            documents.append(document)
            if length is not None and len(documents) >= length:
                break
        return documents

    def clone(self):
        """Return an unexecuted copy of this cursor with its options."""
        copy = Cursor(self.collection, self._filter, self._projection,
                      None, self._skip, self._limit)
        copy._sort = self._sort
        return copy

    def rewind(self):
        """Forget the results so that the next iteration runs again."""
        self._results = None
        return self

    def close(self):
        """Drop the remaining results."""
        self._results = collections.deque()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _execute(self):
        if self._skip < 0:
            raise OperationFailure(
                'skip value must be non-negative, but received: %d'
                % self._skip, 51024)
        query = normalize(self._filter)
        matcher = compile_matcher(query)
        projection = None
        if self._projection is not None:
            projection = Projection(self._projection)
        if self._sort:
            check_sort_directions(self._sort)
        limit = abs(self._limit)
        stop = None
        if limit and not self._sort:
            stop = self._skip + limit
        rows = read_rows(self.collection, query, matcher, stop)
        if self._sort:
            sort_rows(rows, self._sort)
        rows = rows[self._skip:]
        if limit:
            rows = rows[:limit]
        if projection is None:
            return [row.document for row in rows]
        return [projection.apply(row.document) for row in rows]


def projection_spec(fields):
    """Return a projection as a mapping; pymongo also takes a list."""
    if isinstance(fields, collections.abc.Mapping):
        return fields
    if not isinstance(fields, (list, tuple, collections.abc.Set)):
        raise TypeError(
            'projection must be a mapping or list of key names')
    if not all(isinstance(field, str) for field in fields):
        raise TypeError('projection must be a list of key names, each an '
                        'instance of str')
    return dict.fromkeys(fields, 1)

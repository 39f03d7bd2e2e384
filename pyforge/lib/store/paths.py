"""Dotted field paths, read the way MongoDB's query language reads them.

A path such as 'a.b' descends into embedded documents. Where it meets
an array, it continues into every element that is a document, and a
numeric part such as '0' in 'a.0.b' also selects the element at that
position. Arrays nested directly in arrays are not descended into.
"""


class _Missing:
    """Marker for a path that ends at a field the document lacks."""

    __slots__ = ()

    def __repr__(self):
        return 'MISSING'


MISSING = _Missing()


def is_array_index(part):
    """Return whether a path part selects an array element by position."""
    return part.isascii() and part.isdigit()


def iter_values(value, parts, start=0):
    """Yield every value that parts reach from value.

    Yields MISSING once for each branch of the path that ends at a
    missing field, so a caller can apply MongoDB's rule that null also
    matches a missing field.
    """
    if start == len(parts):
        yield value
        return
    part = parts[start]
    if isinstance(value, dict):
        if part in value:
            yield from iter_values(value[part], parts, start + 1)
        else:
            yield MISSING
        return
    if not isinstance(value, list):
        yield MISSING
        return
    found = False
    positional = is_array_index(part)
    if positional and int(part) < len(value):
        found = True
        yield from iter_values(value[int(part)], parts, start + 1)
    for item in value:
        # After a position, documents lacking a field of that name do
        # not count as missing: the position already found the field.
        if isinstance(item, dict) and (not positional or part in item):
            found = True
            yield from iter_values(item, parts, start)
    if not found:
        yield MISSING


def present_values(value, parts):
    """Return the values that parts reach, leaving out MISSING."""
    return [item for item in iter_values(value, parts)
            if item is not MISSING]

"""Dotted field paths: reading them for queries, resolving them for updates.

For queries, a path such as 'a.b' descends into embedded documents.
Where it meets an array, it continues into every element that is a
document, and a numeric part such as '0' in 'a.0.b' also selects the
element at that position. Arrays nested directly in arrays are not
descended into.

For updates, a path names one place: a numeric part is the only way
into an array, and missing embedded documents can be created.
"""

from pyforge.lib.store.documents import write_error

# MongoDB's error code for a path that runs into a scalar.
PATH_NOT_VIABLE = 28


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


def locate(document, parts, create):
    """Return (container, key) for the last part of a path.

    With create, missing embedded documents are added and a scalar in
    the way raises WriteError; without it, returns None instead.
    """
    node = document
    for depth, part in enumerate(parts):
        if isinstance(node, list) and not is_array_index(part):
            # Only a position can address one element of an array.
            if not create:
                return None
            raise _path_not_viable(parts, depth, parts[depth - 1], node)
        if depth == len(parts) - 1:
            return node, part
        child = get_field(node, part)
        if child is MISSING:
            if not create:
                return None
            child = {}
            store_field(node, part, child)
        elif not isinstance(child, (dict, list)):
            if not create:
                return None
            raise _path_not_viable(parts, depth + 1, part, child)
        node = child


def _path_not_viable(parts, depth, name, value):
    return write_error(
        "Cannot create field '%s' in element {%s: %r}"
        % (parts[depth], name, value), PATH_NOT_VIABLE)


def get_field(container, key):
    """Return container[key] for a document or an array, else MISSING."""
    if isinstance(container, dict):
        return container.get(key, MISSING)
    if not is_array_index(key):
        return MISSING
    index = int(key)
    return container[index] if index < len(container) else MISSING


def store_field(container, key, value):
    """Set container[key] in a document or, by position, in an array."""
    if isinstance(container, dict):
        container[key] = value
        return
    index = int(key)
    if index >= len(container):
        # MongoDB pads an array with nulls up to the position written.
        container.extend([None] * (index + 1 - len(container)))
    container[index] = value

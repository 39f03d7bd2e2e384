"""Projections: which fields of a matched document find() returns.

Supports MongoDB's inclusion ({'a': 1}) and exclusion ({'a': 0})
projections on top-level and dotted fields, with _id included unless
excluded. Projection operators ($slice, $elemMatch, $) and computed
fields are not supported and raise OperationFailure.
"""

from pymongo.errors import OperationFailure

from pyforge.lib.store.paths import MISSING

BAD_VALUE = 2
# MongoDB's error codes for projections mixing inclusion and exclusion.
EXCLUSION_IN_INCLUSION = 31254
INCLUSION_IN_EXCLUSION = 31253
PATH_COLLISION = 31250


class Projection:
    """A validated projection, applied to each returned document."""

    def __init__(self, spec):
        """Validate spec, a mapping of field paths to 1/True or 0/False."""
        self.id_flag = None
        self.inclusion = None
        self.tree = {}
        for path, flag in spec.items():
            include = _flag_value(path, flag)
            if path == '_id':
                self.id_flag = include
            else:
                self._add(path, include)
        if self.inclusion is None:
            # {'_id': 1} alone returns only _id; {} returns everything.
            self.inclusion = bool(self.id_flag)

    def _add(self, path, include):
        if self.inclusion is None:
            self.inclusion = include
        elif self.inclusion != include:
            if include:
                raise OperationFailure(
                    'Cannot do inclusion on field %s in exclusion '
                    'projection' % path, INCLUSION_IN_EXCLUSION)
            raise OperationFailure(
                'Cannot do exclusion on field %s in inclusion '
                'projection' % path, EXCLUSION_IN_INCLUSION)
        _insert_path(self.tree, path)

    def apply(self, document):
        """Return a new document with only the projected fields."""
        if not self.inclusion:
            projected = _exclude(document, self.tree)
            if self.id_flag is False:
                projected.pop('_id', None)
            return projected
        projected = {}
        if self.id_flag is not False and '_id' in document:
            projected['_id'] = document['_id']
        projected.update(_include(document, self.tree))
        return projected


def _flag_value(path, flag):
    if flag is True or flag is False:
        return flag
    if isinstance(flag, (int, float)):
        return bool(flag)
    raise OperationFailure(
        'projection value %r for field %r is not supported by this store; '
        'use 1 to include the field or 0 to exclude it' % (flag, path),
        BAD_VALUE)


def _insert_path(tree, path):
    parts = path.split('.')
    node = tree
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        child = node.get(part)
        if child is True or (last and child is not None):
            raise OperationFailure(
                'Path collision at %s' % path, PATH_COLLISION)
        if last:
            node[part] = True
        else:
            node = node.setdefault(part, {})


def _include(document, tree):
    projected = {}
    for name, value in document.items():
        branch = tree.get(name)
        if branch is None:
            continue
        if branch is True:
            projected[name] = value
            continue
        nested = _include_nested(value, branch)
        if nested is not MISSING:
            projected[name] = nested
    return projected


def _include_nested(value, tree):
    if isinstance(value, dict):
        return _include(value, tree)
    if isinstance(value, list):
        # Array elements that are not documents cannot hold the field.
        return [
            _include_nested(item, tree) for item in value
            if isinstance(item, (dict, list))]
    return MISSING


def _exclude(document, tree):
    projected = {}
    for name, value in document.items():
        branch = tree.get(name)
        if branch is True:
            continue
        if branch is None:
            projected[name] = value
        else:
            projected[name] = _exclude_nested(value, branch)
    return projected


def _exclude_nested(value, tree):
    if isinstance(value, dict):
        return _exclude(value, tree)
    if isinstance(value, list):
        return [_exclude_nested(item, tree) for item in value]
    return value

"""Reads of a collection, in one statement where one is enough.

A read whose plan is a single lookup, such as a find_one by _id or by
equality on an indexed field, runs as one SELECT in SQLite's implicit
transaction, with no BEGIN or COMMIT. The same statement reads the
schema version, which shows whether the connection's cached catalog
was valid for the rows it returned.

Any other read runs in an explicit read transaction (BEGIN ...
COMMIT), because its statements must see one snapshot: a scan checks
the schema version before it reads the documents, and several
lookups, such as $in on _id, must not mix documents from before and
after another connection's commit.
"""

import sqlite3

from pyforge.lib.store.catalog import UNKNOWN
from pyforge.lib.store.plan import (
    first_matches, matching_rows, natural_order, plan_lookups)
from pyforge.lib.store.storage import Table


def read_rows(collection, query, matcher, stop=None):
    """Return the Rows of a collection that match, in natural order.

    matcher comes from plan.compile_matcher(query). Stops after stop
    matches when stop is given.
    """
    if stop == 0:
        return []
    engine = collection._engine
    database = collection._database.name
    name = collection._name
    with engine.session() as state:
        if state.depth == 0:
            rows = _read_in_one_statement(
                state.catalog, database, name, query, matcher, stop)
            if rows is not None:
                return rows
        with engine.read() as state:
            info = state.catalog.collection(database, name)
            table = Table(state.catalog, info) if info else None
            return matching_rows(table, query, matcher, stop)


def _read_in_one_statement(catalog, database, name, query, matcher, stop):
    """Return the matching Rows, read by one statement, or None.

    Returns None when the read needs a transaction instead: the cache
    does not know the collection or was out of date, or the plan has
    more than one lookup.
    """
    info = catalog.cached(database, name)
    if info is UNKNOWN:
        return None
    if info is None:
        # The collection was missing, and still is unless the schema
        # changed.
        version = catalog.connection.execute(
            'PRAGMA schema_version').fetchone()[0]
        return [] if catalog.matches(version) else None
    lookups = plan_lookups(info, query)
    if lookups is None or len(lookups) != 1:
        return None
    try:
        version, rows = Table(catalog, info).versioned_lookup(lookups[0])
    except sqlite3.OperationalError as error:
        # Another connection dropped a table that the cache names.
        if not str(error).startswith('no such table'):
            raise
        catalog.clear()
        return None
    if not catalog.matches(version):
        return None
    return first_matches(natural_order(rows), matcher, stop)

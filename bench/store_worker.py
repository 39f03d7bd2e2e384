"""Benchmark a pyforge worker's store calls per message, and count SQL.

A worker that handles one message reads three documents, by _id or by
an indexed field, and then writes the message's record with an upsert
inside transaction(). This script runs that pattern on the SQLite
store in a file, and prints messages per second and the rate of each
operation on its own. It also prints how many SQL statements each
operation runs, traced with sqlite3's set_trace_callback. The count
leaves out the lines that SQLite starts with '--', which are
statements run inside another statement.

The store lives in a temporary folder that is removed at exit. Each
measurement stops after --repeat messages or --seconds seconds,
whichever comes first.

Run: python bench/store_worker.py [--docs N] [--repeat N] [--seconds S]
"""

import argparse
import platform
import sqlite3
import sys
import tempfile
import time

import pymongo

from pyforge.lib.store import connect, transaction

BATCH = 10_000
QUEUES = 10


def parse_arguments(argv):
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--docs', type=int, default=10_000,
        help='documents in each collection before the run '
             '(default: %(default)s)')
    parser.add_argument(
        '--repeat', type=int, default=3000,
        help='maximum messages or operations per measurement '
             '(default: %(default)s)')
    parser.add_argument(
        '--seconds', type=float, default=2.0,
        help='maximum seconds per measurement (default: %(default)s)')
    arguments = parser.parse_args(argv)
    if arguments.docs < 1:
        parser.error('--docs must be >= 1, got %d' % arguments.docs)
    if arguments.repeat < 1 or arguments.seconds <= 0:
        parser.error('--repeat and --seconds must be positive')
    return arguments


def fill(db, size):
    """Create the collections and indexes a worker reads and writes."""
    db.message_records.create_index([('queue', 1), ('status', 1)])
    db.projects.create_index('shortname', unique=True)
    for start in range(0, size, BATCH):
        numbers = range(start, min(start + BATCH, size))
        db.message_records.insert_many([
            dict(record(number, 'old-%d' % number),
                 _id=record_id(number, 'old-%d' % number))
            for number in numbers])
        db.projects.insert_many([
            {'shortname': 'project-%d' % number, 'tools': ['git']}
            for number in numbers])
    db.topology.insert_many([
        {'_id': 'queue-%d' % number, 'bindings': ['a.#', 'b.*']}
        for number in range(QUEUES)])


def record_id(number, message_id):
    """Return the _id of a message record, as the worker forms it."""
    return 'queue-%d/%s' % (number % QUEUES, message_id)


def record(number, message_id):
    """Return the fields that a worker sets on a message record."""
    return {'queue': 'queue-%d' % (number % QUEUES),
            'message_id': message_id, 'status': 'done', 'attempts': 1,
            'listener': 'examples.listeners.on_push',
            'duration': 0.001 * number}


def handle_message(db, number, size):
    """Run the store calls of one message: three reads, one upsert."""
    message_id = 'new-%d' % number
    db.message_records.find_one({'_id': record_id(number, message_id)})
    db.projects.find_one({'shortname': 'project-%d' % (number % size)})
    db.topology.find_one({'_id': 'queue-%d' % (number % QUEUES)})
    with transaction(db):
        db.message_records.update_one(
            {'_id': record_id(number, message_id)},
            {'$set': record(number, message_id)}, upsert=True)


def operations(db, size):
    """Return (label, function of a number) for each measured call."""
    return (
        ('worker message', lambda number: handle_message(db, number, size)),
        ('find_one by _id', lambda number: db.topology.find_one(
            {'_id': 'queue-%d' % (number % QUEUES)})),
        ('find_one by unique field', lambda number: db.projects.find_one(
            {'shortname': 'project-%d' % (number % size)})),
        ('upsert $set, new _id', lambda number: upsert(
            db, 'insert-%d' % number, number)),
        ('upsert $set, existing _id', lambda number: upsert(
            db, record_id(number % size, 'old-%d' % (number % size)),
            number)),
    )


def upsert(db, identifier, number):
    """Upsert one message record inside transaction(), as a flush does."""
    with transaction(db):
        db.message_records.update_one(
            {'_id': identifier}, {'$set': {'attempts': number}}, upsert=True)


def measure(operation, repeat, seconds, offset):
    """Return calls per second of operation(offset + i), i = 0, 1, ..."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    for number in range(offset, offset + repeat):
        operation(number)
        done += 1
        if time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - start)


def trace_statements(db, operation, number):
    """Return the SQL that one call of operation runs, as traced."""
    statements = []
    connection = db._engine.connection()
    connection.set_trace_callback(statements.append)
    try:
        operation(number)
    finally:
        connection.set_trace_callback(None)
    return statements


def is_nested(statement):
    """Return whether SQLite traced statement as run inside another."""
    return statement.startswith('--')


def main(argv=None):
    """Fill a store, then print statement counts and rates."""
    arguments = parse_arguments(argv)
    print('Python %s, SQLite %s, pymongo %s'
          % (platform.python_version(), sqlite3.sqlite_version,
             pymongo.version))
    print('%s, %s' % (platform.platform(), platform.processor() or
                      platform.machine()))
    print('%d documents per collection, at most %d calls or %.1f s per '
          'measurement' % (arguments.docs, arguments.repeat,
                           arguments.seconds))
    print()
    with tempfile.TemporaryDirectory(prefix='pyforge-bench-') as folder:
        db = connect('sqlite:///%s/store.sqlite' % folder)
        fill(db, arguments.docs)
        # Numbers past every measured range, so that the traced upsert
        # of a new _id inserts. A first call loads the catalog cache,
        # which later calls use.
        traced = 10 * arguments.repeat
        print('%-28s %10s %10s' % ('operation', 'statements', 'calls/s'))
        print('-' * 50)
        for position, (label, operation) in enumerate(
                operations(db, arguments.docs)):
            operation(traced)
            statements = trace_statements(db, operation, traced + 1)
            count = len([statement for statement in statements
                         if not is_nested(statement)])
            rate = measure(operation, arguments.repeat, arguments.seconds,
                           position * arguments.repeat)
            print('%-28s %10d %10.0f' % (label, count, rate))
        print()
        print('SQL of one worker message (nested statements indented):')
        for statement in trace_statements(
                db, operations(db, arguments.docs)[0][1], traced + 2):
            indent = '    ' if is_nested(statement) else '  '
            print(indent + ' '.join(statement.split()))
        db.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())

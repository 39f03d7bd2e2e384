"""Benchmark lookups and $inc updates on the SQLite store and mongomock.

For each collection size, both backends get a collection of that many
documents plus one, with a non-unique index on 'name'. The script times
find_one by _id, find_one by the indexed 'name' and update_one with
$inc, each on random existing documents. It prints operations per
second and two ratios: SQLite store against mongomock, and each size
against the smallest.

The SQLite store lives in a temporary folder that is removed at exit;
nothing else is written. Each measurement stops after --repeat
operations or --seconds seconds, whichever comes first.

Run: python bench/store_lookup.py [--docs 0,10000,100000] [--repeat N]
"""

import argparse
import platform
import random
import sqlite3
import sys
import tempfile
import time

import mongomock
import pymongo

from pyforge.lib.store import connect

BATCH = 10_000
LABELS = ('find_one by _id', 'find_one by indexed name', 'update_one $inc')


def parse_arguments(argv):
    """Parse the command line; return the options with .sizes added."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--docs', default='0,10000,100000',
        help='comma-separated collection sizes in documents '
             '(default: %(default)s)')
    parser.add_argument(
        '--repeat', type=int, default=2000,
        help='maximum operations per measurement (default: %(default)s)')
    parser.add_argument(
        '--seconds', type=float, default=1.5,
        help='maximum seconds per measurement (default: %(default)s)')
    parser.add_argument(
        '--seed', type=int, default=1,
        help='seed for the random document choice (default: %(default)s)')
    arguments = parser.parse_args(argv)
    arguments.sizes = [int(size) for size in arguments.docs.split(',')]
    if any(size < 0 for size in arguments.sizes):
        parser.error('--docs sizes must be >= 0, got %s' % arguments.docs)
    if arguments.repeat < 1 or arguments.seconds <= 0:
        parser.error('--repeat and --seconds must be positive')
    return arguments


def fill(collection, size):
    """Create the index and insert size + 1 documents in batches."""
    collection.create_index('name')
    total = size + 1
    for start in range(0, total, BATCH):
        stop = min(start + BATCH, total)
        collection.insert_many([
            {'_id': number, 'name': 'item-%d' % number, 'n': 0,
             'text': 'payload %d' % number}
            for number in range(start, stop)])


def measure(operation, targets, repeat, seconds):
    """Return operations per second of operation over targets."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    for target in targets[:repeat]:
        operation(target)
        done += 1
        if time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - start)


def operations(collection):
    """Return the benchmarked operations as (label, function) pairs."""
    functions = (
        lambda number: collection.find_one({'_id': number}),
        lambda number: collection.find_one({'name': 'item-%d' % number}),
        lambda number: collection.update_one(
            {'_id': number}, {'$inc': {'n': 1}}),
    )
    return zip(LABELS, functions)


def run_backend(db, size, arguments, randomizer):
    """Fill db.items with size documents; return {label: ops/s}."""
    collection = db.items
    fill(collection, size)
    targets = [randomizer.randint(0, size) for _ in range(arguments.repeat)]
    results = {}
    for label, operation in operations(collection):
        results[label] = measure(
            operation, targets, arguments.repeat, arguments.seconds)
    return results


def print_header(arguments):
    """Print the versions and settings the numbers depend on."""
    print('Python %s, SQLite %s, pymongo %s, mongomock %s'
          % (platform.python_version(), sqlite3.sqlite_version,
             pymongo.version, mongomock.__version__))
    print('%s, %s' % (platform.platform(), platform.processor() or
                      platform.machine()))
    print('sizes %s, at most %d operations or %.1f s per measurement'
          % (arguments.docs, arguments.repeat, arguments.seconds))
    print()


def print_table(rows, sizes):
    """Print one line per operation and size, with the two ratios."""
    header = '%-25s %7s %12s %15s %10s %10s %10s' % (
        'operation', 'docs', 'sqlite ops/s', 'mongomock ops/s',
        'sqlite/mm', 'sqlite/%d' % sizes[0], 'mm/%d' % sizes[0])
    print(header)
    print('-' * len(header))
    first = {}
    for label, size, store, reference in rows:
        first.setdefault(label, (store, reference))
        base_store, base_reference = first[label]
        print('%-25s %7d %12.0f %15.0f %10.3g %10.3g %10.3g' % (
            label, size, store, reference, store / reference,
            store / base_store, reference / base_reference))
    print()
    print('sqlite/mm: SQLite store rate / mongomock rate; sqlite/%d and '
          'mm/%d: rate at this size / rate at %d documents.'
          % (sizes[0], sizes[0], sizes[0]))


def main(argv=None):
    """Run every size on both backends and print the table."""
    arguments = parse_arguments(argv)
    print_header(arguments)
    rows = []
    with tempfile.TemporaryDirectory(prefix='pyforge-bench-') as folder:
        for size in arguments.sizes:
            store = connect('sqlite:///%s/store-%d.sqlite' % (folder, size))
            reference = mongomock.MongoClient()['bench']
            store_results = run_backend(
                store, size, arguments, random.Random(arguments.seed))
            reference_results = run_backend(
                reference, size, arguments, random.Random(arguments.seed))
            store.close()
            for label, rate in store_results.items():
                rows.append((label, size, rate, reference_results[label]))
    rows.sort(key=lambda row: LABELS.index(row[0]))
    print_table(rows, arguments.sizes)
    return 0


if __name__ == '__main__':
    sys.exit(main())

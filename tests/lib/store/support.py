"""Backends for the conformance suite and helpers shared by store tests.

A conformance test case class mixes its tests with one backend, which
supplies self.db: the SQLite store in memory, the SQLite store in a
file, or mongomock as a reference for MongoDB's behaviour.
"""

import functools
import multiprocessing
import shutil
import tempfile

import mongomock

from pyforge.lib.store import connect


def mongomock_differs(reason):
    """Skip a test on mongomock, where it differs from MongoDB.

    The test states MongoDB's documented behaviour, which the SQLite
    store follows. reason describes what mongomock does instead.
    """
    def decorate(test):
        @functools.wraps(test)
        def run(self):
            if self.backend == 'mongomock':
                self.skipTest('mongomock differs from MongoDB: ' + reason)
            return test(self)
        return run
    return decorate


class TemporaryFolderMixin:
    """Give each test a temporary folder, removed after the test."""

    def make_folder(self):
        folder = tempfile.mkdtemp(prefix='pyforge-store-test-')
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        return folder


def run_forked(target, args, timeout=60):
    """Run target(*args) in a forked child; return its exit code.

    A child still running after `timeout` seconds is killed, so a hang
    fails the test instead of blocking the whole run, which would
    otherwise wait for the child at exit.
    """
    child = multiprocessing.get_context('fork').Process(
        target=target, args=args, daemon=True)
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
    return child.exitcode


class MemoryBackend:
    """Run the tests on an in-memory SQLite store."""

    backend = 'sqlite-memory'

    def setUp(self):
        super().setUp()
        self.db = connect('sqlite://', 'test')
        self.addCleanup(self.db.close)


class FileBackend(TemporaryFolderMixin):
    """Run the tests on a SQLite store file in a temporary folder."""

    backend = 'sqlite-file'

    def setUp(self):
        super().setUp()
        folder = self.make_folder()
        self.db = connect('sqlite:///%s/store.sqlite' % folder, 'test')
        self.addCleanup(self.db.close)


class MongomockBackend:
    """Run the tests on mongomock, the reference for MongoDB semantics."""

    backend = 'mongomock'

    def setUp(self):
        super().setUp()
        self.db = mongomock.MongoClient()['test']

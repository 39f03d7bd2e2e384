"""connect(): each store URL form and the errors for invalid ones."""

import os
import sys
import unittest
from unittest import mock

import mongomock
import pymongo.database

from pyforge.exceptions import ConfigurationError
from pyforge.lib.store import connect, mask_password, sqlite
from tests.lib.store.support import TemporaryFolderMixin


class SQLiteURLTest(TemporaryFolderMixin, unittest.TestCase):
    """sqlite:// URLs."""

    def test_file_url_creates_folders(self):
        path = os.path.join(self.make_folder(), 'a', 'b', 'store.sqlite')
        db = connect('sqlite://' + path)
        self.addCleanup(db.close)
        self.assertIsInstance(db, sqlite.Database)
        self.assertTrue(os.path.isfile(path))
        self.assertEqual(db.name, 'pyforge')

    def test_file_url_database_name(self):
        path = os.path.join(self.make_folder(), 'store.sqlite')
        db = connect('sqlite://' + path, database='events')
        self.addCleanup(db.close)
        self.assertEqual(db.name, 'events')

    def test_file_url_keeps_documents(self):
        url = 'sqlite://%s/store.sqlite' % self.make_folder()
        db = connect(url)
        db.items.insert_one({'_id': 1})
        db.close()
        reopened = connect(url)
        self.addCleanup(reopened.close)
        self.assertEqual(reopened.items.find_one(1), {'_id': 1})

    def test_database_names_share_file_not_collections(self):
        url = 'sqlite://%s/store.sqlite' % self.make_folder()
        first = connect(url, 'first')
        second = connect(url, 'second')
        first.items.insert_one({'_id': 1})
        self.assertEqual(second.items.count_documents({}), 0)
        self.assertEqual(second.list_collection_names(), [])

    def test_percent_encoded_path(self):
        folder = self.make_folder()
        db = connect('sqlite://%s/my%%20store.sqlite' % folder)
        self.addCleanup(db.close)
        path = os.path.join(folder, 'my store.sqlite')
        self.assertTrue(os.path.isfile(path))

    def test_memory_urls_give_fresh_stores(self):
        for url in ('sqlite://', 'sqlite:///:memory:'):
            with self.subTest(url=url):
                first = connect(url)
                first.items.insert_one({'_id': 1})
                second = connect(url)
                self.assertEqual(second.items.count_documents({}), 0)
                self.assertEqual(first.items.count_documents({}), 1)

    def test_memory_url_database_name(self):
        self.assertEqual(connect('sqlite://').name, 'pyforge')
        self.assertEqual(connect('sqlite://', 'events').name, 'events')

    def test_relative_path_rejected(self):
        with self.assertRaises(ConfigurationError) as caught:
            connect('sqlite://data/store.sqlite')
        self.assertIn('absolute path', str(caught.exception))

    def test_folder_path_rejected(self):
        with self.assertRaises(ConfigurationError):
            connect('sqlite://%s/' % self.make_folder())

    def test_query_string_rejected(self):
        with self.assertRaises(ConfigurationError):
            connect('sqlite://%s/store.sqlite?mode=ro' % self.make_folder())

    def test_unopenable_file_rejected(self):
        path = os.path.join(self.make_folder(), 'store.sqlite')
        with open(path, 'wb') as stream:
            stream.write(b'not a database' * 100)
        with self.assertRaises(ConfigurationError) as caught:
            connect('sqlite://' + path)
        self.assertIn(path, str(caught.exception))


class MongoURLTest(unittest.TestCase):
    """mongodb://, mongodb+srv:// and mongomock:// URLs."""

    def test_mongomock_default_name(self):
        db = connect('mongomock://')
        self.assertIsInstance(db, mongomock.Database)
        self.assertEqual(db.name, 'pyforge')

    def test_mongomock_names(self):
        self.assertEqual(connect('mongomock://events').name, 'events')
        self.assertEqual(connect('mongomock://', 'other').name, 'other')

    def test_mongomock_missing(self):
        with mock.patch.dict(sys.modules, {'mongomock': None}):
            with self.assertRaises(ConfigurationError) as caught:
                connect('mongomock://')
        self.assertIn('pip install mongomock', str(caught.exception))

    def test_mongodb_name_from_path(self):
        db = connect('mongodb://localhost:27017/events', database='other')
        self.addCleanup(db.client.close)
        self.assertIsInstance(db, pymongo.database.Database)
        self.assertEqual(db.name, 'events')

    def test_mongodb_name_from_argument(self):
        db = connect('mongodb://localhost:27017', database='other')
        self.addCleanup(db.client.close)
        self.assertEqual(db.name, 'other')

    def test_mongodb_default_name(self):
        db = connect('mongodb://localhost:27017/')
        self.addCleanup(db.client.close)
        self.assertEqual(db.name, 'pyforge')

    def test_mongodb_srv_passes_url(self):
        url = 'mongodb+srv://user:pw@cluster.example.com/events'
        with mock.patch('pymongo.MongoClient') as client_class:
            connect(url)
        client_class.assert_called_once_with(url)
        client = client_class.return_value
        client.get_default_database.assert_called_once_with('pyforge')

    def test_invalid_mongodb_url_masked(self):
        with self.assertRaises(ConfigurationError) as caught:
            connect('mongodb://user:s3cret@[bad')
        message = str(caught.exception)
        self.assertNotIn('s3cret', message)
        self.assertIn('user:***@', message)


class UnsupportedURLTest(unittest.TestCase):
    """URLs of other schemes."""

    def test_unknown_scheme_masks_password(self):
        with self.assertRaises(ConfigurationError) as caught:
            connect('redis://admin:s3cret@localhost:6379/0')
        message = str(caught.exception)
        self.assertIn('redis://admin:***@localhost:6379/0', message)
        self.assertNotIn('s3cret', message)
        for scheme in ('mongodb://', 'mongodb+srv://', 'mongomock://',
                       'sqlite://'):
            self.assertIn(scheme, message)

    def test_missing_scheme(self):
        with self.assertRaises(ConfigurationError):
            connect('/var/lib/store.sqlite')

    def test_empty_url(self):
        for url in ('', None, '  '):
            with self.subTest(url=url):
                with self.assertRaises(ConfigurationError):
                    connect(url)


class MaskPasswordTest(unittest.TestCase):
    """mask_password()."""

    def test_cases(self):
        cases = [
            ('mongodb://u:p@host/db', 'mongodb://u:***@host/db'),
            ('mongodb://u:p@a@host/db', 'mongodb://u:***@host/db'),
            ('mongodb://host/db', 'mongodb://host/db'),
            ('mongodb://u@host/db', 'mongodb://u@host/db'),
            # An '@' in the query is taken for the end of the password:
            # masking more than needed leaks nothing.
            ('x://u:p@h/path?q=a@b', 'x://u:***@b'),
            ('amqp://u:pa?ss@h:5672/v', 'amqp://u:***@h:5672/v'),
            ('amqp://u:p#x@h/v', 'amqp://u:***@h/v'),
            ('amqp://u:p/w@h/v', 'amqp://u:***@h/v'),
            ('no scheme u:p@h', 'no scheme u:p@h'),
        ]
        for url, expected in cases:
            with self.subTest(url=url):
                self.assertEqual(mask_password(url), expected)

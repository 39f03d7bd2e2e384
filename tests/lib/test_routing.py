import unittest

from pyforge.exceptions import ConfigurationError
from pyforge.lib.routing import (
    check_pattern, check_routing_key, split_words, topic_matches)

#: (pattern, routing key, matches) as RabbitMQ routes them.
RABBITMQ_TABLE = [
    ('a.#', 'a', True),
    ('a.#', 'a.b', True),
    ('a.#', 'a.b.c', True),
    ('a.*', 'a', False),
    ('a.*', 'a.b', True),
    ('a.*', 'a.b.c', False),
    ('#', 'a', True),
    ('#', 'a.b', True),
    ('#', 'a.b.c', True),
    ('*.b', 'a', False),
    ('*.b', 'a.b', True),
    ('*.b', 'a.b.c', False),
    ('a.*.c', 'a', False),
    ('a.*.c', 'a.b', False),
    ('a.*.c', 'a.b.c', True),
    ('#.c', 'c', True),
    ('#.c', 'a.b.c', True),
    ('a.#.c', 'a.c', True),
    ('a.#.c', 'a.b.b.c', True),
    ('a.#.#', 'a', True),
    ('#.#', '', True),
    ('*', '', False),
    ('a.*', 'a.', True),
    ('a', 'a.', False),
    ('*.*', 'a', False),
    ('a.b', 'a.b', True),
    ('a.b', 'a.bb', False),
]


class TopicMatchTest(unittest.TestCase):

    def test_rabbitmq_table(self):
        for pattern, key, expected in RABBITMQ_TABLE:
            with self.subTest(pattern=pattern, key=key):
                self.assertEqual(topic_matches(pattern, key), expected)

    def test_empty_key_has_no_words(self):
        self.assertEqual(split_words(''), ())

    def test_trailing_dot_makes_empty_word(self):
        self.assertEqual(split_words('a.'), ('a', ''))


class CheckTest(unittest.TestCase):

    def test_valid_pattern_returned(self):
        self.assertEqual(check_pattern('wiki.*.edit'), 'wiki.*.edit')

    def test_wildcard_inside_word_rejected(self):
        with self.assertRaises(ConfigurationError) as raised:
            check_pattern('wiki.edit#')
        self.assertIn("'edit#'", str(raised.exception))

    def test_routing_key_with_wildcard_rejected(self):
        with self.assertRaises(ConfigurationError) as raised:
            check_routing_key('wiki.#')
        self.assertIn('wildcard', str(raised.exception))

    def test_empty_words_rejected(self):
        for value in ('wiki..edit', 'wiki.', '.wiki', '.'):
            with self.subTest(value=value):
                with self.assertRaises(ConfigurationError) as raised:
                    check_pattern(value)
                self.assertIn('empty word', str(raised.exception))
                with self.assertRaises(ConfigurationError):
                    check_routing_key(value)

    def test_routing_key_too_long_rejected(self):
        key = 'a' * 200 + '.' + 'é' * 30
        with self.assertRaises(ConfigurationError) as raised:
            check_routing_key(key)
        self.assertIn('261 bytes', str(raised.exception))

    def test_routing_key_not_string_rejected(self):
        with self.assertRaises(ConfigurationError):
            check_routing_key(b'wiki.edit')

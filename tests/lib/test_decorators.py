import unittest

from pyforge.exceptions import ConfigurationError
from pyforge.lib.decorators import audit, listened_patterns, react
from pyforge.lib.plugins import find_listeners, scan_app
from tests.apps import RecorderApp


class DecoratorTest(unittest.TestCase):

    def test_single_pattern_recorded(self):
        @audit('wiki.#')
        def listener(self, routing_key, data):
            pass

        self.assertEqual(listened_patterns(listener), {'audit': ('wiki.#',)})

    def test_stacked_patterns_keep_written_order(self):
        @react('wiki.#')
        @react('scm.commit')
        def listener(self, routing_key, data):
            pass

        self.assertEqual(listened_patterns(listener),
                         {'react': ('wiki.#', 'scm.commit')})

    def test_one_call_takes_several_patterns(self):
        @audit('a.*', 'b.#')
        def listener(self, routing_key, data):
            pass

        self.assertEqual(listened_patterns(listener)['audit'],
                         ('a.*', 'b.#'))

    def test_repeated_pattern_kept_once(self):
        @audit('a.#')
        @audit('a.#')
        def listener(self, routing_key, data):
            pass

        self.assertEqual(listened_patterns(listener)['audit'], ('a.#',))

    def test_both_decorators_on_one_method(self):
        @audit('wiki.#')
        @react('scm.#')
        def listener(self, routing_key, data):
            pass

        self.assertEqual(listened_patterns(listener),
                         {'audit': ('wiki.#',), 'react': ('scm.#',)})

    def test_decorator_returns_function_itself(self):
        def listener(self, routing_key, data):
            pass

        self.assertIs(audit('a')(listener), listener)

    def test_classmethod_above_or_below(self):
        class App(RecorderApp):
            @audit('a.#')
            @classmethod
            def outer(cls, routing_key, data):
                pass

            @classmethod
            @audit('b.#')
            def inner(cls, routing_key, data):
                pass

        found = {listener.method_name: listener
                 for listener in scan_app('app', App)}
        self.assertTrue(found['outer'].is_classmethod)
        self.assertTrue(found['inner'].is_classmethod)
        self.assertEqual(found['outer'].patterns, ('a.#',))
        self.assertEqual(found['inner'].patterns, ('b.#',))

    def test_staticmethod_rejected(self):
        with self.assertRaises(ConfigurationError) as raised:
            audit('a.#')(staticmethod(lambda routing_key, data: None))
        self.assertIn('staticmethod', str(raised.exception))

    def test_no_pattern_rejected(self):
        with self.assertRaises(ConfigurationError) as raised:
            react()
        self.assertIn("@react('wiki.#')", str(raised.exception))

    def test_invalid_patterns_rejected(self):
        cases = [('', 'is empty'), ('wiki#', "'wiki#'"), ('a.b*', "'b*'"),
                 ('x' * 256, '256 bytes'), (3, '3 is not a string'),
                 (None, 'None is not a string')]
        for pattern, expected in cases:
            with self.subTest(pattern=pattern):
                with self.assertRaises(ConfigurationError) as raised:
                    audit(pattern)
                self.assertIn(expected, str(raised.exception))

    def test_nothing_registered_at_import(self):
        before = [listener.queue for listener in find_listeners()]

        class Unregistered(RecorderApp):
            @audit('unregistered.#')
            def extra(self, routing_key, data):
                pass

        after = [listener.queue for listener in find_listeners()]
        self.assertEqual(after, before)

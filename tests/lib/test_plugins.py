import os
import sys
import tempfile
import textwrap
import unittest

from pyforge.app import Application
from pyforge.exceptions import ConfigurationError
from pyforge.lib.decorators import audit, react
from pyforge.lib.plugins import (
    find_apps, find_listeners, queue_name, scan_app)
from tests.apps import RecorderApp


class ScanAppTest(unittest.TestCase):

    def test_listener_per_method_and_exchange(self):
        listeners = scan_app('recorder', RecorderApp)
        self.assertEqual([listener.queue for listener in listeners], [
            'audit.recorder.audit_class',
            'audit.recorder.audit_instance',
            'react.recorder.react_class',
            'react.recorder.react_instance',
        ])

    def test_method_with_both_decorators_gets_two_queues(self):
        class App(Application):
            @audit('a.#')
            @react('b.#')
            def both(self, routing_key, data):
                pass

        listeners = scan_app('app', App)
        self.assertEqual(
            [(listener.queue, listener.patterns) for listener in listeners],
            [('audit.app.both', ('a.#',)), ('react.app.both', ('b.#',))])

    def test_queue_names_stable_when_methods_added_or_reordered(self):
        class First(Application):
            @audit('a.#')
            def alpha(self, routing_key, data):
                pass

            @react('b.#')
            def beta(self, routing_key, data):
                pass

        class Second(Application):
            @audit('new.#')
            def added(self, routing_key, data):
                pass

            @react('b.#')
            def beta(self, routing_key, data):
                pass

            @audit('a.#')
            def alpha(self, routing_key, data):
                pass

        first = {listener.method_name: listener.queue
                 for listener in scan_app('app', First)}
        second = {listener.method_name: listener.queue
                  for listener in scan_app('app', Second)}
        self.assertEqual(second['alpha'], first['alpha'])
        self.assertEqual(second['beta'], first['beta'])
        self.assertEqual(first['alpha'], queue_name('audit', 'app', 'alpha'))

    def test_inherited_listener_found(self):
        class Child(RecorderApp):
            pass

        names = [listener.method_name
                 for listener in scan_app('child', Child)]
        self.assertIn('audit_instance', names)

    def test_override_without_decorator_drops_listener(self):
        class Child(RecorderApp):
            def audit_instance(self, routing_key, data):
                pass

        queues = [listener.queue for listener in scan_app('child', Child)]
        self.assertNotIn('audit.child.audit_instance', queues)

    def test_label_names_module_class_and_method(self):
        listener = scan_app('recorder', RecorderApp)[0]
        self.assertEqual(listener.label,
                         'tests.apps:RecorderApp.audit_class')

    def test_non_application_class_rejected(self):
        with self.assertRaises(ConfigurationError) as raised:
            scan_app('thing', object)
        self.assertIn('pyforge.app.Application', str(raised.exception))


class FindAppsTest(unittest.TestCase):

    def test_installed_example_found_through_entry_point(self):
        from pyforge_examples.hello_forge import HelloForgeApp
        apps = find_apps(['hello_forge'])
        self.assertIs(apps['hello_forge'], HelloForgeApp)

    def test_example_listeners_listed(self):
        queues = [listener.queue for listener in find_listeners(['wiki'])]
        self.assertEqual(queues, ['react.wiki.count_events',
                                  'react.wiki.on_comment'])

    def test_unknown_app_lists_installed_ones(self):
        with self.assertRaises(ConfigurationError) as raised:
            find_apps(['no_such_app'])
        message = str(raised.exception)
        self.assertIn("'no_such_app'", message)
        self.assertIn('hello_forge', message)


class BrokenEntryPointTest(unittest.TestCase):
    """Apps registered by a distribution made up in a temporary folder."""

    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.addCleanup(self.folder.cleanup)
        sys.path.insert(0, self.folder.name)
        self.addCleanup(sys.path.remove, self.folder.name)

    def register(self, entry_points):
        info = os.path.join(self.folder.name, 'fakeapps-1.0.dist-info')
        os.mkdir(info)
        with open(os.path.join(info, 'METADATA'), 'w') as metadata:
            metadata.write('Metadata-Version: 2.1\nName: fakeapps\n'
                           'Version: 1.0\n')
        with open(os.path.join(info, 'entry_points.txt'), 'w') as points:
            points.write('[pyforge]\n' + textwrap.dedent(entry_points))

    def test_import_error_names_entry_point(self):
        self.register('broken = no_such_module_here:App\n')
        with self.assertRaises(ConfigurationError) as raised:
            find_apps(['broken'])
        message = str(raised.exception)
        self.assertIn("'broken'", message)
        self.assertIn('no_such_module_here', message)

    def test_other_apps_load_without_the_broken_one(self):
        self.register('broken = no_such_module_here:App\n')
        self.assertIn('hello_forge', find_apps(['hello_forge']))

    def test_same_name_from_two_places_rejected(self):
        self.register('hello_forge = somewhere_else:App\n')
        with self.assertRaises(ConfigurationError) as raised:
            find_apps(['hello_forge'])
        self.assertIn('two apps are registered', str(raised.exception))

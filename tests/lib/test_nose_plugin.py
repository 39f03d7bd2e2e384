"""``nosetests --with-pyforge``, run on small test modules in a subprocess.
"""

import os
import re
import subprocess
import textwrap
import unittest
from importlib import metadata

from nose.plugins.manager import EntryPointPluginManager

from pyforge.lib.nose_plugin import PyforgePlugin
from tests.support import (
    BIN, ROOT, TempDirTestCase, app_path_env, register_apps)

PASSING = '''
from pyforge.lib.publish import publish
from pyforge.lib.testing import BusTestCase, current_bus


class CommentTest(BusTestCase):

    def test_comment_stored(self):
        self.bus.create_project('demo', 'hello_forge:hello')
        publish('audit', 'hello_forge.comment', {
            'project_id': 'demo', 'mount_point': 'hello', 'text': 'Hi'})
        self.bus.deliver()
        options = self.bus.app_options('demo', 'hello')
        assert options['comments'] == ['Hi'], options

    def test_bad_comment_expected(self):
        self.bus.create_project('other', 'hello_forge:hello')
        publish('audit', 'hello_forge.comment', {
            'project_id': 'other', 'mount_point': 'hello'})
        self.bus.deliver()
        self.bus.assert_dead_letter(reason='max-attempts')


def test_function_finds_bus():
    assert current_bus().published == []
'''

FAILING_LISTENER = '''
from pyforge.lib.publish import publish
from pyforge.lib.testing import BusTestCase, current_bus


class CommentTest(BusTestCase):

    def test_bad_comment(self):
        self.bus.create_project('demo', 'hello_forge:hello')
        publish('audit', 'hello_forge.comment', {
            'project_id': 'demo', 'mount_point': 'hello'})
        self.bus.deliver()


def test_unknown_project():
    publish('audit', 'hello_forge.comment', {
        'project_id': 'nowhere', 'mount_point': 'hello', 'text': 'Hi'})
    current_bus().deliver()
'''

STORE_KEPT = '''
import unittest

from pyforge.lib.publish import publish
from pyforge.lib.testing import current_bus


class StoreTest(unittest.TestCase):

    def test_a_create_and_publish(self):
        bus = current_bus()
        bus.create_project('demo', 'hello_forge:hello')
        publish('audit', 'hello_forge.comment', {
            'project_id': 'demo', 'mount_point': 'hello', 'text': 'Hi'})
        assert bus.pending()

    def test_b_project_kept_messages_dropped(self):
        bus = current_bus()
        assert bus.pending() == [], bus.pending()
        assert bus.published == [], bus.published
        bus.project('demo')
'''

LOOP = '''
from pyforge.lib.publish import publish
from pyforge.lib.testing import BusTestCase, DeliveryLoopError


class LoopTest(BusTestCase):

    def test_loop_reported(self):
        self.bus.create_project('demo', 'chain:chain')
        publish('audit', 'chain.start', {
            'project_id': 'demo', 'mount_point': 'chain', 'left': 500})
        try:
            self.bus.deliver()
        except DeliveryLoopError as exc:
            assert 'after 3 delivery rounds' in str(exc), exc
            assert 'tests.apps:ChainApp.step' in str(exc), exc
        else:
            raise AssertionError('no DeliveryLoopError')
'''

NO_PLUGIN = '''
from pyforge.lib.testing import current_bus


def test_no_bus():
    current_bus()
'''


class PluginTestCase(TempDirTestCase):

    def setUp(self):
        super().setUp()
        self.ini = self.write_ini('memory://', 'sqlite://', '''\
            reactor.max_attempts = 3
            reactor.max_hops = 1000
            ''')
        register_apps(self.tmp, {'chain': 'tests.apps:ChainApp'})

    def nosetests(self, module_text, *options, env=None):
        """Run nosetests on a module of `module_text` with `options`."""
        path = os.path.join(self.tmp, 'test_module.py')
        with open(path, 'w', encoding='utf-8') as module:
            module.write(textwrap.dedent(module_text))
        process_env = app_path_env(self.tmp)
        process_env.update(env or {})
        return subprocess.run(
            [os.path.join(BIN, 'nosetests')] + list(options) + [path],
            cwd=self.tmp, env=process_env, capture_output=True, text=True,
            timeout=120)

    def assertPassed(self, result, tests):
        self.assertEqual(result.returncode, 0, result.stderr)
        plural = '' if tests == 1 else 's'
        self.assertIn('Ran %d test%s' % (tests, plural), result.stderr)


class RegistrationTest(unittest.TestCase):

    def test_registered_where_pynose_loads(self):
        groups = [group for group, _ in EntryPointPluginManager.entry_points]
        self.assertIn('nose.plugins.0.10', groups)
        found = [entry_point for entry_point
                 in metadata.entry_points(group='nose.plugins.0.10')
                 if entry_point.name == 'pyforge']
        self.assertEqual(len(found), 1)
        self.assertIs(found[0].load(), PyforgePlugin)

    def test_disabled_by_default(self):
        plugin = PyforgePlugin()
        self.assertFalse(plugin.enabled)
        self.assertEqual(plugin.name, 'pyforge')


class PluginRunTest(PluginTestCase):

    def test_passing_module_passes(self):
        result = self.nosetests(PASSING, '--with-pyforge=%s' % self.ini)
        self.assertPassed(result, 3)

    def test_enabled_from_environment(self):
        result = self.nosetests(PASSING, env={'NOSE_WITH_PYFORGE': self.ini})
        self.assertPassed(result, 3)

    def test_failing_listener_reported(self):
        result = self.nosetests(FAILING_LISTENER,
                                '--with-pyforge=%s' % self.ini)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn('FAILED (failures=2)', result.stderr)
        self.assertIn('UnexpectedDeadLetters', result.stderr)
        self.assertIn("'hello_forge.comment' on audit.hello_forge.auditor "
                      '(pyforge_examples.hello_forge:HelloForgeApp.auditor)'
                      ': max-attempts after 3 attempt(s): ValueError: '
                      'hello_forge.comment needs a non-empty "text"',
                      result.stderr)
        self.assertIn("project 'nowhere' does not exist", result.stderr)

    def test_failing_listener_logs_captured(self):
        result = self.nosetests(FAILING_LISTENER, '--capture-logs',
                                '--with-pyforge=%s' % self.ini)
        self.assertIn('>> begin captured logging <<', result.stderr)
        self.assertIn('failed on message', result.stderr)
        self.assertIn('raise ValueError', result.stderr)

    def test_store_kept_for_the_run(self):
        result = self.nosetests(STORE_KEPT, '--with-pyforge=%s' % self.ini)
        self.assertPassed(result, 2)

    def test_store_fresh_for_each_test(self):
        result = self.nosetests(STORE_KEPT, '--with-pyforge=%s' % self.ini,
                                '--pyforge-fresh-store=test')
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn('FAILED (errors=1)', result.stderr)
        self.assertIn("project 'demo' does not exist on this bus",
                      result.stderr)

    def test_max_rounds_option(self):
        result = self.nosetests(LOOP, '--with-pyforge=%s' % self.ini,
                                '--pyforge-max-rounds=3')
        self.assertPassed(result, 1)

    def test_without_plugin_no_bus(self):
        result = self.nosetests(NO_PLUGIN)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn('no pyforge test bus is running', result.stderr)


class GuideExampleTest(PluginTestCase):

    def test_guide_example_passes(self):
        with open(os.path.join(ROOT, 'docs', 'testing.md'),
                  encoding='utf-8') as guide:
            text = guide.read()
        section = text.split('## A complete example', 1)[1]
        example = re.search(r'```python\n(.*?)```', section, re.S).group(1)
        result = self.nosetests(
            example, '--with-pyforge=%s' % os.path.join(ROOT, 'test.ini'))
        self.assertPassed(result, 6)


class PluginUsageTest(PluginTestCase):

    def test_missing_config_file(self):
        result = self.nosetests(PASSING, '--with-pyforge=missing.ini')
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn('nosetests: error: --with-pyforge=missing.ini: config '
                      'file missing.ini not found', result.stderr)

    def test_invalid_setting(self):
        with open(self.ini, 'a', encoding='utf-8') as ini:
            ini.write('reactor.prefetch = many\n')
        result = self.nosetests(PASSING, '--with-pyforge=%s' % self.ini)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn('reactor.prefetch = many is invalid',
                      result.stderr)

    def test_invalid_max_rounds(self):
        result = self.nosetests(PASSING, '--with-pyforge=%s' % self.ini,
                                '--pyforge-max-rounds=0')
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn('--pyforge-max-rounds must be 1 or more, not 0',
                      result.stderr)

    def test_invalid_fresh_store(self):
        result = self.nosetests(PASSING, '--with-pyforge=%s' % self.ini,
                                '--pyforge-fresh-store=never')
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("invalid choice: 'never'", result.stderr)


if __name__ == '__main__':
    unittest.main()

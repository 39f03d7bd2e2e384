"""The nose plugin: ``nosetests --with-pyforge=test.ini``.

pynose loads it from the ``nose.plugins.0.10`` entry point group, where
nose looks for plugins written to its current API (its ``nose.plugins``
group is for the 0.9 API). nose imports every installed plugin at
start, so this module imports the rest of pyforge only once enabled.
"""

import sys
import unittest

from nose.plugins import Plugin

#: Values of ``--pyforge-fresh-store``.
FRESH_PER_RUN = 'run'
FRESH_PER_TEST = 'test'


class PyforgePlugin(Plugin):
    """Run the tests on an in-process pyforge bus."""

    name = 'pyforge'
    enableOpt = 'pyforge_config'

    def __init__(self):
        super().__init__()
        self.settings = None
        self.fresh = FRESH_PER_RUN
        self.max_rounds = None
        self.bus = None

    def options(self, parser, env):
        parser.add_option(
            '--with-pyforge', dest=self.enableOpt, metavar='INI',
            default=env.get('NOSE_WITH_PYFORGE'),
            help='Run the tests on an in-process pyforge bus: kombu '
                 'memory:// and a fresh in-memory store, with the other '
                 'settings of [app:main] in this .ini file. Tests find it '
                 'with pyforge.lib.testing.current_bus(). '
                 '[NOSE_WITH_PYFORGE]')
        parser.add_option(
            '--pyforge-fresh-store', dest='pyforge_fresh_store',
            type='choice', choices=[FRESH_PER_RUN, FRESH_PER_TEST],
            default=env.get('NOSE_PYFORGE_FRESH_STORE', FRESH_PER_RUN),
            metavar='run|test',
            help='"run" (default): one store for the whole run, kept '
                 'from test to test; "test": a new bus and store for '
                 'every test. Messages, held retries and records of '
                 'calls are dropped before every test either way. '
                 '[NOSE_PYFORGE_FRESH_STORE]')
        parser.add_option(
            '--pyforge-max-rounds', dest='pyforge_max_rounds', type='int',
            default=env.get('NOSE_PYFORGE_MAX_ROUNDS'), metavar='N',
            help='Delivery rounds bus.deliver() runs before it fails the '
                 'test as a publish loop (default: 100). '
                 '[NOSE_PYFORGE_MAX_ROUNDS]')

    def configure(self, options, conf):
        self.conf = conf
        config_path = getattr(options, self.enableOpt, None)
        self.enabled = bool(config_path)
        if not self.enabled:
            return
        from pyforge.exceptions import PyforgeError
        from pyforge.lib.testing import load_test_settings

        self.fresh = options.pyforge_fresh_store
        max_rounds = options.pyforge_max_rounds
        if max_rounds is not None and int(max_rounds) < 1:
            _usage_error('--pyforge-max-rounds must be 1 or more, not %s'
                         % max_rounds)
        self.max_rounds = None if max_rounds is None else int(max_rounds)
        try:
            self.settings = load_test_settings(config_path)
        except PyforgeError as exc:
            _usage_error('--with-pyforge=%s: %s' % (config_path, exc))

    def begin(self):
        if self.fresh == FRESH_PER_RUN:
            self._start_bus()

    def beforeTest(self, test):
        if self.fresh == FRESH_PER_TEST:
            self._start_bus()
        else:
            self.bus.reset()
            self.bus.activate()
        case = getattr(test, 'test', None)
        if isinstance(case, unittest.TestCase):
            # Runs after the test's own cleanups, and fails the test.
            case.addCleanup(self.bus.check_dead_letters)

    def afterTest(self, test):
        if self.fresh == FRESH_PER_TEST:
            self._stop_bus()

    def finalize(self, result):
        self._stop_bus()

    def _start_bus(self):
        from pyforge.lib.testing import Bus
        from pyforge.lib.testing.case import set_plugin_bus

        kwargs = {}
        if self.max_rounds is not None:
            kwargs['max_rounds'] = self.max_rounds
        self.bus = Bus(self.settings, **kwargs)
        self.bus.activate()
        set_plugin_bus(self.bus)

    def _stop_bus(self):
        if self.bus is None:
            return
        from pyforge.lib.testing.case import set_plugin_bus

        set_plugin_bus(None)
        self.bus.close()
        self.bus = None


def _usage_error(text):
    print('nosetests: error: %s' % text, file=sys.stderr)
    sys.exit(2)

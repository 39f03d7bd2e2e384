"""BusTestCase, and the bus that the nose plugin runs tests on."""

import unittest

from pyforge.exceptions import ConfigurationError
from pyforge.lib.testing.bus import Bus

_plugin_bus = None


def current_bus():
    """Return the bus of ``nosetests --with-pyforge``.

    Raises :class:`ConfigurationError` when the plugin is not running,
    or runs with ``--pyforge-fresh-store=test`` and no test is running.
    """
    if _plugin_bus is None:
        raise ConfigurationError(
            'no pyforge test bus is running; run nosetests '
            '--with-pyforge=test.ini, or create a bus with '
            'pyforge.lib.testing.Bus(config)')
    return _plugin_bus


def set_plugin_bus(bus):
    """Make `bus` what :func:`current_bus` returns; None for no bus."""
    global _plugin_bus
    _plugin_bus = bus


class BusTestCase(unittest.TestCase):
    """A TestCase whose tests find their bus in ``self.bus``.

    Under ``nosetests --with-pyforge`` that is the plugin's bus. A class
    that sets `bus_config` gets a fresh :class:`Bus` of its own for each
    test instead, made current so that ``publish()`` sends through it.
    Either way, a test fails when the bus dead-lettered a message that
    it did not match with ``self.bus.assert_dead_letter()``.
    """

    #: An .ini file (or settings dict) for a bus of each test's own;
    #: None takes the plugin's bus.
    bus_config = None
    #: With `bus_config`: entry point names of the installed apps to
    #: run (all when None), and ``{name: class}`` of apps to add.
    bus_apps = None
    bus_extra_apps = None

    def setUp(self):
        super().setUp()
        if self.bus_config is None:
            # The plugin checks the dead letters after every test.
            self.bus = current_bus()
            return
        self.bus = Bus(self.bus_config, apps=self.bus_apps,
                       extra_apps=self.bus_extra_apps)
        self.addCleanup(self.bus.close)
        self.bus.activate()
        self.addCleanup(self.bus.check_dead_letters)

"""The example apps on the test bus, as their tests use them."""

import os

from pyforge.lib.testing import BusTestCase
from tests.support import ROOT

TEST_INI = os.path.join(ROOT, 'test.ini')


class ExampleAppCase(BusTestCase):
    """Gives each test a bus of test.ini with the project ``demo``: the
    hello_forge app at ``hello`` and the wiki at ``wiki`` and ``notes``.
    """

    bus_config = TEST_INI

    def setUp(self):
        super().setUp()
        self.bus.create_project('demo', 'hello_forge:hello', 'wiki:wiki',
                                'wiki:notes')

    def calls_of(self, method_name):
        """Return the recorded calls of the listeners `method_name`."""
        return [call for call in self.bus.calls
                if call.method_name == method_name]

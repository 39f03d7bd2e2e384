"""Helpers for testing apps' listeners without a broker.

:class:`Bus` delivers messages in-process through the code that workers
run, on kombu's ``memory://`` transport and an in-memory store, and
records what was published, called and dead-lettered.
:class:`BusTestCase` gives each test a bus, and the nose plugin
(``nosetests --with-pyforge=test.ini``, in :mod:`pyforge.lib.nose_plugin`)
runs a whole test run on one. docs/testing.md is the guide.
"""

from pyforge.lib.testing.broker import load_test_settings
from pyforge.lib.testing.bus import (
    DEFAULT_MAX_ROUNDS, Bus, DeliveryLoopError)
from pyforge.lib.testing.captured import (
    CallResult, DeadLetter, DeliveryReport, FakeClock, Handled,
    ListenerCall, PendingMessage, PublishedMessage, RecordingListener)
from pyforge.lib.testing.case import BusTestCase, current_bus
from pyforge.lib.testing.dead_letters import UnexpectedDeadLetters

__all__ = [
    'DEFAULT_MAX_ROUNDS', 'Bus', 'BusTestCase', 'CallResult', 'DeadLetter',
    'DeliveryLoopError', 'DeliveryReport', 'FakeClock', 'Handled',
    'ListenerCall', 'PendingMessage', 'PublishedMessage',
    'RecordingListener', 'UnexpectedDeadLetters', 'current_bus',
    'load_test_settings',
]

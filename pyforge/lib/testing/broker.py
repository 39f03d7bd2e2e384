"""The test bus's broker, store and environment.

A bus never reaches a real broker or store: it always runs on kombu's
``memory://`` transport and a fresh in-memory SQLite store, and its
environment hands ``publish()`` the bus's own publisher.
"""

import collections

from kombu.transport import memory, virtual

from pyforge.config import Settings, load_settings
from pyforge.environment import Environment
from pyforge.exceptions import ConfigurationError
from pyforge.lib import amqp
from pyforge.lib.transport import rabbit_compatible

#: The broker and store of every bus, whatever amqp.url and mongo.url
#: are set to.
BROKER_URL = 'memory://'
STORE_URL = 'sqlite://'


def load_test_settings(config=None):
    """Return the Settings of `config` on the in-process broker and store.

    `config` is the path of an .ini file, a dict of settings, Settings,
    or None for the defaults. Its ``amqp.url`` and ``mongo.url`` are
    replaced, so one .ini file may also name a real broker and store.
    """
    if config is None:
        config = {}
    if isinstance(config, dict):
        values = dict(config)
        values.setdefault('amqp.url', BROKER_URL)
        values.setdefault('mongo.url', STORE_URL)
        config = Settings.from_dict(values)
    elif not isinstance(config, Settings):
        config = load_settings(config)
    return config.replace(amqp_url=BROKER_URL, mongo_url=STORE_URL)


class CapturingPublisher(amqp.Publisher):
    """A Publisher that reports every message it sent."""

    def __init__(self, connection, on_sent):
        super().__init__(connection)
        self._on_sent = on_sent

    def send(self, message):
        routed = super().send(message)
        self._on_sent(message)
        return routed


class BusEnvironment(Environment):
    """The environment of a bus: its store, broker and publisher."""

    def __init__(self, bus):
        super().__init__(bus.settings)
        self._bus = bus

    @property
    def db(self):
        return self._bus.db

    def connection(self):
        return self._bus.new_connection()

    def publisher(self):
        if self._bus._closed:
            raise ConfigurationError(
                'the test bus of this environment is closed; publish '
                'while a test runs, or configure another environment')
        return self._bus.publisher

    def close(self):
        # The bus owns its connection and closes it in Bus.close().
        pass


class _PeekingChannel:
    """Channel mixin that lists a queue's messages without taking them."""

    def peek(self, queue):
        return [self.Message(payload, channel=self)
                for payload in list(self._queue_for(queue).queue)]


def private_memory_transport():
    """Return a memory:// transport class with a broker of its own.

    kombu keeps the memory broker's queues and bindings in class
    attributes. A subclass with attributes of its own keeps the messages
    of each bus apart from those of other buses in the process.
    """
    base = rabbit_compatible(memory.Transport)
    channel = type(base.Channel.__name__, (
        _PeekingChannel, base.Channel), {
        'queues': {},
        'events': collections.defaultdict(set),
        '__module__': __name__,
    })
    return type(base.__name__, (base,), {
        'Channel': channel,
        'global_state': virtual.BrokerState(),
        '__module__': __name__,
    })

"""The environment of a process: settings, database and broker.

Commands and workers build one from the .ini file. Code outside them,
such as a web application that publishes messages, calls
:func:`configure` once at startup.
"""

import logging
import os
import threading

from pyforge.config import Settings, load_settings
from pyforge.exceptions import ConfigurationError
from pyforge.lib import amqp, store
from pyforge.model import ensure_indexes

log = logging.getLogger(__name__)


class Environment:
    """Lazily opened database and broker connections for one process.

    Connections are per process, since a forked worker must not share
    its parent's sockets, and the publisher is per thread, since a kombu
    connection is not thread-safe.
    """

    def __init__(self, settings):
        #: :class:`pyforge.config.Settings`.
        self.settings = settings
        self._pid = None
        self._db = None
        self._local = threading.local()

    @property
    def db(self):
        """The database named by ``mongo.url``, with pyforge's indexes."""
        self._check_process()
        if self._db is None:
            self._db = store.connect(self.settings.mongo_url,
                                     self.settings.mongo_database)
            ensure_indexes(self._db)
        return self._db

    def connection(self):
        """Return a new, not yet opened broker connection."""
        return amqp.connect(self.settings)

    def publisher(self):
        """Return this thread's :class:`pyforge.lib.amqp.Publisher`."""
        self._check_process()
        publisher = getattr(self._local, 'publisher', None)
        if publisher is None:
            connection = self.connection()
            amqp.ensure_connected(connection, self.settings,
                                  max_retries=3)
            log.info('connected to %s to publish',
                     amqp.mask_url(self.settings.amqp_url))
            publisher = self._local.publisher = amqp.Publisher(connection)
        return publisher

    def close(self):
        """Close this thread's publisher connection."""
        publisher = getattr(self._local, 'publisher', None)
        if publisher is not None:
            self._local.publisher = None
            publisher.connection.release()

    def _check_process(self):
        pid = os.getpid()
        if self._pid != pid:
            # Inherited through fork: open connections of our own.
            self._pid = pid
            self._db = None
            self._local = threading.local()


_current = None


def configure(config):
    """Make `config` the current environment and return it.

    `config` is the path of an .ini file, :class:`Settings`, or a dict of
    settings such as ``{'amqp.url': ..., 'mongo.url': ...}``.
    """
    global _current
    if isinstance(config, Environment):
        environment = config
    elif isinstance(config, Settings):
        environment = Environment(config)
    elif isinstance(config, dict):
        environment = Environment(Settings.from_dict(config))
    else:
        environment = Environment(load_settings(config))
    if _current is not None and _current is not environment:
        _current.close()
    _current = environment
    return environment


def current_environment():
    """Return the current environment; raise if none is configured."""
    if _current is None:
        raise ConfigurationError(
            'pyforge is not configured in this process; call '
            "pyforge.environment.configure('development.ini') first")
    return _current

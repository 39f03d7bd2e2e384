"""Settings of the message bus, read from the ``[app:main]`` section.

Keys are lowercase and dotted: ``amqp.*`` for the broker, ``mongo.*`` for
the database and ``reactor.*`` for the workers. Other keys in the section
belong to the apps and are kept in :attr:`Settings.raw`.
"""

import configparser
import dataclasses
import math
import os

from paste.deploy.loadwsgi import NicerConfigParser

from pyforge.exceptions import ConfigurationError

#: Section of the .ini file that holds the settings.
SECTION = 'app:main'

_PREFIXES = ('amqp.', 'mongo.', 'reactor.')


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings; each field documents its .ini key and unit."""

    #: ``amqp.url``: a kombu URL, e.g. ``amqp://guest:guest@127.0.0.1//``
    #: or ``filesystem:///path/to/folder`` for the embedded broker.
    amqp_url: str
    #: ``mongo.url``: ``mongodb://...``, or ``sqlite:///path/file.sqlite``
    #: for the embedded document store.
    mongo_url: str
    #: ``mongo.database``: database name when the URL names none.
    mongo_database: str = 'pyforge'
    #: ``amqp.heartbeat``: seconds between AMQP heartbeats; 0 disables.
    amqp_heartbeat: float = 60.0
    #: ``amqp.connect_timeout``: seconds to wait for the broker to answer.
    amqp_connect_timeout: float = 5.0
    #: ``amqp.polling_interval``: seconds between polls of an idle queue on
    #: transports without push delivery (``filesystem://``).
    amqp_polling_interval: float = 0.05
    #: ``reactor.max_attempts``: times a failing listener is tried before
    #: its message is dead-lettered.
    reactor_max_attempts: int = 5
    #: ``reactor.retry_delay``: seconds before the first retry.
    reactor_retry_delay: float = 1.0
    #: ``reactor.retry_backoff``: factor applied to the delay per retry.
    reactor_retry_backoff: float = 2.0
    #: ``reactor.retry_max_delay``: upper bound of a retry delay, seconds.
    reactor_retry_max_delay: float = 300.0
    #: ``reactor.prefetch``: messages a worker takes from a queue ahead.
    reactor_prefetch: int = 20
    #: ``reactor.max_hops``: listener-to-listener publishes a message may
    #: go through before it is dead-lettered as a loop.
    reactor_max_hops: int = 10
    #: ``reactor.shutdown_timeout``: seconds a stopping worker waits for
    #: the listener in hand before it exits and the broker redelivers.
    reactor_shutdown_timeout: float = 30.0
    #: ``reactor.max_body_size``: largest message body accepted, bytes.
    reactor_max_body_size: int = 1024 * 1024
    #: ``reactor.restart_delay``: seconds before a dead worker is
    #: restarted; doubled for each quick death, up to a minute.
    reactor_restart_delay: float = 1.0
    #: The whole ``[app:main]`` section, apps' own keys included.
    raw: dict = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, values):
        """Validate a dict of .ini strings (or Python values)."""
        known = {_key(field.name): field for field in _fields()}
        unknown = sorted(
            key for key in values
            if key.startswith(_PREFIXES) and key not in known)
        if unknown:
            raise ConfigurationError(
                'unknown setting %s; pyforge knows: %s'
                % (', '.join(unknown), ', '.join(sorted(known))))

        kwargs = {}
        for key, field in known.items():
            if key in values:
                kwargs[field.name] = _convert(key, values[key], field)
            elif field.default is dataclasses.MISSING:
                raise ConfigurationError(
                    'the setting %s is missing; add it to [%s], e.g. %s'
                    % (key, SECTION, _EXAMPLES[key]))
        return cls(raw=dict(values), **kwargs)

    def replace(self, **changes):
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_EXAMPLES = {
    'amqp.url': 'amqp.url = amqp://guest:guest@127.0.0.1:5672//',
    'mongo.url': 'mongo.url = sqlite:///%(here)s/data/pyforge.sqlite',
}


def _fields():
    return [field for field in dataclasses.fields(Settings)
            if field.name != 'raw']


def _key(field_name):
    prefix, _, rest = field_name.partition('_')
    return '%s.%s' % (prefix, rest)


def _convert(key, value, field):
    kind = type(field.default) if field.default is not dataclasses.MISSING \
        else str
    if not isinstance(value, str):
        text = repr(value)
    else:
        text = value = value.strip()
    try:
        if kind is int:
            number = int(value)
        elif kind is float:
            number = float(value)
        else:
            if not value:
                raise ValueError('empty')
            return value
    except (TypeError, ValueError):
        raise ConfigurationError(
            'the setting %s = %s is invalid; expected %s'
            % (key, text, _EXPECTED[kind])) from None
    if number < 0 or not math.isfinite(number):
        raise ConfigurationError(
            'the setting %s = %s is invalid; it must be a finite number, '
            'zero or more' % (key, text))
    maximum = _MAXIMUM.get(key)
    if maximum is not None and number > maximum[0]:
        raise ConfigurationError(
            'the setting %s = %s is invalid; it must be at most %s (%s)'
            % (key, text, maximum[0], maximum[1]))
    if key in _AT_LEAST_ONE and number < 1:
        raise ConfigurationError(
            'the setting %s = %s is invalid; it must be 1 or more'
            % (key, text))
    return number


_EXPECTED = {
    int: 'a whole number',
    float: 'a number of seconds',
    str: 'a non-empty string',
}

#: Upper bounds, with the reason.
_MAXIMUM = {
    'reactor.prefetch': (65535, 'AMQP counts prefetch in 16 bits'),
}

_AT_LEAST_ONE = {
    'reactor.max_attempts', 'reactor.prefetch', 'reactor.max_body_size',
    'reactor.retry_backoff',
}


def load_settings(config_path):
    """Read and validate the settings of the .ini file at `config_path`.

    ``%(here)s`` in values is the folder of the file, as in PasteDeploy.
    """
    path = os.path.abspath(config_path)
    if not os.path.isfile(path):
        raise ConfigurationError(
            'config file %s not found; pass the path of an .ini file with '
            'an [app:main] section' % config_path)
    parser = NicerConfigParser(path, defaults={
        'here': os.path.dirname(path),
        '__file__': path,
    })
    parser.optionxform = str
    try:
        with open(path, encoding='utf-8') as config_file:
            parser.read_file(config_file)
    except Exception as exc:
        raise ConfigurationError(
            'cannot parse %s: %s' % (config_path, exc)) from exc
    if not parser.has_section(SECTION):
        raise ConfigurationError(
            '%s has no [%s] section; add one with amqp.url and mongo.url'
            % (config_path, SECTION))
    try:
        values = dict(parser.items(SECTION))
    except configparser.InterpolationError as exc:
        # The error quotes the value, which may hold a password.
        raise ConfigurationError(
            'the setting %s in [%s] of %s has a "%%" that is not part of '
            '%%(name)s; write %%%% for a literal %%, as in a percent-encoded '
            'password' % (exc.option, SECTION, config_path)) from None
    except Exception as exc:
        raise ConfigurationError(
            'cannot read [%s] of %s: %s' % (SECTION, config_path, exc)
        ) from exc
    for name in ('here', '__file__'):
        values.pop(name, None)
    return Settings.from_dict(values)

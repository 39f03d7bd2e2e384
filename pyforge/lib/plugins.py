"""Discovery of apps through entry points, and their listeners.

An app is a class registered under the ``pyforge`` entry point group. Each
of its methods marked with ``@audit`` or ``@react`` becomes a
:class:`Listener`: one queue per method and exchange, bound with all the
method's patterns.
"""

import dataclasses
import inspect
import logging
import re
from importlib import metadata

from pyforge.app import Application
from pyforge.exceptions import ConfigurationError
from pyforge.lib.decorators import listened_patterns
from pyforge.lib.routing import EXCHANGES

log = logging.getLogger(__name__)

#: Entry point group under which packages register app classes.
ENTRY_POINT_GROUP = 'pyforge'

_APP_NAME = re.compile(r'\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z')


@dataclasses.dataclass(frozen=True)
class Listener:
    """One method of an app that consumes one queue on one exchange."""

    #: Entry point name of the app, e.g. ``hello_forge``.
    app_name: str
    app_class: type
    method_name: str
    #: ``audit`` or ``react``.
    exchange: str
    #: Binding patterns, in the order the decorators list them.
    patterns: tuple
    #: True when the method is a classmethod, called once per message.
    is_classmethod: bool

    @property
    def queue(self):
        """Name of the durable queue this listener consumes."""
        return queue_name(self.exchange, self.app_name, self.method_name)

    @property
    def label(self):
        """``module:Class.method``, as shown to people."""
        return '%s:%s.%s' % (self.app_class.__module__,
                             self.app_class.__qualname__, self.method_name)

    def method_for(self, target):
        """Return the bound method to call on an app instance or class."""
        return getattr(target, self.method_name)


def queue_name(exchange, app_name, method_name):
    """Return the queue name of a listener.

    The name depends only on what identifies the listener, never on the
    order of declarations, so adding a method renames no queue.
    """
    return '%s.%s.%s' % (exchange, app_name, method_name)


def scan_app(app_name, app_class):
    """Return the listeners of `app_class`, sorted by queue name."""
    if not (inspect.isclass(app_class)
            and issubclass(app_class, Application)):
        raise ConfigurationError(
            'entry point %r in group %r names %r, which is not a subclass '
            'of pyforge.app.Application; point it at your app class'
            % (app_name, ENTRY_POINT_GROUP, app_class))
    listeners = []
    for method_name in sorted(dir(app_class)):
        if method_name.startswith('__'):
            continue
        raw = inspect.getattr_static(app_class, method_name)
        if isinstance(raw, staticmethod):
            if listened_patterns(raw):
                raise ConfigurationError(
                    '%s.%s is a staticmethod marked as a listener; make it '
                    'an instance method or a classmethod'
                    % (app_class.__qualname__, method_name))
            continue
        listens = listened_patterns(raw)
        for exchange in EXCHANGES:
            if exchange not in listens:
                continue
            listeners.append(Listener(
                app_name=app_name,
                app_class=app_class,
                method_name=method_name,
                exchange=exchange,
                patterns=listens[exchange],
                is_classmethod=isinstance(raw, classmethod),
            ))
    listeners.sort(key=lambda listener: listener.queue)
    return listeners


def registered_apps():
    """Return the entry point names of the installed apps, sorted."""
    return sorted(_entry_points())


def _entry_points():
    entry_points = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = entry_point.name
        if not _APP_NAME.match(name):
            raise ConfigurationError(
                'app entry point name %r is invalid; use letters, digits, '
                "'_', '.' and '-'" % name)
        other = entry_points.get(name)
        if other is not None and other.value != entry_point.value:
            raise ConfigurationError(
                'two apps are registered as %r: %s and %s; rename one of '
                'the entry points' % (name, other.value, entry_point.value))
        entry_points[name] = entry_point
    return entry_points


def unknown_app_message(unknown, installed):
    """Return the error for app names that no entry point registers."""
    return ('no app is registered as %s; installed apps: %s. Install the '
            'package that provides it (pip install ...)'
            % (', '.join(map(repr, unknown)),
               ', '.join(sorted(installed)) or 'none'))


def find_apps(names=None):
    """Load the app classes registered under the ``pyforge`` group.

    Arguments:
        names: entry point names to load; every registered app when None.
            An unknown name raises :class:`ConfigurationError`.

    Returns ``{entry point name: class}``.
    """
    entry_points = _entry_points()
    if names is None:
        names = sorted(entry_points)
    unknown = sorted(set(names) - set(entry_points))
    if unknown:
        raise ConfigurationError(unknown_app_message(unknown, entry_points))

    apps = {}
    for name in names:
        apps[name] = _load(entry_points[name])
    return apps


def find_listeners(app_names=None):
    """Return the listeners of the installed apps, sorted by queue."""
    listeners = []
    for app_name, app_class in find_apps(app_names).items():
        listeners.extend(scan_app(app_name, app_class))
    listeners.sort(key=lambda listener: listener.queue)
    return listeners


def _load(entry_point):
    try:
        app_class = entry_point.load()
    except Exception as exc:
        raise ConfigurationError(
            'cannot load app %r from %r: %s: %s; fix or uninstall the '
            'package that registers it'
            % (entry_point.name, entry_point.value,
               type(exc).__name__, exc)) from exc
    log.debug('loaded app %r from %s', entry_point.name, entry_point.value)
    return app_class

"""The ``audit`` and ``react`` decorators for app listener methods.

They only record routing patterns on the function; nothing is registered
at import time. :mod:`pyforge.lib.plugins` finds the marked methods when
it scans an app class.
"""

from pyforge.exceptions import ConfigurationError
from pyforge.lib.routing import AUDIT, REACT, check_pattern

#: Attribute holding ``{exchange: (pattern, ...)}`` on a marked function.
LISTEN_ATTR = '__pyforge_listen__'


def audit(*patterns):
    """Mark a method as an auditor of messages on the ``audit`` exchange.

    An auditor handles a message sent to one app instance, before its
    changes are persisted. Stacked decorators add patterns.
    """
    return _listen(AUDIT, patterns)


def react(*patterns):
    """Mark a method as a reactor to messages on the ``react`` exchange.

    A reactor runs for every instance of its app in the message's project,
    or once if it is a classmethod. Stacked decorators add patterns.
    """
    return _listen(REACT, patterns)


def listened_patterns(function):
    """Return ``{exchange: (pattern, ...)}`` recorded on `function`."""
    if isinstance(function, (classmethod, staticmethod)):
        function = function.__func__
    return dict(getattr(function, LISTEN_ATTR, {}))


def _listen(exchange, patterns):
    if not patterns:
        raise ConfigurationError(
            '@%s() needs at least one routing pattern, e.g. '
            "@%s('wiki.#')" % (exchange, exchange))
    checked = tuple(check_pattern(pattern) for pattern in patterns)

    def decorate(function):
        if isinstance(function, staticmethod):
            raise ConfigurationError(
                '@%s cannot mark the staticmethod %s: make it an instance '
                'method or a classmethod'
                % (exchange, function.__func__.__qualname__))
        target = function
        if isinstance(function, classmethod):
            target = function.__func__
        if not callable(target):
            raise ConfigurationError(
                '@%s can only mark methods, not %r' % (exchange, target))

        listens = listened_patterns(target)
        # Decorators apply bottom-up; putting new patterns first keeps the
        # order in which they are written.
        known = listens.get(exchange, ())
        added = tuple(p for p in checked if p not in known)
        listens[exchange] = added + known
        setattr(target, LISTEN_ATTR, listens)
        return function

    return decorate

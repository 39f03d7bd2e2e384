"""The per-message context: ``c`` and the current session.

``c`` is a :class:`paste.registry.StackedObjectProxy`, the class of
Pylons' ``c``. The worker pushes a fresh :class:`ContextObject` before it
calls a listener and pops it afterwards, whether the listener returned or
raised, so nothing set by one message is seen by the next.
"""

import contextlib

from paste.registry import StackedObjectProxy


class ContextObject:
    """Attributes of the message being handled.

    A worker sets ``project`` (:class:`pyforge.model.Project`), ``app``
    (the app instance, or None for a classmethod without a mount point)
    and ``message`` (:class:`pyforge.lib.message.Envelope`). Listeners may
    set attributes of their own for the rest of the call.
    """

    def __init__(self, **attributes):
        self.__dict__.update(attributes)

    def __getattr__(self, name):
        raise AttributeError(
            'c has no attribute %r; a listener finds c.project, c.app and '
            'c.message here, and what it set itself' % name)

    def __repr__(self):
        return '<c %s>' % ', '.join(sorted(self.__dict__))


class _OutsideListener:
    """What ``c`` proxies to when no message is being handled."""

    def __getattr__(self, name):
        raise AttributeError(
            'c.%s is only set while a listener handles a message; in a '
            'test, call the listener with pyforge.lib.testing' % name)

    def __bool__(self):
        return False


#: The context of the message being handled in this thread.
c = StackedObjectProxy(_OutsideListener(), name='c')

#: The :class:`pyforge.model.writes.Session` buffering the writes of the
#: message being handled in this thread.
session = StackedObjectProxy(name='session')


@contextlib.contextmanager
def pushed(proxy, obj):
    """Make `proxy` stand for `obj` within the block, then pop it."""
    proxy._push_object(obj)
    try:
        yield obj
    finally:
        proxy._pop_object(obj)


def message_context(**attributes):
    """Push a fresh ``c`` with `attributes` for the block."""
    return pushed(c, ContextObject(**attributes))


def current_session():
    """Return the session pushed in this thread, or None."""
    stack = session._object_stack()
    return stack[-1] if stack else None

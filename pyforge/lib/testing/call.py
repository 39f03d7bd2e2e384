"""Calling one listener directly, with ``c`` and a session of its own.

A direct call skips the queue, the message record, retries and the hop
check: it is for testing what one listener does with one message. Use
:meth:`Bus.deliver` to test what the bus makes of a message.
"""

import dataclasses
import inspect

from pyforge.app import Application
from pyforge.exceptions import ConfigurationError
from pyforge.lib import context
from pyforge.lib.message import Delivery, Envelope, build_message, decode
from pyforge.lib.plugins import Listener
from pyforge.lib.routing import AUDIT, split_words, topic_matches
from pyforge.model import Project, Session


def listener_for(listeners, method, exchange=None):
    """Return the listener in `listeners` that calls `method`.

    `method` is a :class:`Listener`, a method bound to an app instance
    (``app.auditor``) or to its class (``HelloForgeApp.count_messages``),
    or the function read from the class (``HelloForgeApp.auditor``).
    `exchange` picks one when the method listens on both exchanges.
    """
    if isinstance(method, Listener):
        found = [listener for listener in listeners
                 if listener.queue == method.queue]
        return found[0] if found else method
    function = getattr(method, '__func__', method)
    owner = getattr(method, '__self__', None)
    found = [listener for listener in listeners
             if _function_of(listener) is function
             and (exchange is None or listener.exchange == exchange)]
    if owner is not None and len(found) > 1:
        # A method inherited by several apps: the bound one decides.
        owner_class = owner if isinstance(owner, type) else type(owner)
        found = [listener for listener in found
                 if listener.app_class is owner_class] or found
    name = getattr(function, '__qualname__', repr(function))
    if not found:
        raise ConfigurationError(
            '%s is not a listener of the bus%s; mark it with @audit or '
            '@react, and install its app or pass it to Bus(extra_apps=...)'
            % (name, ' on %r' % exchange if exchange else ''))
    if len({listener.exchange for listener in found}) > 1:
        raise ConfigurationError(
            '%s listens on both exchanges; pass exchange=%r or %r'
            % (name, found[0].exchange, found[1].exchange))
    if len(found) > 1:
        raise ConfigurationError(
            '%s is a listener of several apps (%s); call it bound to an '
            'instance or class of the one you mean'
            % (name, ', '.join(listener.app_name for listener in found)))
    return found[0]


def _function_of(listener):
    raw = inspect.getattr_static(listener.app_class, listener.method_name)
    return raw.__func__ if isinstance(raw, classmethod) else raw


def call_listener(bus, listener, bound_app=None, data=None,
                  routing_key=None, project=None, app=None, message=None):
    """Call `listener` once with ``c`` set, then flush its session.

    Returns ``(returned, writes, outbox)``, and the caller publishes the
    outbox. If the listener raises, the error propagates and nothing is
    written.
    """
    if message is None or isinstance(message, dict):
        overrides = message or {}
        data = dict(data or {})
    else:
        overrides = {}
        data = message.data
    context_app = _resolve_app(bus, listener, bound_app, app, data, project)
    project = _resolve_project(bus, project, context_app, data)
    if listener.is_classmethod:
        target = listener.app_class
    else:
        target = context_app
        if target is None:
            raise ConfigurationError(
                '%s runs on an app instance; pass app= (an instance or a '
                'mount point of %r), or call the method bound to one'
                % (listener.label, listener.app_name))
    if isinstance(message, Envelope):
        envelope = message
    else:
        envelope = _envelope(bus, listener, data, routing_key, project,
                             context_app, overrides)

    session = Session(bus.db)
    with context.pushed(context.session, session):
        with context.message_context(
                project=project, app=context_app, message=envelope):
            returned = listener.method_for(target)(
                envelope.routing_key, envelope.data)
    outbox = session.outbox
    writes = session.flush()
    return returned, writes, outbox


def _resolve_app(bus, listener, bound_app, app, data, project):
    """Return the app instance for ``c.app``, or None."""
    if app is None:
        app = bound_app
    if app is None and listener.exchange == AUDIT \
            and not listener.is_classmethod:
        # On react, mount_point names the app that published the message.
        app = data.get('mount_point')
    if app is None or isinstance(app, Application):
        return app
    if not isinstance(app, str):
        raise TypeError('app must be an app instance or a mount point, '
                        'not %r' % (app,))
    project_id = project if project is not None else data.get('project_id')
    if project_id is None:
        raise ConfigurationError(
            'mount point %r needs a project; pass project= or put '
            'project_id in the data' % app)
    return bus.app(project_id, app)


def _resolve_project(bus, project, app, data):
    if isinstance(project, Project):
        return project
    if project is None and app is not None:
        return app.project
    if project is None:
        project = data.get('project_id')
    if project is None:
        raise ConfigurationError(
            'the call needs a project; pass project= (a Project or its '
            'id), an app instance, or data with a project_id')
    return bus.project(project)


def _envelope(bus, listener, data, routing_key, project, app, overrides):
    """Return ``c.message`` as a worker would decode it from the bus."""
    if routing_key is None:
        routing_key = _only_key(listener)
    if not any(topic_matches(pattern, routing_key)
               for pattern in listener.patterns):
        raise ConfigurationError(
            'routing key %r matches none of the patterns of %s (%s), so '
            'no message with it would reach the listener'
            % (routing_key, listener.label, ', '.join(listener.patterns)))
    data.setdefault('project_id', project._id)
    if app is not None and listener.exchange == AUDIT:
        data.setdefault('mount_point', app.mount_point)
    # Through JSON and back, so the listener gets what a worker would.
    message = build_message(listener.exchange, routing_key, data)
    envelope = decode(Delivery.from_outgoing(message, listener.queue),
                      bus.settings.reactor_max_body_size)
    return dataclasses.replace(envelope, **overrides)


def _only_key(listener):
    keys = [pattern for pattern in listener.patterns
            if '*' not in split_words(pattern)
            and '#' not in split_words(pattern)]
    if len(listener.patterns) == 1 and keys:
        return keys[0]
    raise ConfigurationError(
        'pass routing_key=: %s listens for %s, which names no single key'
        % (listener.label, ', '.join(map(repr, listener.patterns))))

"""``publish``: how apps and other code send messages on the bus."""

import logging

from pyforge.environment import current_environment
from pyforge.lib.context import c, current_session
from pyforge.lib.message import HOPS_HEADER, build_message

log = logging.getLogger(__name__)


def publish(exchange, routing_key, data, project_id=None, mount_point=None):
    """Publish the dict `data` to `exchange` with `routing_key`.

    Inside a listener, ``project_id`` and ``mount_point`` default to
    ``c.project`` and ``c.app``, and the message is held until the
    listener's changes are persisted: it is sent after the flush, and
    dropped if the listener raises. Elsewhere it is sent at once through
    the current environment (see :func:`pyforge.environment.configure`).

    Arguments:
        exchange: ``'audit'`` or ``'react'``.
        routing_key: the topic, e.g. ``'wiki.page_edited'``.
        data: a dict that JSON can encode.
        project_id, mount_point: set these fields of the body, overriding
            what `data` and ``c`` say.

    Returns the message id.
    """
    if not isinstance(data, dict):
        raise TypeError(
            'message data for %r must be a dict, not %s'
            % (routing_key, type(data).__name__))
    data = dict(data)
    envelope = getattr(c, 'message', None)
    if envelope is not None:
        _fill_from_context(data)
    if project_id is not None:
        data['project_id'] = project_id
    if mount_point is not None:
        data['mount_point'] = mount_point

    hops = envelope.hops + 1 if envelope is not None else 0
    message = build_message(exchange, routing_key, data, hops=hops)
    session = current_session()
    if envelope is not None and session is not None:
        session.outbox.append(message)
        log.debug('holding message %s (%s) until the flush',
                  message.message_id, routing_key)
        return message.message_id

    current_environment().publisher().send(message)
    log.debug('published message %s to %s (%s), hop %d',
              message.message_id, exchange, routing_key,
              message.headers[HOPS_HEADER])
    return message.message_id


def _fill_from_context(data):
    project = getattr(c, 'project', None)
    if project is not None:
        data.setdefault('project_id', project._id)
    app = getattr(c, 'app', None)
    if app is not None:
        data.setdefault('mount_point', app.mount_point)

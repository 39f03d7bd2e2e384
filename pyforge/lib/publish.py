"""``publish``: how apps and other code send messages on the bus."""

import logging

from pyforge.environment import current_environment
from pyforge.exceptions import PublishError
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
    check_project_id(routing_key, data)
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


def check_project_id(routing_key, data):
    """Raise ValueError unless `data` names its project.

    Workers dead-letter a message without one; failing here tells the
    sender at once.
    """
    project_id = data.get('project_id')
    if not isinstance(project_id, str) or not project_id:
        raise ValueError(
            'message data for %r has project_id %r; every message names '
            'the project it is about, e.g. {"project_id": "demo", ...}'
            % (routing_key, project_id))


def _fill_from_context(data):
    project = getattr(c, 'project', None)
    if project is not None:
        data.setdefault('project_id', project._id)
    app = getattr(c, 'app', None)
    if app is not None:
        data.setdefault('mount_point', app.mount_point)


def publish_now(publisher, exchange, routing_key, data,
                max_body_size=None):
    """Publish the dict `data` through `publisher` and return its id.

    Unlike :func:`publish`, a message that no queue receives is an error:
    :class:`PublishError` is raised when the body is over `max_body_size`
    bytes (the workers would dead-letter it), when the broker does not
    take the message, and when no queue is bound for its routing key.
    """
    message = build_message(exchange, routing_key, data)
    check_project_id(routing_key, data)
    size = len(message.body)
    if max_body_size is not None and size > max_body_size:
        raise PublishError(
            'the body is %d bytes, over reactor.max_body_size = %d; send '
            'large content by reference' % (size, max_body_size))
    if not publisher.send(message):
        raise PublishError(
            'no queue is bound to exchange %r for routing key %r, so '
            'message %s was dropped; check the routing key, or run paster '
            'reactor_setup to declare the listeners\' queues'
            % (exchange, routing_key, message.message_id))
    log.debug('published message %s to %s (%s)', message.message_id,
              exchange, routing_key)
    return message.message_id

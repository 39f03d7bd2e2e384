"""Connections, exchanges and queues of the bus, and its Publisher.

The exchanges ``audit`` and ``react`` are durable topic exchanges. Every
listener has a durable queue of its own; failed messages go through delay
queues back to it, and messages that cannot be handled to the durable
dead-letter queue ``pyforge.dead``.
"""

import contextlib
import logging
from urllib.parse import urlparse

import amqp.exceptions as amqp_exceptions
import kombu
import kombu.compat
import kombu.exceptions
from kombu.transport import resolve_transport
from kombu.utils.imports import symbol_by_name

from pyforge.exceptions import (
    BrokerError, ConfigurationError, PublishError)
from pyforge.lib.routing import EXCHANGES, topic_matches
from pyforge.lib.store import mask_password
from pyforge.lib.transport import filesystem_options, rabbit_compatible

log = logging.getLogger(__name__)

#: Durable queue that keeps messages no listener could handle.
DEAD_LETTER_QUEUE = 'pyforge.dead'

#: The default exchange, which routes a message to the queue its routing
#: key names.
DEFAULT_EXCHANGE = kombu.Exchange('')

#: URL schemes of RabbitMQ through py-amqp.
AMQP_SCHEMES = ('amqp', 'amqps', 'pyamqp')

#: Seconds to wait for the broker to confirm a publish.
CONFIRM_TIMEOUT = 30.0

#: How often a publish is tried again while the broker is unreachable.
PUBLISH_RETRY_POLICY = {
    'max_retries': 5,
    'interval_start': 0.5,
    'interval_step': 1.0,
    'interval_max': 4.0,
}


def exchange(name):
    """Return the kombu entity of the topic exchange `name`."""
    return kombu.Exchange(name, type='topic', durable=True)


def bus_exchanges():
    """Return the entities of the ``audit`` and ``react`` exchanges."""
    return [exchange(name) for name in EXCHANGES]


def dead_letter_queue():
    """Return the entity of the dead-letter queue."""
    return kombu.Queue(DEAD_LETTER_QUEUE, durable=True, auto_delete=False)


def listener_queue(listener):
    """Return the queue entity of `listener`, bound with its patterns."""
    topic = exchange(listener.exchange)
    bindings = [kombu.binding(topic, routing_key=pattern)
                for pattern in listener.patterns]
    return kombu.Queue(listener.queue, bindings=bindings, durable=True,
                       auto_delete=False)


def connect(settings):
    """Return a new, not yet opened connection to the broker.

    Virtual transports get pyforge's subclass that routes like RabbitMQ;
    RabbitMQ connections confirm every publish.
    """
    url = settings.amqp_url
    parsed = urlparse(url)
    scheme = parsed.scheme
    try:
        parsed.port
    except ValueError:
        raise ConfigurationError(
            'amqp.url %s is not a valid URL; a user name or password '
            'containing "/", "?", "#", "@" or ":" must be percent-encoded '
            '(e.g. %%2F for "/", written %%%%2F in the .ini file)'
            % mask_url(url)) from None
    try:
        transport_class = symbol_by_name(resolve_transport(scheme))
    except Exception as exc:
        raise ConfigurationError(
            'amqp.url %s has the unknown transport %r (%s); use amqp://'
            ' for RabbitMQ or filesystem:///path for the embedded broker'
            % (mask_url(url), scheme, exc)) from None

    options = {'polling_interval': settings.amqp_polling_interval}
    if scheme == 'filesystem':
        options.update(filesystem_options(url))
        # The folders travel in the options; a host keeps kombu quiet.
        url = 'filesystem://localhost'
    if scheme in AMQP_SCHEMES:
        options['confirm_publish'] = True
    return kombu.Connection(
        url,
        transport=rabbit_compatible(transport_class),
        transport_options=options,
        heartbeat=settings.amqp_heartbeat,
        connect_timeout=settings.amqp_connect_timeout,
    )


#: Retry policy of a command that cannot reach the broker: about two
#: seconds of waiting on top of ``amqp.connect_timeout`` per try.
COMMAND_CONNECT_POLICY = {
    'max_retries': 2,
    'interval_start': 0.5,
    'interval_step': 0.5,
    'interval_max': 1.0,
}


#: Errors of a broker that is up but will not let this user in: retrying
#: cannot help, the settings must change.
REFUSALS = (amqp_exceptions.AccessRefused, amqp_exceptions.NotAllowed)


def ensure_connected(connection, settings, **policy):
    """Open `connection` as ``ensure_connection(**policy)`` does.

    Raises :class:`ConfigurationError` when the broker refuses the login
    or the vhost, naming the URL without its password.
    """
    try:
        connection.ensure_connection(**policy)
    except REFUSALS as exc:
        connection.release()
        url = mask_url(settings.amqp_url)
        if isinstance(exc, amqp_exceptions.AccessRefused):
            fix = 'check the user name and password in amqp.url'
        else:
            fix = ('check the vhost in amqp.url and that the user may use '
                   'it (rabbitmqctl set_permissions)')
        raise ConfigurationError(
            'the broker at %s refused the connection: %s; %s'
            % (url, exc, fix)) from None
    return connection


@contextlib.contextmanager
def opened(settings):
    """Open a connection to the broker for a command, and close it after.

    Raises :class:`BrokerError`, naming the URL without its password, when
    the broker cannot be reached or the connection drops in the block.
    """
    connection = connect(settings)
    failures = (kombu.exceptions.OperationalError,) \
        + connection.connection_errors
    url = mask_url(settings.amqp_url)
    try:
        ensure_connected(connection, settings, **COMMAND_CONNECT_POLICY)
    except failures as exc:
        connection.release()
        raise BrokerError(
            'cannot connect to the broker at %s: %s; check amqp.url and '
            'that the broker is running' % (url, exc)) from None
    try:
        with connection:
            yield connection
    except failures as exc:
        raise BrokerError(
            'lost the connection to the broker at %s: %s: %s; run the '
            'command again once the broker is back'
            % (url, type(exc).__name__, exc)) from None


def is_virtual(connection):
    """Return True when the broker is emulated by kombu in the client."""
    return connection.transport.driver_type not in ('amqp',)


def declare_exchanges(channel):
    """Declare ``audit`` and ``react``; harmless when they exist."""
    for entity in bus_exchanges():
        entity(channel).declare()


def mask_url(url):
    """Return `url` with its password replaced by ``****``."""
    return mask_password(url).replace(':***@', ':****@', 1)


class Publisher(kombu.compat.Publisher):
    """Carrot-style publisher that sends :class:`OutgoingMessage` objects.

    On RabbitMQ each publish waits for the broker's confirm and is
    mandatory, so a message no queue is bound for is reported instead of
    dropped without a word. With `retry`, a connection lost while
    publishing is opened again and the publish repeated. When publishing
    fails, :class:`PublishError` is raised and the message may not have
    been sent. `warn_unroutable` logs a warning for each message no queue
    received; callers that report it themselves turn it off.
    """

    def __init__(self, connection, retry=True, warn_unroutable=True):
        self._returned = []
        self._retry = retry
        self._warn_unroutable = warn_unroutable
        virtual = is_virtual(connection)
        # kombu sends a publish to '' through the producer's own exchange,
        # so that must be the default exchange for dead letters to work.
        super().__init__(
            connection, exchange=kombu.Exchange(''),
            # Virtual channels have no basic.return to listen to.
            on_return=None if virtual else self._on_return)
        if virtual:
            # Virtual exchanges live in each process: a process that did
            # not declare a topic exchange would route to it as direct.
            declare_exchanges(self.channel)

    def send(self, message):
        """Publish `message`; return False if no queue received it."""
        self._returned.clear()
        arguments = message.publish_arguments()
        if not arguments['exchange']:
            # kombu replaces an exchange name that is false by the
            # producer's own, audit; an entity named '' is the default.
            arguments['exchange'] = DEFAULT_EXCHANGE
        try:
            self.publish(
                mandatory=True,
                retry=self._retry,
                retry_policy=PUBLISH_RETRY_POLICY,
                confirm_timeout=CONFIRM_TIMEOUT,
                **arguments)
        except Exception as exc:
            hint = ''
            if isinstance(exc, amqp_exceptions.NotFound):
                hint = ('; run paster reactor_setup to declare the '
                        'exchanges and queues')
            raise PublishError(
                'cannot publish message %s to exchange %r with routing key '
                '%r: %s: %s%s' % (message.message_id, message.exchange,
                                  message.routing_key, type(exc).__name__,
                                  exc, hint)) from exc
        routed = not self._returned and self._routes(message)
        if not routed and self._warn_unroutable:
            log.warning(
                'no queue is bound to exchange %r for routing key %r, so '
                'message %s was dropped; run paster reactor_setup to '
                'declare the listeners\' queues',
                message.exchange or '(default)', message.routing_key,
                message.message_id)
        return routed

    def _on_return(self, exc, exchange_name, routing_key, message):
        self._returned.append((exchange_name, routing_key))

    def _routes(self, message):
        """Tell whether a virtual transport had a queue for `message`."""
        if not is_virtual(self.connection) or not message.exchange:
            return True
        table = self.channel.get_table(message.exchange)
        return any(topic_matches(binding_key, message.routing_key)
                   for binding_key, _, _ in table)

"""kombu's virtual transports, made to route like RabbitMQ.

kombu's virtual transports (``memory://``, ``filesystem://``, ``redis://``
and the others built on :mod:`kombu.transport.virtual`) emulate exchanges
in the client. Two of their habits differ from RabbitMQ, and pyforge
replaces them in a subclass of each transport:

- their topic exchange turns ``#`` into a regular expression that needs at
  least one word, so ``a.#`` does not match ``a``;
- a message put back on its queue (requeued, or unacked when the channel
  closes) is routed again through its exchange, so it also reaches every
  other queue bound to its routing key. RabbitMQ returns it to its queue.
"""

import collections
import functools
import os
import time
import uuid
from queue import Empty
from urllib.parse import unquote, urlparse

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.transport.virtual.exchange import TopicExchange
from kombu.utils.json import dumps, loads

from pyforge.exceptions import ConfigurationError
from pyforge.lib.routing import topic_matches

#: Key under which a consumed message remembers its queue.
QUEUE_KEY = 'pyforge_queue'


class RabbitTopicExchange(TopicExchange):
    """Topic exchange matching binding patterns by RabbitMQ's rules."""

    def lookup(self, table, exchange, routing_key, default):
        # The table's second column is kombu's regular expression; the
        # binding key in the first column is what RabbitMQ matches on.
        return {
            queue for binding_key, _, queue in table
            if topic_matches(binding_key, routing_key)
        }


class _QueueFaithfulChannel:
    """Channel mixin that returns a requeued message to its own queue."""

    def basic_consume(self, queue, no_ack, callback, consumer_tag,
                      **kwargs):
        def remember_queue(message):
            message.delivery_info[QUEUE_KEY] = queue
            return callback(message)

        return super().basic_consume(
            queue, no_ack, remember_queue, consumer_tag, **kwargs)

    def basic_get(self, queue, no_ack=False, **kwargs):
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None:
            message.delivery_info[QUEUE_KEY] = queue
        return message

    def queue_unbind(self, queue, exchange=None, routing_key='',
                     arguments=None, **kwargs):
        super().queue_unbind(queue, exchange, routing_key, arguments,
                             **kwargs)
        if isinstance(self, filesystem.Channel):
            # kombu removes the binding from a copy of the table read from
            # disk; the file shared by every process must change too.
            _unbind_in_file(self, exchange, routing_key, queue)

    def _restore(self, message):
        queue = message.delivery_info.get(QUEUE_KEY)
        if queue is None:
            return super()._restore(message)
        payload = message.serializable()
        payload['redelivered'] = True
        # What a consumer reads, as RabbitMQ's basic.deliver carries it.
        payload['properties']['delivery_info']['redelivered'] = True
        self._put(queue, payload)


class _SafeFilesystemChannel:
    """Channel mixin that makes filesystem:// message files safe and fast.

    kombu creates a message file and then writes it, so a consumer that
    lists the folder in between takes an empty file, fails to decode it
    and loses the message. Here a message is written under a temporary
    name and renamed into place, which is atomic. kombu also lists and
    sorts the whole folder for every message it takes. Here each queue
    keeps the sorted names of one listing until they are used up.
    """

    def _put(self, queue, payload, **kwargs):
        name = '%d_%s.%s.msg' % (
            int(round(time.monotonic() * 1000)), uuid.uuid4(), queue)
        path = os.path.join(self.data_folder_out, name)
        partial = path + '.partial'
        try:
            with open(partial, 'wb') as message_file:
                message_file.write(dumps(payload).encode('utf-8'))
            os.rename(partial, path)
        except OSError as exc:
            raise ChannelError(
                'cannot add message file %r to folder %s: %s'
                % (name, self.data_folder_out, exc)) from exc

    def _get(self, queue):
        names = self._pending_names(queue)
        while names:
            name = names.popleft()
            taken = os.path.join(self._taken_folder(), name)
            try:
                # Another consumer may have renamed it first.
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except FileNotFoundError:
                continue
            try:
                with open(taken, 'rb') as message_file:
                    payload = message_file.read()
            finally:
                os.remove(taken)
            return loads(payload.decode('utf-8'))
        raise Empty()

    def _pending_names(self, queue):
        listings = self.__dict__.setdefault('_listings', {})
        names = listings.get(queue)
        if not names:
            suffix = '.%s.msg' % queue
            names = listings[queue] = collections.deque(sorted(
                name for name in os.listdir(self.data_folder_in)
                if name.partition('.')[2] == suffix[1:]))
        return names

    def _taken_folder(self):
        # A folder on the same file system, so that taking a message is
        # one rename; kombu moves it to the system's temporary folder.
        folder = os.path.join(os.path.dirname(
            os.path.abspath(self.data_folder_in)), 'taken')
        os.makedirs(folder, exist_ok=True)
        return folder


def _unbind_in_file(channel, exchange, binding_key, queue):
    path = channel._exchange_file(exchange)
    try:
        table_file = path.open('rb+', buffering=0)
    except FileNotFoundError:
        return
    with table_file:
        filesystem.lock(table_file, filesystem.LOCK_EX)
        try:
            table = loads(table_file.read())
            kept = [row for row in table
                    if not (row[0] == binding_key and row[2] == queue)]
            if len(kept) != len(table):
                table_file.seek(0)
                table_file.write(dumps(kept).encode('utf-8'))
                table_file.truncate()
        finally:
            filesystem.unlock(table_file)


#: Broker state of each filesystem:// folder, by its control folder.
_FOLDER_STATES = {}


def _state_per_folder(transport, client, **kwargs):
    """Give each folder its own broker state.

    kombu keeps one state for every filesystem:// connection of a
    process. Its record of bindings then makes a second folder look bound
    already, and kombu skips writing the binding to that folder's files.
    """
    filesystem.Transport.__init__(transport, client, **kwargs)
    folder = client.transport_options.get('control_folder', 'control')
    transport.state = _FOLDER_STATES.setdefault(
        os.path.abspath(folder), virtual.BrokerState())


@functools.lru_cache(maxsize=None)
def rabbit_compatible(transport_class):
    """Return a subclass of a virtual `transport_class` that routes like
    RabbitMQ; return other transport classes unchanged."""
    if not issubclass(transport_class, virtual.Transport):
        return transport_class
    base_channel = transport_class.Channel
    channel_class = type(base_channel.__name__, (
        _QueueFaithfulChannel, base_channel), {
        'exchange_types': dict(base_channel.exchange_types,
                               topic=RabbitTopicExchange),
        '__module__': __name__,
    })
    attributes = {'Channel': channel_class, '__module__': __name__}
    if issubclass(transport_class, filesystem.Transport):
        attributes['__init__'] = _state_per_folder
        attributes['Channel'] = type(base_channel.__name__, (
            _SafeFilesystemChannel, channel_class), {
            '__module__': __name__})
    return type(transport_class.__name__, (transport_class,), attributes)


def filesystem_options(url):
    """Return kombu transport options for a ``filesystem://`` URL.

    ``filesystem:///var/lib/forge/broker`` keeps messages in the folder
    ``queues`` and bindings in ``control`` under that path. kombu itself
    takes folders only from transport options; pyforge reads them from the
    URL so that one setting names where the broker lives.
    """
    path = unquote(urlparse(url).path)
    if not path or path == '/':
        raise ConfigurationError(
            'amqp.url %r names no folder; write filesystem:///absolute/path'
            ' or filesystem:///%%(here)s/data/broker in the .ini file' % url)
    queues = os.path.join(path, 'queues')
    control = os.path.join(path, 'control')
    for folder in (queues, control):
        os.makedirs(folder, exist_ok=True)
    return {
        'data_folder_in': queues,
        'data_folder_out': queues,
        'control_folder': control,
    }


def is_filesystem(channel):
    """Return True when `channel` is one of kombu's ``filesystem://``."""
    return isinstance(channel, filesystem.Channel)


def message_files(channel, queue):
    """Return the paths of the message files of `queue`, oldest first.

    kombu's ``filesystem://`` keeps each message in a file named
    ``<milliseconds>_<uuid>.<queue>.msg``; fetching one moves it away.
    """
    folder = channel.data_folder_in
    wanted = '%s.msg' % queue
    names = sorted(name for name in os.listdir(folder)
                   if name.partition('.')[2] == wanted)
    return [os.path.join(folder, name) for name in names]


def read_message_file(channel, path):
    """Return the kombu message in the file `path`, leaving the file in
    place, or None when another process has taken it."""
    try:
        message_file = open(path, 'rb')
    except FileNotFoundError:
        return None
    with message_file:
        # kombu holds an exclusive lock while it writes a message file.
        filesystem.lock(message_file, filesystem.LOCK_SH)
        try:
            payload = loads(message_file.read())
        finally:
            filesystem.unlock(message_file)
    return channel.Message(payload, channel=channel)


def claim_message_file(path):
    """Take the message file `path` off its queue; return the new path, or
    None when another process took it first.

    The renamed file no longer ends in ``.msg``, so no consumer fetches
    it; :func:`unclaim_message_file` puts it back.
    """
    claimed = path + '.claimed'
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    return claimed


def unclaim_message_file(claimed):
    """Put a file taken by :func:`claim_message_file` back on its queue."""
    os.rename(claimed, claimed[:-len('.claimed')])

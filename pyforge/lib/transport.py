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

``filesystem://`` gets more: atomic message files, a cached listing of
each queue folder, and unacked messages kept on disk until their ack, so
that the messages of a killed consumer go back to their queues.
"""

import collections
import contextlib
import functools
import logging
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
from pyforge.lib import unacked
from pyforge.lib.routing import topic_matches

log = logging.getLogger(__name__)

#: Key under which a consumed message remembers its queue.
QUEUE_KEY = 'pyforge_queue'
#: Key under which a message fetched from filesystem:// remembers the
#: file that keeps it until its ack.
UNACKED_KEY = 'pyforge_unacked_file'
#: Seconds between two looks for the unacked messages of consumers that
#: died, in each consuming channel.
RECOVERY_INTERVAL = 2.0


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

    kombu deletes a message file when it fetches the message, so the
    messages a killed consumer had fetched and not acked were lost. Here
    a fetched file moves into a folder of the consuming process, under
    ``unacked/``, and is deleted on ack. The process holds a lock on
    that folder while it lives. Other consumers put the files of an
    unlocked folder back on their queues, marked redelivered. RabbitMQ
    does the same with the unacked messages of a closed connection.
    """

    def _put(self, queue, payload, **kwargs):
        payload = _without_unacked_key(payload)
        name = '%s_%s.%s.msg' % (_next_stamp(), uuid.uuid4(), queue)
        path = os.path.join(self.data_folder_out, name)
        try:
            unacked.write_atomically(path, dumps(payload).encode('utf-8'))
        except OSError as exc:
            raise ChannelError(
                'cannot add message file %r to folder %s: %s'
                % (name, self.data_folder_out, exc)) from exc

    def _get(self, queue):
        self._recover_if_due()
        owner = unacked.owner_folder(self._unacked_root())
        names = self._pending_names(queue)
        while names:
            name = names.popleft()
            fetched = os.path.join(owner, name)
            try:
                # Another consumer may have renamed it first.
                os.rename(os.path.join(self.data_folder_in, name), fetched)
            except FileNotFoundError:
                continue
            payload = self._read_unacked(fetched)
            if payload is not None:
                return payload
        raise Empty()

    def _read_unacked(self, path):
        """Return the message in `path`, or None after moving a file that
        is no message to the ``invalid`` folder."""
        try:
            with open(path, 'rb') as message_file:
                payload = loads(message_file.read().decode('utf-8'))
            # Building the message checks every field kombu reads, so a
            # bad file fails here and not in the consumer, over and over.
            self.Message(payload, channel=self)
            payload['properties']['delivery_info'][UNACKED_KEY] = path
        except Exception as exc:
            # Only another program or a damaged disk leaves such a file.
            unacked.quarantine(path, self.data_folder_in, exc)
            return None
        return payload

    def basic_consume(self, queue, no_ack, callback, consumer_tag,
                      **kwargs):
        if no_ack:
            # Without acks a delivered message is settled at once.
            deliver = callback

            def settle_and_deliver(message):
                _remove_unacked(message)
                return deliver(message)

            callback = settle_and_deliver
        return super().basic_consume(queue, no_ack, callback, consumer_tag,
                                     **kwargs)

    def basic_get(self, queue, no_ack=False, **kwargs):
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            _remove_unacked(message)
        return message

    def basic_ack(self, delivery_tag, multiple=False):
        message = self.qos._delivered.get(delivery_tag)
        super().basic_ack(delivery_tag, multiple=multiple)
        _remove_unacked(message)

    def basic_reject(self, delivery_tag, requeue=False):
        message = self.qos._delivered.get(delivery_tag)
        # With requeue, _restore puts the message back and removes it.
        super().basic_reject(delivery_tag, requeue=requeue)
        if not requeue:
            _remove_unacked(message)

    def _restore(self, message):
        path = (message.delivery_info or {}).get(UNACKED_KEY)
        if path is None:
            super()._restore(message)
            return
        # Back under its first name, so that it keeps its place in the
        # queue, as RabbitMQ does for a requeued message.
        payload = message.serializable()
        unacked.mark_redelivered(payload)
        unacked.write_atomically(
            os.path.join(self.data_folder_in, os.path.basename(path)),
            dumps(_without_unacked_key(payload)).encode('utf-8'))
        _remove_unacked(message)

    def _recover_if_due(self):
        now = time.monotonic()
        if now < self.__dict__.get('_next_recovery', 0.0):
            return
        self._next_recovery = now + RECOVERY_INTERVAL
        try:
            unacked.recover_unacked(self._unacked_root(),
                                    self.data_folder_in)
        except Exception as exc:
            # Consuming goes on; the next look tries again.
            log.warning('putting back the unacked messages of stopped '
                        'consumers in %s failed: %s: %s',
                        self._unacked_root(), type(exc).__name__, exc)

    def _pending_names(self, queue):
        listings = self.__dict__.setdefault('_listings', {})
        names = listings.get(queue)
        if not names:
            suffix = '.%s.msg' % queue
            names = listings[queue] = collections.deque(sorted(
                (name for name in os.listdir(self.data_folder_in)
                 if name.partition('.')[2] == suffix[1:]),
                key=file_order))
        return names

    def _unacked_root(self):
        root = self.__dict__.get('_unacked_folder')
        if root is None:
            root = self._unacked_folder = unacked.unacked_root(
                self.data_folder_in)
        return root


#: The stamp of the last message file this process named.
_last_stamp = 0


def _next_stamp():
    """Return a stamp for a message file name, greater than the last one
    of this process.

    kombu stamps files in milliseconds of the monotonic clock, so two
    messages of one millisecond come in random order, and the clock
    starts again at 0 when the machine boots. Nanoseconds of the wall
    clock are later than any such stamp, also for messages that waited
    through an upgrade or a reboot.
    """
    global _last_stamp
    _last_stamp = max(time.time_ns(), _last_stamp + 1)
    return '%d' % _last_stamp


def file_order(name):
    """Return the sort key of a message file name: its stamp as a number,
    so that a stamp with more digits sorts later, then the name."""
    stamp, _, _ = name.partition('_')
    return (int(stamp) if stamp.isdigit() else 0, name)


def _without_unacked_key(payload):
    """Return `payload` without the unacked file name, which a message
    put back must not carry."""
    info = payload.get('properties', {}).get('delivery_info')
    if not info or UNACKED_KEY not in info:
        return payload
    return dict(payload, properties=dict(payload['properties'], delivery_info={
        key: value for key, value in info.items() if key != UNACKED_KEY}))


def _remove_unacked(message):
    """Delete the file that kept `message` until its ack, if any."""
    if message is None:
        return
    path = (message.delivery_info or {}).get(UNACKED_KEY)
    if path is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


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
    ``<stamp>_<uuid>.<queue>.msg``; fetching one moves it away.
    """
    folder = channel.data_folder_in
    wanted = '%s.msg' % queue
    names = sorted((name for name in os.listdir(folder)
                    if name.partition('.')[2] == wanted), key=file_order)
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

    The file moves into this process's folder of unacked messages, so no
    consumer fetches it, and it goes back to its queue when this process
    dies before :func:`unclaim_message_file` or a removal.
    """
    queue_folder = os.path.dirname(path)
    owner = unacked.owner_folder(unacked.unacked_root(queue_folder))
    claimed = os.path.join(owner, os.path.basename(path))
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    return claimed


def unclaim_message_file(claimed, queue_folder):
    """Put a file taken by :func:`claim_message_file` back on its queue,
    under its first name; return its path there."""
    path = os.path.join(queue_folder, os.path.basename(claimed))
    os.rename(claimed, path)
    return path

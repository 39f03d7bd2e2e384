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

import atexit
import collections
import contextlib
import fcntl
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
            _write_atomically(path, dumps(payload).encode('utf-8'))
        except OSError as exc:
            raise ChannelError(
                'cannot add message file %r to folder %s: %s'
                % (name, self.data_folder_out, exc)) from exc

    def _get(self, queue):
        self._recover_if_due()
        owner = _owner_folder(self._unacked_root())
        names = self._pending_names(queue)
        while names:
            name = names.popleft()
            unacked = os.path.join(owner, name)
            try:
                # Another consumer may have renamed it first.
                os.rename(os.path.join(self.data_folder_in, name), unacked)
            except FileNotFoundError:
                continue
            payload = self._read_unacked(unacked)
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
            _quarantine(path, self.data_folder_in, exc)
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
        _mark_redelivered(payload)
        _write_atomically(
            os.path.join(self.data_folder_in, os.path.basename(path)),
            dumps(_without_unacked_key(payload)).encode('utf-8'))
        _remove_unacked(message)

    def _recover_if_due(self):
        now = time.monotonic()
        if now < self.__dict__.get('_next_recovery', 0.0):
            return
        self._next_recovery = now + RECOVERY_INTERVAL
        try:
            recover_unacked(self._unacked_root(), self.data_folder_in)
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
            # Beside the queue folder, on the same file system, so that
            # taking a message is one rename.
            root = self._unacked_folder = unacked_root(self.data_folder_in)
        return root


def unacked_root(queue_folder):
    """Return the folder of unacked messages of a filesystem:// broker."""
    return os.path.join(os.path.dirname(os.path.abspath(queue_folder)),
                        'unacked')


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


def _mark_redelivered(payload):
    payload['redelivered'] = True
    # What a consumer reads, as RabbitMQ's basic.deliver carries it.
    payload['properties']['delivery_info']['redelivered'] = True


def _quarantine(path, queue_folder, error):
    """Move the file `path`, which is no kombu message, to the folder
    ``invalid`` beside `queue_folder`, and log it."""
    invalid = os.path.join(os.path.dirname(os.path.abspath(queue_folder)),
                           'invalid')
    os.makedirs(invalid, exist_ok=True)
    quarantined = os.path.join(invalid, os.path.basename(path))
    os.rename(path, quarantined)
    log.error('message file %s is not a kombu message (%s: %s); moved it '
              'to %s, read it there and delete it', os.path.basename(path),
              type(error).__name__, error, quarantined)


def _write_atomically(path, data):
    """Write `data` to a temporary file and rename it to `path`, so that
    no consumer ever reads a file half written."""
    partial = path + '.partial'
    with open(partial, 'wb') as stream:
        stream.write(data)
    os.rename(partial, path)


def _remove_unacked(message):
    """Delete the file that kept `message` until its ack, if any."""
    if message is None:
        return
    path = (message.delivery_info or {}).get(UNACKED_KEY)
    if path is None:
        return
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


#: The unacked-message folder of this process, by root folder, as
#: (process id, folder, descriptor of its locked file).
_OWNERS = {}
#: Name of the file whose lock marks a folder's process as alive.
LOCK_NAME = 'lock'


def _owner_folder(root):
    """Return this process's folder under `root`, creating it and locking
    it for the life of the process on first use."""
    owner = _OWNERS.get(root)
    if owner is not None and owner[0] == os.getpid():
        # Checked on every fetch: a message renamed into a folder that
        # someone deleted would look taken by another consumer, and one
        # in a folder without its lock could be put back at any time.
        if os.path.exists(os.path.join(owner[1], LOCK_NAME)):
            return owner[1]
        log.warning('folder %s of unacked messages or its lock was '
                    'removed; making a new one', owner[1])
    _forget_removed_owners()
    os.makedirs(root, exist_ok=True)
    name = '%d-%s' % (os.getpid(), uuid.uuid4().hex)
    # The folder is locked before it gets a name without the leading dot,
    # so no other process finds it unlocked while this one lives.
    building = os.path.join(root, '.' + name)
    os.mkdir(building)
    descriptor = os.open(os.path.join(building, LOCK_NAME),
                         os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder = os.path.join(root, name)
    os.rename(building, folder)
    _OWNERS[root] = (os.getpid(), folder, descriptor)
    return folder


def _forget_removed_owners():
    """Close the locks of folders removed with their broker folder, so
    that a process using many brokers in turn, such as a test run, does
    not keep a descriptor for each."""
    for root, (pid, folder, descriptor) in list(_OWNERS.items()):
        if pid == os.getpid() and not os.path.isdir(folder):
            os.close(descriptor)
            del _OWNERS[root]


def _forget_inherited_owners():
    """Close, in a forked child, the locks of the parent's folders.

    The parent keeps its own descriptors, so its locks stay held.
    """
    for root, (pid, _, descriptor) in list(_OWNERS.items()):
        if pid != os.getpid():
            os.close(descriptor)
            del _OWNERS[root]


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_inherited_owners)


@atexit.register
def remove_empty_unacked_folders():
    """Remove this process's folders that keep no unacked message; those
    that do are left for other consumers to put back.

    Runs at exit, and from a forked worker, which leaves by os._exit().
    """
    for root, (pid, folder, descriptor) in list(_OWNERS.items()):
        if pid != os.getpid():
            continue
        try:
            if os.listdir(folder) != [LOCK_NAME]:
                continue
            os.remove(os.path.join(folder, LOCK_NAME))
            os.rmdir(folder)
        except OSError:
            # Removed with its broker folder, e.g. a temporary one.
            continue
        # A later fetch in this process makes a new folder.
        os.close(descriptor)
        del _OWNERS[root]


def recover_unacked(root, queue_folder):
    """Put the unacked messages of processes that died back on their
    queues, marked redelivered; return how many were put back."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return 0
    own = _OWNERS.get(root)
    recovered = 0
    for name in names:
        folder = os.path.join(root, name)
        if name.startswith('.') or (own is not None and folder == own[1]):
            continue
        try:
            descriptor = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR)
        except NotADirectoryError:
            continue
        except FileNotFoundError:
            # Another process has put its files back and is removing it,
            # or the lock was deleted by hand. Either way no process can
            # keep the files safe any more. If a live one still has them
            # in memory, each message's record catches the second delivery.
            recovered += _put_back(folder, queue_folder)
            continue
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            recovered += _put_back(folder, queue_folder)
        except FileNotFoundError:
            # Another process put this folder back between our open and
            # our lock.
            continue
        finally:
            os.close(descriptor)
    if recovered:
        log.warning('put %d unacked message(s) of stopped consumers back '
                    'on their queues in %s', recovered, queue_folder)
    return recovered


def _put_back(folder, queue_folder):
    """Move the message files of a dead process's `folder` back to
    `queue_folder`, under their first names, and remove the folder."""
    count = 0
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            if name == LOCK_NAME:
                continue
            if not name.endswith('.msg'):
                os.remove(path)
                continue
            with open(path, 'rb') as message_file:
                payload = loads(message_file.read().decode('utf-8'))
            _mark_redelivered(payload)
        except FileNotFoundError:
            continue
        except Exception as exc:
            _quarantine(path, queue_folder, exc)
            continue
        # The first name keeps the message's place in its queue.
        _write_atomically(os.path.join(queue_folder, name),
                          dumps(payload).encode('utf-8'))
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        count += 1
    # Another process may have finished the folder first.
    with contextlib.suppress(OSError):
        os.remove(os.path.join(folder, LOCK_NAME))
    with contextlib.suppress(OSError):
        os.rmdir(folder)
    return count


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
    claimed = os.path.join(_owner_folder(unacked_root(queue_folder)),
                           os.path.basename(path))
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

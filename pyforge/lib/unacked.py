"""Unacked message files of the embedded broker, one folder a process.

A ``filesystem://`` consumer moves each message file it fetches into a
folder of its own process under ``unacked/``, beside the queue folder,
and deletes it on ack. The process holds an exclusive flock on the file
``lock`` in that folder while it lives, and the kernel releases it when
the process dies. :func:`recover_unacked` puts the files of every folder
it can lock back on their queues, marked redelivered.
"""

import atexit
import contextlib
import fcntl
import logging
import os
import uuid

from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)


def broker_folder(queue_folder, name):
    """Return the folder `name` beside `queue_folder`, on the same file
    system, so that moving a message file there is one rename."""
    return os.path.join(os.path.dirname(os.path.abspath(queue_folder)),
                        name)


def unacked_root(queue_folder):
    """Return the folder of unacked messages of a filesystem:// broker."""
    return broker_folder(queue_folder, 'unacked')


def mark_redelivered(payload):
    """Flag the message `payload` as delivered before, in place."""
    payload['redelivered'] = True
    # What a consumer reads, as RabbitMQ's basic.deliver carries it.
    payload['properties']['delivery_info']['redelivered'] = True


def quarantine(path, queue_folder, error):
    """Move the file `path`, which is no kombu message, to the folder
    ``invalid`` beside `queue_folder`, and log it."""
    invalid = broker_folder(queue_folder, 'invalid')
    os.makedirs(invalid, exist_ok=True)
    quarantined = os.path.join(invalid, os.path.basename(path))
    os.rename(path, quarantined)
    log.error('message file %s is not a kombu message (%s: %s); moved it '
              'to %s, read it there and delete it', os.path.basename(path),
              type(error).__name__, error, quarantined)


def write_atomically(path, data):
    """Write `data` to a temporary file and rename it to `path`, so that
    no consumer ever reads a file half written."""
    partial = path + '.partial'
    with open(partial, 'wb') as stream:
        stream.write(data)
    os.rename(partial, path)


#: The unacked-message folder of this process, by root folder, as
#: (process id, folder, descriptor of its locked file).
OWNERS = {}
#: Name of the file whose lock marks a folder's process as alive.
LOCK_NAME = 'lock'


def owner_folder(root):
    """Return this process's folder under `root`, creating it and locking
    it for the life of the process on first use."""
    owner = OWNERS.get(root)
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
    OWNERS[root] = (os.getpid(), folder, descriptor)
    return folder


def _forget_removed_owners():
    """Close the locks of folders removed with their broker folder, so
    that a process using many brokers in turn, such as a test run, does
    not keep a descriptor for each."""
    for root, (pid, folder, descriptor) in list(OWNERS.items()):
        if pid == os.getpid() and not os.path.isdir(folder):
            os.close(descriptor)
            del OWNERS[root]


def _forget_inherited_owners():
    """Close, in a forked child, the locks of the parent's folders.

    The parent keeps its own descriptors, so its locks stay held.
    """
    for root, (pid, _, descriptor) in list(OWNERS.items()):
        if pid != os.getpid():
            os.close(descriptor)
            del OWNERS[root]


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_inherited_owners)


@atexit.register
def remove_empty_unacked_folders():
    """Remove this process's folders that contain no unacked message.
    Folders that still contain some are left for other consumers.

    Runs at exit, and from a forked worker, which leaves by os._exit().
    """
    for root, (pid, folder, descriptor) in list(OWNERS.items()):
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
        del OWNERS[root]


def recover_unacked(root, queue_folder):
    """Put the unacked messages of processes that died back on their
    queues, marked redelivered; return how many were put back."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return 0
    own = OWNERS.get(root)
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
            mark_redelivered(payload)
        except FileNotFoundError:
            continue
        except Exception as exc:
            quarantine(path, queue_folder, exc)
            continue
        # The first name keeps the message's place in its queue.
        write_atomically(os.path.join(queue_folder, name),
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

"""Handling the messages a worker received in one go.

A worker takes the messages already waiting, up to its prefetch, as one
batch. It reads their records in one query and acks them with one
``basic.ack`` per channel. On the embedded SQLite store it also commits
the flushes of consecutive fast listeners as one transaction (a chunk),
since a commit costs more than the small writes in it.

A chunk holds the store's write lock from its first flush to its
commit, across the listener calls in between, so it takes a message only
while it is young and the listener is fast on average. A redelivered
message starts a chunk of its own: the count of unfinished deliveries
written before its listener runs must be committed even if the worker
then dies.
"""

import contextlib
import sys
import time

from pyforge.lib.store import transaction

#: Maximum time a chunk stays open, in seconds.
CHUNK_WINDOW = 0.05
#: Listeners slower than this on average, in seconds, run in a chunk of
#: their own.
FAST_LISTENER = 0.005


class Chunk:
    """A transaction opened at the first flush of a chunk of messages."""

    def __init__(self, db):
        self.db = db
        self._stack = contextlib.ExitStack()
        self.opened_at = None

    def begin(self):
        """Open the chunk's transaction if it is not open yet."""
        if self.opened_at is None:
            self._stack.enter_context(transaction(self.db))
            self.opened_at = time.monotonic()

    def takes(self, dispatcher, listener, delivery):
        """Tell whether the next message may join this open chunk."""
        if self.opened_at is None:
            return not delivery.redelivered
        return (not delivery.redelivered
                and time.monotonic() - self.opened_at < CHUNK_WINDOW
                and dispatcher.average_duration(listener) < FAST_LISTENER)

    def close(self, exc_info=(None, None, None)):
        """Commit, or roll back when `exc_info` names an exception."""
        self._stack.__exit__(*exc_info)


def handle_batch(dispatcher, batch, call, stopping):
    """Dispatch `batch` chunk by chunk; yield each committed chunk.

    Arguments:
        dispatcher: the worker's :class:`pyforge.lib.dispatch.Dispatcher`.
        batch: ``(listener, message, delivery)`` tuples in arrival order.
        call: ``call(listener, delivery)`` returns the Outcome of
            ``dispatcher.dispatch``; the worker wraps it for heartbeats.
        stopping: returns True once no further message may be started.

    Yields lists of ``(listener, message, delivery, outcome)``, after
    their chunk was committed and their outboxes were sent.
    """
    dispatcher.read_ahead([delivery for _, _, delivery in batch])
    try:
        position = 0
        while position < len(batch) and not stopping():
            chunk = Chunk(dispatcher.db)
            dispatcher.chunk = chunk
            done = []
            try:
                while position < len(batch) and not stopping():
                    listener, message, delivery = batch[position]
                    if done and not chunk.takes(dispatcher, listener,
                                                delivery):
                        break
                    done.append((listener, message, delivery,
                                 call(listener, delivery)))
                    position += 1
            except BaseException:
                chunk.close(sys.exc_info())
                raise
            finally:
                dispatcher.chunk = None
            chunk.close()
            for _, _, _, outcome in done:
                dispatcher.complete(outcome)
            yield done
    finally:
        dispatcher.forget()

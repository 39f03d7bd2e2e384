"""Handling the messages a worker received in one go.

A worker takes the messages already waiting, up to its prefetch, as one
batch. It reads their records in one query and acks them with one
``basic.ack`` per channel. Within a batch, consecutive messages form a
chunk whose writes are flushed together after their listeners returned,
in one transaction on the embedded SQLite store, since a commit costs
more than the small writes in it.

The listeners of a chunk run before any of its writes are flushed, so a
listener does not see the writes of the messages just before it, as if
they had gone to another worker. No write lock is held while listeners
run. A chunk closes after 50 ms, and before a listener whose calls take
more than 5 ms on average, so that slow calls delay no other message's
commit and ack.
"""

import time

#: Maximum time a chunk takes messages for, in seconds.
CHUNK_WINDOW = 0.05
#: Listeners slower than this on average, in seconds, run in a chunk of
#: their own.
FAST_LISTENER = 0.005


def handle_batch(dispatcher, batch, call, stopping):
    """Dispatch `batch` chunk by chunk; yield each persisted chunk.

    Arguments:
        dispatcher: the worker's :class:`pyforge.lib.dispatch.Dispatcher`.
        batch: ``(listener, message, delivery)`` tuples in arrival order.
        call: ``call(listener, delivery)`` returns the Outcome of
            ``dispatcher.dispatch(delivery, listener, defer=True)``; the
            worker wraps it for heartbeats.
        stopping: returns True once no further message may be started.

    Yields lists of ``(listener, message, delivery, outcome)``, after
    their writes were persisted and their outboxes sent. Messages not
    yielded were not handled, and are to be left unacked.
    """
    dispatcher.read_ahead([delivery for _, _, delivery in batch])
    try:
        position = 0
        while position < len(batch) and not stopping():
            opened_at = time.monotonic()
            chunk = []
            while position < len(batch) and not stopping():
                listener, message, delivery = batch[position]
                if chunk and not _takes(dispatcher, listener, opened_at):
                    break
                chunk.append((listener, message, delivery,
                              call(listener, delivery)))
                position += 1
            outcomes = dispatcher.flush_deferred(
                [outcome for _, _, _, outcome in chunk])
            done = [(listener, message, delivery, outcome)
                    for (listener, message, delivery, _), outcome
                    in zip(chunk, outcomes)]
            for _, _, _, outcome in done:
                dispatcher.complete(outcome)
            yield done
    finally:
        dispatcher.forget()


def _takes(dispatcher, listener, opened_at):
    """Tell whether the next message may join the open chunk."""
    return (time.monotonic() - opened_at < CHUNK_WINDOW
            and dispatcher.average_duration(listener) < FAST_LISTENER)

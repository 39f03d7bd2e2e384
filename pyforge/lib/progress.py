"""Progress of long operations, for people watching a terminal.

Replaying a large file or requeueing thousands of dead letters can take
minutes. While stderr is a terminal, a count updated in place shows that
the work goes on. The final count is printed in any case, so that logs
and scripts get it too.
"""

import sys
import time

#: Seconds between two updates of the running count.
UPDATE_INTERVAL = 0.5


class Progress:
    """Counts items done and shows the count on a terminal.

    Arguments:
        label: what is counted, in the past tense, e.g. ``'published'``.
        total: the number of items expected, or None when unknown.
        stream: where to write; stderr by default.
        interval: seconds between updates of the running count.
    """

    def __init__(self, label, total=None, stream=None,
                 interval=UPDATE_INTERVAL):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.interval = interval
        self.count = 0
        self.interactive = _is_terminal(self.stream)
        self._shown_at = None

    def advance(self, count=1):
        """Add `count` items; update the terminal line when it is due."""
        self.count += count
        if not self.interactive:
            return
        now = time.monotonic()
        if self._shown_at is not None and \
                now - self._shown_at < self.interval:
            return
        self._shown_at = now
        if self.total is None:
            text = '%s %d ...' % (self.label, self.count)
        else:
            text = '%s %d of %d ...' % (self.label, self.count, self.total)
        # \r returns to the start of the line and \033[K clears its rest.
        self.stream.write('\r%s\033[K' % text)
        self.stream.flush()

    def finish(self, text):
        """Replace the running count by the final line `text`."""
        if self._shown_at is not None:
            self.stream.write('\r\033[K')
        print(text, file=self.stream)
        self.stream.flush()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

"""Reading the dead-letter queue of the test bus, and asserting on it."""

from pyforge.lib import amqp
from pyforge.lib.testing.captured import DeadLetter


class UnexpectedDeadLetters(AssertionError):
    """Raised for dead letters that no test asserted on."""


class DeadLetterChecks:
    """Collects dead letters from ``self._channel`` into
    ``self._dead_letters``. ``self._accounted`` contains the indexes of
    those that a test asserted on or that were reported."""

    @property
    def dead_letters(self):
        """Every :class:`DeadLetter` made since the bus started or was
        reset, oldest first."""
        while True:
            message = self._channel.basic_get(
                amqp.DEAD_LETTER_QUEUE, no_ack=True)
            if message is None:
                break
            self._dead_letters.append(DeadLetter.from_kombu(message))
        return list(self._dead_letters)

    def assert_dead_letter(self, reason=None, queue=None, error=None,
                           routing_key=None, listener=None):
        """Return the first dead letter that matches, or fail.

        `error` is a substring of the dead letter's error; the other
        fields must be equal. The dead letter then counts as expected,
        so :meth:`check_dead_letters` passes over it, and a second
        assertion matches the next one.
        """
        dead_letters = self.dead_letters
        for index, dead_letter in enumerate(dead_letters):
            if index in self._accounted:
                continue
            if dead_letter.matches(reason, queue, error, routing_key,
                                   listener):
                self._accounted.add(index)
                return dead_letter
        wanted = {'reason': reason, 'queue': queue, 'error': error,
                  'routing_key': routing_key, 'listener': listener}
        wanted = ', '.join('%s=%r' % item for item in wanted.items()
                           if item[1] is not None)
        raise AssertionError(
            'no dead letter with %s; the bus has %s'
            % (wanted or 'any fields', _describe_all(dead_letters)))

    def check_dead_letters(self):
        """Raise :class:`UnexpectedDeadLetters` for dead letters that no
        :meth:`assert_dead_letter` matched; report each once."""
        dead_letters = self.dead_letters
        unexpected = [dead_letter
                      for index, dead_letter in enumerate(dead_letters)
                      if index not in self._accounted]
        self._accounted.update(range(len(dead_letters)))
        if unexpected:
            raise UnexpectedDeadLetters(
                'the bus dead-lettered %d message(s) that the test did not '
                'expect; call bus.assert_dead_letter(...) for those it '
                'does:\n  %s' % (len(unexpected), '\n  '.join(
                    dead_letter.describe() for dead_letter in unexpected)))


def _describe_all(dead_letters):
    if not dead_letters:
        return 'none'
    return '%d:\n  %s' % (len(dead_letters), '\n  '.join(
        dead_letter.describe() for dead_letter in dead_letters))

"""``paster reactor_status``: the listener queues, their backlog and
outcomes, and the dead letters."""

import sys
from urllib.parse import urlparse

from pyforge.command.base import Command, print_json, print_table, shorten
from pyforge.lib import amqp
from pyforge.lib.amqp import DEAD_LETTER_QUEUE
from pyforge.lib.status import collect_status

EXIT_PROBLEMS = 1

#: Characters of the last error shown in the table.
ERROR_WIDTH = 50


class StatusCommand(Command):
    """Print every listener queue with its broker and record counts."""

    summary = 'Show the listener queues, their backlog and dead letters'
    usage = 'CONFIG_FILE [--app NAME]... [--json] [--check]'
    description = """\
    Prints one line per listener queue of the installed apps: its
    exchange, patterns and listener; from the broker, READY (messages
    waiting for a worker) and CONSUMERS (workers attached); from the
    message_records collection, DONE (messages handled), RETRYING
    (records whose last attempt failed and whose retry is scheduled),
    DEAD (dead-lettered) and the last failure or dead letter. Then the
    number of dead letters waiting in pyforge.dead, and each orphaned
    queue (declared by reactor_setup for a listener that is no longer
    installed) with the messages it contains.

    Messages a worker received and has not acknowledged yet are not
    shown: AMQP has no way to count them, and READY leaves them out.
    On the broker host, "rabbitmqctl list_queues name messages_ready
    messages_unacknowledged" shows them. A retry on RabbitMQ waits in a
    pyforge.delay.* queue, not in its listener's queue, so RETRYING is
    counted from the records.

    On the embedded broker (filesystem://) consumers cannot be counted,
    so CONSUMERS is "-" and --check does not check them.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option(
        '--app', action='append', dest='apps', metavar='NAME',
        help='show only the queues of this app (its entry point name); '
             'repeat for several apps')
    parser.add_option(
        '--json', action='store_true',
        help='print JSON instead of a table; times are ISO 8601 in UTC, '
             'and numbers that cannot be known are null')
    parser.add_option(
        '--check', action='store_true',
        help='exit 1 when a queue is not declared or has no consumer, '
             'when dead letters wait, or when an orphaned queue holds '
             'messages, and print why on stderr (for monitoring)')

    def run_command(self, args):
        if args:
            self.usage_error('unexpected arguments: %s' % ' '.join(args))
        listeners = self.find_listeners(self.options.apps)
        every_listener = self.find_listeners() if self.options.apps \
            else listeners
        with amqp.opened(self.settings) as connection:
            status = collect_status(
                connection, listeners, self.environment.db,
                amqp.mask_url(self.settings.amqp_url), every_listener)

        if self.options.json:
            print_json(status.to_json())
        else:
            _print_status(status)
        if not self.options.check:
            return 0
        if not status.counts_consumers:
            scheme = urlparse(self.settings.amqp_url).scheme
            print('note: consumers cannot be counted on %s://, so --check '
                  'did not check them' % scheme, file=sys.stderr)
        problems = status.problems()
        for problem in problems:
            print('%s: %s' % (self._prog_name(), problem), file=sys.stderr)
        return EXIT_PROBLEMS if problems else 0


def _print_status(status):
    rows = [('QUEUE', 'EXCHANGE', 'PATTERNS', 'LISTENER', 'READY',
             'CONSUMERS', 'DONE', 'RETRYING', 'DEAD', 'LAST ERROR')]
    for queue in status.queues:
        counts = queue.records
        rows.append((
            queue.queue, queue.exchange, ' '.join(queue.patterns),
            queue.listener,
            _number(queue.ready) if queue.declared else 'not declared',
            _number(queue.consumers),
            str(counts['done']), str(counts['failed']), str(counts['dead']),
            _last_error(queue.last_error),
        ))
    print_table(rows)
    if status.dead_letters is None:
        print('dead letters: %s is not declared' % DEAD_LETTER_QUEUE)
    else:
        print('dead letters: %d in %s' % (status.dead_letters,
                                          DEAD_LETTER_QUEUE))
    for orphan in status.orphans:
        print('orphaned queue: %s, %d message(s), no installed listener'
              % (orphan.queue, orphan.messages))


def _last_error(error):
    if error is None:
        return '-'
    when = error['finished_at']
    text = '%s %s: %s' % (
        when.strftime('%Y-%m-%d %H:%M:%S') if when else '-',
        error['reason'] or error['status'], error['error'] or '')
    return shorten(text, ERROR_WIDTH)


def _number(value):
    return '-' if value is None else str(value)

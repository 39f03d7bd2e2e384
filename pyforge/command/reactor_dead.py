"""``paster reactor_dead``: inspect, requeue and purge dead letters."""

import json
import sys

from pyforge.command.base import Command, print_json, print_table, shorten
from pyforge.lib import amqp
from pyforge.lib.amqp import DEAD_LETTER_QUEUE
from pyforge.lib.dead_letters import DeadLetterQueue
from pyforge.lib.progress import Progress
from pyforge.lib.requeue import REQUEUED, Requeuer

EXIT_FAILED = 1

#: Characters of the error shown in the table of "list".
ERROR_WIDTH = 60


class DeadCommand(Command):
    """List, show, requeue and purge the messages in pyforge.dead."""

    summary = 'Inspect, requeue and purge dead letters'
    usage = ('CONFIG_FILE list [--queue NAME] [--reason CODE] [--limit N] '
             '[--json]\n'
             '       CONFIG_FILE show ID [--json]\n'
             '       CONFIG_FILE requeue ID... [--republish]\n'
             '       CONFIG_FILE requeue --all [--queue NAME] '
             '[--reason CODE] [--republish]\n'
             '       CONFIG_FILE purge [--yes]')
    description = """\
    Dead letters are the messages that no listener could handle; they
    wait in the queue "pyforge.dead" with headers saying why.

    "list" prints one line per dead letter, oldest first: its ID, when it
    died, the queue and listener it died on, the reason code, the
    attempts made and the first line of the error. Reading leaves every
    dead letter in place. "show ID" prints one with all its headers and
    its body.

    ID is the 12-digit id that "list" prints, or a message id, which
    selects every dead letter of that message (one per queue it died on).

    "requeue ID..." sends dead letters back to the queue they died on,
    with their attempts starting again from 0, and removes them from
    pyforge.dead; the workers then handle them again. It checks every ID
    first and requeues nothing if one is not found. "requeue --all"
    requeues every dead letter, or those that --queue and --reason
    select. A dead letter that cannot be requeued (its queue was deleted,
    the broker did not take it) stays in pyforge.dead, and the command
    exits 1 after trying the others.

    "purge" deletes every dead letter for good. It asks for confirmation
    when stdin is a terminal; elsewhere it needs --yes.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option(
        '--queue', metavar='NAME',
        help='with "list" and "requeue --all": only the dead letters of '
             'this listener queue, e.g. audit.hello_forge.auditor')
    parser.add_option(
        '--reason', metavar='CODE',
        help='with "list" and "requeue --all": only the dead letters with '
             'this reason code, e.g. max-attempts or invalid-json')
    parser.add_option(
        '--limit', type='int', metavar='N', default=1000,
        help='with "list": print at most N dead letters (default: 1000)')
    parser.add_option(
        '--json', action='store_true',
        help='with "list" and "show": print JSON instead of text')
    parser.add_option(
        '--all', action='store_true', dest='all',
        help='with "requeue": requeue every dead letter, or every one '
             'that --queue and --reason select')
    parser.add_option(
        '--republish', action='store_true',
        help='with "requeue": publish each message to the exchange and '
             'routing key it was first published with, so that every '
             'queue bound for that key receives it (queues that handled '
             'it ack it as a duplicate by its message id), instead of '
             'sending it to the queue it died on')
    parser.add_option(
        '--yes', action='store_true',
        help='with "purge": purge without asking for confirmation')

    def run_command(self, args):
        if not args:
            self.usage_error('give an action: list, show, requeue or purge')
        action, rest = args[0], args[1:]
        actions = {'list': self.list, 'show': self.show,
                   'requeue': self.requeue, 'purge': self.purge}
        if action not in actions:
            self.usage_error('unknown action %r; use %s'
                             % (action, ', '.join(sorted(actions))))
        return actions[action](rest)

    def list(self, args):
        self._expect_arguments('list', args, 0)
        if self.options.limit < 1:
            self.usage_error('--limit must be 1 or more, not %d'
                             % self.options.limit)
        with amqp.opened(self.settings) as connection, \
                DeadLetterQueue(connection) as dead_letters:
            total = dead_letters.count
            shown = []
            selected = 0
            for letter in dead_letters.scan(keep_bodies=False):
                if not self._selected(letter):
                    continue
                selected += 1
                if len(shown) < self.options.limit:
                    shown.append(letter)

        if self.options.json:
            print_json([letter.summary() for letter in shown])
        elif shown:
            rows = [('ID', 'DEAD AT (UTC)', 'QUEUE', 'ROUTING KEY',
                     'REASON', 'ATTEMPTS', 'ERROR')]
            for letter in shown:
                rows.append((letter.id, _time(letter.dead_at), letter.queue,
                             letter.routing_key, letter.reason,
                             _text(letter.attempts),
                             shorten(letter.error, ERROR_WIDTH)))
            print_table(rows)
        filtered = self.options.queue or self.options.reason
        text = '%d dead letter(s) in %s' % (total, DEAD_LETTER_QUEUE)
        if filtered:
            text += ', %d selected' % selected
        if len(shown) < selected:
            text += ', %d shown; raise --limit to see more' % len(shown)
        print(text, file=sys.stderr)
        return 0

    def show(self, args):
        self._expect_arguments('show', args, 1)
        wanted = self._check_id(args[0])
        with amqp.opened(self.settings) as connection, \
                DeadLetterQueue(connection) as dead_letters:
            found = [letter for letter in dead_letters.scan()
                     if letter.matches(wanted)]
        if not found:
            return self._not_found([wanted])
        if self.options.json:
            shown = []
            for letter in found:
                summary = letter.summary()
                summary['headers'] = letter.delivery.headers
                summary['body'] = _body(letter)
                shown.append(summary)
            print_json(shown)
            return 0
        for index, letter in enumerate(found):
            if index:
                print()
            _print_letter(letter)
        return 0

    def requeue(self, args):
        if self.options.all:
            if args:
                self.usage_error('give IDs or --all, not both')
            return self._requeue_selected()
        if not args:
            self.usage_error('give the IDs to requeue, or --all')
        if self.options.queue or self.options.reason:
            self.usage_error('--queue and --reason go with --all; with IDs '
                             'they would select nothing more')
        wanted = [self._check_id(text) for text in args]
        with amqp.opened(self.settings) as connection, \
                DeadLetterQueue(connection) as dead_letters:
            found = [letter for letter in dead_letters.scan()
                     if any(letter.matches(text) for text in wanted)]
            missing = [text for text in wanted
                       if not any(letter.matches(text) for letter in found)]
            if missing:
                return self._not_found(missing, nothing_requeued=True)
            requeuer = self._requeuer(connection, dead_letters)
            return self._requeue_all(requeuer, found, len(found))

    def purge(self, args):
        self._expect_arguments('purge', args, 0)
        interactive = sys.stdin.isatty()
        if not self.options.yes and not interactive:
            self.usage_error('purge deletes every dead letter for good; '
                             'pass --yes to purge without a terminal')
        with amqp.opened(self.settings) as connection, \
                DeadLetterQueue(connection) as dead_letters:
            if not self.options.yes:
                if not _confirm('Delete the %d dead letter(s) in %s for '
                                'good? [y/N] ' % (dead_letters.count,
                                                  DEAD_LETTER_QUEUE)):
                    print('nothing purged', file=sys.stderr)
                    return EXIT_FAILED
            purged = dead_letters.purge()
        print('purged %d dead letter(s) from %s'
              % (purged, DEAD_LETTER_QUEUE), file=sys.stderr)
        return 0

    def _requeue_selected(self):
        with amqp.opened(self.settings) as connection, \
                DeadLetterQueue(connection) as dead_letters:
            requeuer = self._requeuer(connection, dead_letters)
            letters = (letter for letter in dead_letters.scan()
                       if self._selected(letter))
            return self._requeue_all(requeuer, letters, None)

    def _requeuer(self, connection, dead_letters):
        publisher = amqp.Publisher(connection, warn_unroutable=False)
        return Requeuer(dead_letters, publisher, self.environment.db,
                        republish=self.options.republish)

    def _requeue_all(self, requeuer, letters, total):
        """Requeue `letters`; print each result; return the exit status."""
        progress = Progress('requeued', total=total)
        kept = 0
        for letter in letters:
            result = requeuer.requeue(letter)
            if result.outcome == REQUEUED:
                print('%s requeued to %s' % (letter.id, result.detail),
                      flush=True)
                progress.advance()
            else:
                kept += 1
                print('%s: error: dead letter %s (message %s) was kept: %s'
                      % (self._prog_name(), letter.id, letter.message_id,
                         result.detail), file=sys.stderr)
        text = 'requeued %d dead letter(s)' % progress.count
        if kept:
            text += '; %d kept in %s' % (kept, DEAD_LETTER_QUEUE)
        progress.finish(text)
        return EXIT_FAILED if kept else 0

    def _selected(self, letter):
        if self.options.queue and letter.queue != self.options.queue:
            return False
        if self.options.reason and letter.reason != self.options.reason:
            return False
        return True

    def _expect_arguments(self, action, args, count):
        if len(args) != count:
            self.usage_error('"%s" takes %d argument(s), not %d'
                             % (action, count, len(args)))

    def _check_id(self, text):
        if not text.strip() or text != text.strip():
            self.usage_error('dead letter ID %r is invalid; copy an ID from '
                             '"paster reactor_dead CONFIG list"' % text)
        return text

    def _not_found(self, missing, nothing_requeued=False):
        text = ('%s: error: no dead letter has the ID or message id %s; '
                'list them with "paster reactor_dead CONFIG list"'
                % (self._prog_name(), ', '.join(missing)))
        if nothing_requeued:
            text += '. Nothing was requeued'
        print(text, file=sys.stderr)
        return EXIT_FAILED


def _print_letter(letter):
    fields = [
        ('id', letter.id),
        ('message id', letter.message_id),
        ('dead at (UTC)', _time(letter.dead_at)),
        ('queue', letter.queue),
        ('listener', letter.listener),
        ('reason', letter.reason),
        ('attempts', _text(letter.attempts)),
        ('exchange', letter.exchange),
        ('routing key', letter.routing_key),
        ('content type', letter.delivery.content_type),
        ('size', '%d bytes' % letter.size),
        ('error', letter.error),
    ]
    width = max(len(name) for name, _ in fields) + 1
    for name, value in fields:
        print('%s %s' % ((name + ':').ljust(width), _text(value)))
    print('headers:')
    for name in sorted(letter.delivery.headers):
        print('  %s: %s' % (name, letter.delivery.headers[name]))
    print('body:')
    body = _body(letter)
    if isinstance(body, dict):
        body = json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False)
    print(body)


def _body(letter):
    """Return the body as a dict when it is a JSON object, else text."""
    try:
        text = letter.delivery.body.decode('utf-8')
    except UnicodeDecodeError:
        return repr(letter.delivery.body)
    try:
        data = json.loads(text)
    except ValueError:
        return text
    return data if isinstance(data, dict) else text


def _confirm(prompt):
    print(prompt, end='', file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ('y', 'yes')


def _time(value):
    if value is None:
        return '-'
    return value.strftime('%Y-%m-%d %H:%M:%S')


def _text(value):
    if value is None or value == '':
        return '-'
    return str(value)

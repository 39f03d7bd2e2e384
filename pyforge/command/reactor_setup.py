"""``paster reactor_setup``: declare the exchanges, queues and bindings."""

import sys

from pyforge.command.base import Command
from pyforge.lib.plugins import find_listeners
from pyforge.lib.topology import declare_topology


class SetupCommand(Command):
    """Declare what the installed apps' listeners need on the broker."""

    summary = 'Declare the bus exchanges and a queue per listener'
    usage = 'CONFIG_FILE [--app NAME]...'
    description = """\
    Declares the durable topic exchanges "audit" and "react", the
    dead-letter queue "pyforge.dead", and for every listener of the
    installed apps a durable queue bound with its routing patterns.
    Queues are never deleted, and running it again changes nothing.
    Prints one line per queue: queue, exchange, patterns, listener,
    whether it was created or existed, and its messages waiting.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option(
        '--app', action='append', dest='apps', metavar='NAME',
        help='declare only the queues of this app (its entry point name '
             'in the "pyforge" group); repeat for several apps')

    def run_command(self, args):
        if args:
            self.usage_error('unexpected arguments: %s' % ' '.join(args))
        listeners = find_listeners(self.options.apps)
        if not listeners:
            print('no listeners found: install an app that registers a '
                  'class under the "pyforge" entry point group',
                  file=sys.stderr)
            return 1
        connection = self.environment.connection()
        with connection:
            connection.ensure_connection(max_retries=3)
            states = declare_topology(
                connection, listeners, self.environment.db)
        rows = [('QUEUE', 'EXCHANGE', 'PATTERNS', 'LISTENER', 'STATE',
                 'MESSAGES')]
        for state in states:
            rows.append((state.queue, state.exchange,
                         ' '.join(state.patterns), state.listener,
                         state.state, str(state.messages)))
        print_table(rows)
        for state in states:
            if state.unbound:
                print('%s: unbound %s' % (state.queue,
                                          ' '.join(state.unbound)),
                      file=sys.stderr)
        failed = [state for state in states if state.error]
        for state in failed:
            print('%s: error: %s' % (self._prog_name(), state.error),
                  file=sys.stderr)
        return 1 if failed else 0


def print_table(rows, stream=None):
    """Print `rows` of strings as aligned columns."""
    stream = stream or sys.stdout
    widths = [max(len(row[column]) for row in rows)
              for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        print('  '.join(cells).rstrip(), file=stream)

"""``paster reactor_setup``: declare the exchanges, queues and bindings."""

import sys

from pyforge.command.base import Command, print_table
from pyforge.lib import amqp
from pyforge.lib.orphans import DELETED, decide, delete_orphans, find_orphans
from pyforge.lib.topology import declare_topology, plan_topology


class SetupCommand(Command):
    """Declare what the installed apps' listeners need on the broker."""

    summary = 'Declare the bus exchanges and a queue per listener'
    usage = 'CONFIG_FILE [--app NAME]... [--dry-run] [--delete-orphans]'
    description = """\
    Declares the durable topic exchanges "audit" and "react", the
    dead-letter queue "pyforge.dead", and for every listener of the
    installed apps a durable queue bound with its routing patterns.
    Patterns a listener dropped are unbound. Running it again changes
    nothing. Prints one line per queue: queue, exchange, patterns,
    listener, whether it was created or existed, and its messages ready.

    Then it lists the orphaned queues: queues it declared before that no
    installed listener claims now, because an app was uninstalled or a
    listener renamed. They are never deleted unless --delete-orphans is
    given, and even then only when empty and without consumers. On
    RabbitMQ only the queues recorded in the bus_queues collection are
    found, because AMQP cannot list queues. On filesystem:// every queue
    bound to audit or react is found too.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option(
        '--app', action='append', dest='apps', metavar='NAME',
        help='declare only the queues of this app (its entry point name '
             'in the "pyforge" group); repeat for several apps. Orphans '
             'are still judged against every installed app')
    parser.add_option(
        '--dry-run', action='store_true',
        help='change nothing: print what would be declared, bound and '
             'unbound, and the orphaned queues with their messages')
    parser.add_option(
        '--delete-orphans', action='store_true',
        help='delete the orphaned queues that are empty and have no '
             'consumer; keep the others and say why')

    def run_command(self, args):
        if args:
            self.usage_error('unexpected arguments: %s' % ' '.join(args))
        listeners = self.find_listeners(self.options.apps)
        every_listener = self.find_listeners() if self.options.apps \
            else listeners
        db = self.environment.db
        with amqp.opened(self.settings) as connection:
            if self.options.dry_run:
                self._print_plan(plan_topology(connection, listeners, db))
                orphans = find_orphans(connection, every_listener, db)
                self._print_orphans(orphans, planned=True)
                return 0
            states = declare_topology(connection, listeners, db)
            orphans = find_orphans(connection, every_listener, db)
            if self.options.delete_orphans:
                delete_orphans(connection, orphans, db)
        failed = self._print_states(states)
        self._print_orphans(orphans, planned=False)
        return 1 if failed else 0

    def _print_states(self, states):
        """Print what was declared; return True if a queue failed."""
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
        return bool(failed)

    def _print_plan(self, plan):
        print_table([('EXCHANGE', 'TYPE', 'ACTION')] + [
            (name, 'topic', 'exists' if exists else 'create')
            for name, exists in sorted(plan.exchanges.items())])
        print()
        rows = [('QUEUE', 'EXCHANGE', 'PATTERNS', 'LISTENER', 'ACTION',
                 'BIND', 'UNBIND', 'MESSAGES')]
        dead = plan.dead_letter_queue
        rows.append((amqp.DEAD_LETTER_QUEUE, '-', '-', '-',
                     'create' if dead is None else 'exists', '-', '-',
                     '0' if dead is None else str(dead[0])))
        for queue in plan.queues:
            listener = queue.listener
            rows.append((
                listener.queue, listener.exchange,
                ' '.join(listener.patterns), listener.label,
                'create' if queue.found is None else 'exists',
                ' '.join(queue.to_bind) or '-',
                ' '.join(queue.to_unbind) or '-',
                '0' if queue.found is None else str(queue.found[0])))
        print_table(rows)
        print('dry run: nothing was declared, bound or unbound',
              file=sys.stderr)

    def _print_orphans(self, orphans, planned):
        if not orphans:
            print('no orphaned queues', file=sys.stderr)
            return
        deciding = self.options.delete_orphans
        header = ('ORPHANED QUEUE', 'EXCHANGE', 'PATTERNS', 'MESSAGES',
                  'CONSUMERS')
        rows = [header + (('ACTION',) if deciding else ())]
        for orphan in orphans:
            row = (orphan.queue, orphan.exchange or '-',
                   ' '.join(orphan.patterns) or '-',
                   'gone' if orphan.messages is None
                   else str(orphan.messages),
                   '-' if orphan.consumers is None
                   else str(orphan.consumers))
            if deciding:
                if planned:
                    outcome, detail = decide(orphan)
                    action = 'would be %s: %s' % (outcome, detail)
                else:
                    action = '%s: %s' % (orphan.outcome, orphan.detail)
                row += (action,)
            rows.append(row)
        print()
        print_table(rows)
        if not deciding:
            print('%d orphaned queue(s): no installed listener claims them;'
                  ' --delete-orphans deletes the empty ones'
                  % len(orphans), file=sys.stderr)
        elif not planned:
            deleted = sum(orphan.outcome == DELETED for orphan in orphans)
            print('deleted %d of %d orphaned queue(s)'
                  % (deleted, len(orphans)), file=sys.stderr)

"""``paster reactor``: run the workers that consume the listener queues."""

from pyforge.command.base import Command
from pyforge.lib.supervisor import Supervisor


class ReactorCommand(Command):
    """Run a worker process per queue under a supervising parent."""

    summary = 'Run worker processes for the listeners of installed apps'
    usage = 'CONFIG_FILE [--app NAME]... [--queue NAME]... [--processes N]'
    description = """\
    Starts worker processes that consume the listener queues declared by
    "paster reactor_setup", one process per queue unless --processes
    says otherwise. A worker that dies is restarted. SIGTERM or SIGINT
    lets each worker finish the message in hand and exits 0; a second
    signal stops them at once and the broker redelivers.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option(
        '--app', action='append', dest='apps', metavar='NAME',
        help='consume only the queues of this app (entry point name); '
             'repeat for several apps')
    parser.add_option(
        '--queue', action='append', dest='queues', metavar='NAME',
        help='consume only this queue, as "paster reactor_setup" prints '
             'it; repeat for several queues')
    parser.add_option(
        '--processes', type='int', dest='processes', metavar='N',
        help='number of worker processes; the queues are shared out among '
             'them (default: one process per queue)')

    def run_command(self, args):
        if args:
            self.usage_error('unexpected arguments: %s' % ' '.join(args))
        listeners = select_listeners(
            self.find_listeners(self.options.apps), self.options.queues,
            self.usage_error)
        processes = self.options.processes
        if processes is None:
            processes = len(listeners)
        elif processes < 1:
            self.usage_error('--processes must be 1 or more, not %d'
                             % processes)
        groups = [listeners[index::processes]
                  for index in range(min(processes, len(listeners)))]
        return Supervisor(self.environment, groups).run()


def select_listeners(listeners, queues, usage_error):
    """Return the listeners of `queues`, or all when `queues` is None."""
    if not queues:
        return listeners
    by_queue = {listener.queue: listener for listener in listeners}
    unknown = [queue for queue in queues if queue not in by_queue]
    if unknown:
        usage_error('unknown queue %s; the queues are: %s'
                    % (', '.join(unknown), ', '.join(sorted(by_queue))))
    return [by_queue[queue] for queue in queues]

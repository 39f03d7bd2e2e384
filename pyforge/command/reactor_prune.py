"""``paster reactor_prune``: delete old message records."""

import datetime

from pyforge.command.base import Command
from pyforge.model import records

#: Record statuses that are final, and so safe to prune.
FINAL_STATUSES = (records.DONE, records.DEAD)


class PruneCommand(Command):
    """Delete the message records of messages handled long ago."""

    summary = 'Delete message records older than a number of days'
    usage = 'CONFIG_FILE --older-than DAYS [--status STATUS]...'
    description = """\
    Workers keep a record of every message in the message_records
    collection; it is how a redelivered message is recognised as done,
    and what reactor_status counts. Records are never deleted by the
    workers, so run this from cron to bound the collection. Only records
    with a final status (done, dead) are deleted; a message redelivered
    after its record is gone is handled again, so keep records longer
    than a message can wait in a queue.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option(
        '--older-than', type='float', dest='days', metavar='DAYS',
        help='delete records whose message finished more than DAYS days '
             'ago (fractions allowed); required')
    parser.add_option(
        '--status', action='append', dest='statuses', metavar='STATUS',
        help='delete only records with this status: done or dead; repeat '
             'for both (default: both)')

    def run_command(self, args):
        if args:
            self.usage_error('unexpected arguments: %s' % ' '.join(args))
        if self.options.days is None:
            self.usage_error('--older-than DAYS is required, e.g. '
                             '--older-than 7')
        if self.options.days < 0:
            self.usage_error('--older-than must be 0 or more days, not %s'
                             % self.options.days)
        statuses = tuple(self.options.statuses or FINAL_STATUSES)
        unknown = [status for status in statuses
                   if status not in FINAL_STATUSES]
        if unknown:
            self.usage_error(
                '--status %s is not a final status; use %s'
                % (unknown[0], ' or '.join(FINAL_STATUSES)))
        cutoff = records.utcnow() - datetime.timedelta(
            days=self.options.days)
        deleted = records.prune(self.environment.db, cutoff, statuses)
        print('deleted %d record(s) finished before %s'
              % (deleted, cutoff.strftime('%Y-%m-%d %H:%M:%S UTC')))
        return 0

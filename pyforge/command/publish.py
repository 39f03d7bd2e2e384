"""``paster publish``: send messages from the command line or a stream."""

import sys

from pyforge.command.base import Command
from pyforge.exceptions import ConfigurationError, PublishError
from pyforge.lib import amqp
from pyforge.lib.bodies import (
    BodyError, parse_body, read_body_file, read_body_lines)
from pyforge.lib.progress import Progress
from pyforge.lib.publish import publish_now
from pyforge.lib.routing import EXCHANGES, check_routing_key

EXIT_FAILED = 1


class PublishCommand(Command):
    """Publish JSON objects to the audit or react exchange."""

    summary = 'Publish messages to the audit or react exchange'
    usage = ('CONFIG_FILE EXCHANGE ROUTING_KEY BODY [--project-id ID] '
             '[--mount-point NAME]')
    description = """\
    Publishes a message to EXCHANGE ("audit" or "react") with ROUTING_KEY,
    e.g. hello_forge.comment; a routing key names one topic and has no
    wildcards. BODY is one of:

      '{"project_id": "demo", ...}'  a JSON object;
      @FILE                          the JSON object in FILE;
      -                              one JSON object per line of stdin
                                     (JSON Lines), to replay a stream.

    Prints the id of each message sent on stdout, one per line, as soon
    as the broker has taken it (on RabbitMQ: confirmed it), and a final
    count on stderr; while stderr is a terminal, a running count too.
    With "-", blank lines are skipped, and the first invalid line stops
    the command with exit status 1: the lines before it were sent (their
    ids are on stdout), the lines after it were not. The error names the
    line, so "tail -n +LINE" resends from there. A message that no queue
    receives also stops the command with exit status 1.
    """

    parser = Command.standard_parser(verbose=False)
    parser.add_option(
        '--project-id', dest='project_id', metavar='ID',
        help='set the "project_id" field of every body to ID, replacing '
             'the value the body has')
    parser.add_option(
        '--mount-point', dest='mount_point', metavar='NAME',
        help='set the "mount_point" field of every body to NAME (the app '
             'instance an audit message is for), replacing the value the '
             'body has')

    def run_command(self, args):
        if len(args) != 3:
            self.usage_error(
                'give EXCHANGE, ROUTING_KEY and BODY after the config file, '
                'not %d argument(s)' % len(args))
        exchange, routing_key, body = args
        self._check_arguments(exchange, routing_key)
        bodies = self._bodies(body)
        from_stream = body == '-'

        with amqp.opened(self.settings) as connection:
            publisher = amqp.Publisher(connection, warn_unroutable=False)
            progress = Progress('published')
            try:
                for line_number, data in bodies:
                    self._fill_fields(data)
                    try:
                        message_id = publish_now(
                            publisher, exchange, routing_key, data,
                            self.settings.reactor_max_body_size)
                    except (PublishError, ValueError) as exc:
                        where = '' if line_number is None \
                            else 'line %d: ' % line_number
                        return self._stop(progress, line_number,
                                          where + str(exc))
                    print(message_id, flush=True)
                    progress.advance()
            except BodyError as exc:
                return self._stop(progress, exc.line_number, exc)

        if from_stream and progress.count == 0:
            progress.finish(
                '%s: error: stdin has no message; give one JSON object per '
                'line, e.g. echo \'{"project_id": "demo"}\' | paster '
                'publish CONFIG %s %s -'
                % (self._prog_name(), exchange, routing_key))
            return EXIT_FAILED
        progress.finish('published %d message(s) to exchange %s with '
                        'routing key %s' % (progress.count, exchange,
                                            routing_key))
        return 0

    def _check_arguments(self, exchange, routing_key):
        if exchange not in EXCHANGES:
            self.usage_error('exchange %r is unknown; use %s'
                             % (exchange, ' or '.join(EXCHANGES)))
        try:
            check_routing_key(routing_key)
        except ConfigurationError as exc:
            self.usage_error(str(exc))
        for option, value in (('--project-id', self.options.project_id),
                              ('--mount-point', self.options.mount_point)):
            if value is not None and not value.strip():
                self.usage_error('%s is empty; give a value or leave the '
                                 'option out' % option)

    def _bodies(self, body):
        """Return an iterable of ``(line number or None, dict)``."""
        if body == '-':
            return read_body_lines(sys.stdin.buffer)
        if body.startswith('@'):
            path = body[1:]
            if not path:
                self.usage_error('BODY "@" names no file; write @FILE, '
                                 'e.g. @comment.json')
            return [(None, read_body_file(path))]
        try:
            return [(None, parse_body(body, 'BODY'))]
        except BodyError as exc:
            self.usage_error('%s; to read it from a file write @FILE, or '
                             '- for one object per line of stdin' % exc)

    def _fill_fields(self, data):
        if self.options.project_id is not None:
            data['project_id'] = self.options.project_id
        if self.options.mount_point is not None:
            data['mount_point'] = self.options.mount_point

    def _stop(self, progress, line_number, error):
        """Report the error that stopped a batch and what was sent."""
        text = '%s: error: %s' % (self._prog_name(), error)
        if line_number is not None:
            text += ('\npublished %d message(s) before line %d and none '
                     'after it; to resume from it: tail -n +%d FILE | '
                     'paster publish ... -'
                     % (progress.count, line_number, line_number))
        progress.finish(text)
        return EXIT_FAILED

"""The base of pyforge's paster commands.

Every command takes the .ini file first, applies its logging sections,
loads the settings, prints results to stdout and status and errors to
stderr, and exits 0 on success, 1 when the work failed and 2 on a usage
error.
"""

import configparser
import datetime
import json
import logging
import logging.config
import optparse
import os
import sqlite3
import sys

import pymongo.errors
from paste.script import command

from pyforge.environment import configure
from pyforge.exceptions import ConfigurationError, PyforgeError
from pyforge.lib.plugins import (
    find_listeners, registered_apps, unknown_app_message)
from pyforge.lib.store import mask_password

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class Command(command.Command):
    """A paster command run against an .ini file.

    Subclasses set ``summary``, ``usage`` and ``parser`` and implement
    :meth:`run_command`, which returns an exit status or None for 0.
    """

    group_name = 'pyforge'
    takes_config_file = 1
    min_args = 1

    @classmethod
    def standard_parser(cls, **kwargs):
        parser = super().standard_parser(**kwargs)
        parser.formatter = _HelpFormatter()
        return parser

    def run(self, args):
        try:
            return super().run(args)
        except command.BadCommand as exc:
            print('%s: error: %s' % (self._prog_name(), exc.message),
                  file=sys.stderr)
            print('run "%s --help" for the options'
                  % self._prog_name(), file=sys.stderr)
            return EXIT_USAGE

    def command(self):
        config_path = self.args[0]
        if not os.path.isfile(config_path):
            self.usage_error(
                'config file %s not found; pass the path of an .ini file '
                'with an [app:main] section' % config_path)
        try:
            setup_logging(config_path)
            self.environment = configure(config_path)
            self.settings = self.environment.settings
            status = self.run_command(self.args[1:])
        except PyforgeError as exc:
            print('%s: error: %s' % (self._prog_name(), exc),
                  file=sys.stderr)
            return EXIT_FAILED
        except (pymongo.errors.PyMongoError, sqlite3.Error) as exc:
            print('%s: error: the database at %s failed: %s: %s; check '
                  'mongo.url and that the database is running and not '
                  'locked by a long transaction'
                  % (self._prog_name(), mask_password(
                      self.environment.settings.mongo_url),
                     type(exc).__name__, exc), file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK if status is None else status

    def run_command(self, args):
        """Do the command's work; `args` follow the .ini path."""
        raise NotImplementedError

    def find_listeners(self, app_names=None):
        """Return the listeners of `app_names`, or of every installed app;
        raise :class:`ConfigurationError` when there are none."""
        if app_names:
            installed = registered_apps()
            unknown = sorted(set(app_names) - set(installed))
            if unknown:
                self.usage_error(unknown_app_message(unknown, installed))
        listeners = find_listeners(app_names)
        if not listeners:
            raise ConfigurationError(
                'no listeners found: install an app that registers a class '
                'under the "pyforge" entry point group')
        return listeners

    def usage_error(self, text):
        """Raise the error for a wrong argument (exit status 2)."""
        raise command.BadCommand(text, exit_code=EXIT_USAGE)


class _HelpFormatter(optparse.IndentedHelpFormatter):
    """Keeps the line breaks that a command's description was written
    with; optparse would join its lists into one paragraph."""

    def format_description(self, description):
        return description.rstrip() + '\n' if description else ''


def setup_logging(config_path):
    """Apply the logging sections of the .ini file, if it has them.

    Without them, INFO and above go to stderr so that commands still
    report what they do.
    """
    path = os.path.abspath(config_path)
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding='utf-8')
    except configparser.Error:
        parser = None
    if parser is not None and parser.has_section('loggers'):
        logging.config.fileConfig(path, defaults={
            'here': os.path.dirname(path),
            '__file__': path,
        }, disable_existing_loggers=False)
        return
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format='%(asctime)s %(levelname)-5s [%(name)s] %(message)s')


def print_table(rows, stream=None):
    """Print `rows` of strings as aligned columns."""
    stream = stream or sys.stdout
    widths = [max(len(row[column]) for row in rows)
              for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        print('  '.join(cells).rstrip(), file=stream)


def print_json(value, stream=None):
    """Print `value` as indented JSON; times become ISO 8601 strings.

    A time without a time zone is taken as UTC, as the document store
    returns them.
    """
    print(json.dumps(value, indent=2, sort_keys=True, default=_json_default),
          file=stream or sys.stdout)


def _json_default(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    return str(value)


def shorten(text, width):
    """Return `text` on one line, cut to `width` characters with '...'."""
    text = ' '.join(str(text).split())
    if len(text) <= width:
        return text
    return text[:width - 3] + '...'

"""``paster reactor_setup --dry-run`` and orphaned queues, on RabbitMQ and
on the embedded broker."""

import json
import unittest

import kombu

from pyforge.lib import amqp
from pyforge.lib.message import build_message
from pyforge.lib.topology import COLLECTION
from tests.command.ops import AUDITOR, OpsTestCase
from tests.rabbit import RabbitTestCase
from tests.support import TempDirTestCase, app_path_env, paster

EXAMPLE_QUEUES = ['audit.hello_forge.auditor',
                  'audit.hello_forge.count_messages',
                  'react.wiki.count_events', 'react.wiki.on_comment']


def table(text):
    """Return ``{first header word: rows as word lists}`` for each table
    in `text`; tables are separated by blank lines."""
    tables = {}
    current = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        words = line.split()
        if current is None:
            current = tables.setdefault(words[0], [])
            continue
        current.append(words)
    return tables


class DryRunMixin:

    def test_dry_run_declares_nothing(self):
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run')
        tables = table(result.stdout)
        queues = {row[0]: row for row in tables['QUEUE']}
        self.assertEqual(sorted(queues),
                         sorted(EXAMPLE_QUEUES + ['pyforge.dead']))
        self.assertEqual(queues[AUDITOR][4:],
                         ['create', 'hello_forge.#', '-', '0'])
        self.assertIn('dry run: nothing was declared', result.stderr)
        for queue in EXAMPLE_QUEUES:
            with self.subTest(queue=queue):
                self.assertIsNone(self.ready(queue))
        self.assertEqual(self.db[COLLECTION].count_documents({}), 0)

    def test_dry_run_after_setup_changes_nothing(self):
        self.paster_ok('reactor_setup', self.ini)
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run')
        tables = table(result.stdout)
        for row in tables['QUEUE']:
            with self.subTest(queue=row[0]):
                self.assertEqual(row[-4:-1], ['exists', '-', '-'])
        self.assertEqual([row[-1] for row in tables['EXCHANGE']],
                         ['exists', 'exists'])
        self.assertNotIn('ORPHANED', result.stdout)
        self.assertIn('no orphaned queues', result.stderr)

    def test_dry_run_shows_stale_pattern_to_unbind(self):
        self.paster_ok('reactor_setup', self.ini)
        self.bind_extra(AUDITOR, 'audit', 'old.#')
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run')
        queues = {row[0]: row for row in table(result.stdout)['QUEUE']}
        self.assertEqual(queues[AUDITOR][-3:-1], ['-', 'old.#'])
        # Still bound: the dry run unbound nothing.
        self.publish('old.thing')
        self.assertEqual(self.ready(AUDITOR), 1)

    def bind_extra(self, queue, exchange, pattern):
        channel = self.connection.channel()
        amqp.declare_exchanges(channel)
        kombu.Queue(queue, durable=True, auto_delete=False, bindings=[
            kombu.binding(amqp.exchange(exchange), routing_key=pattern)])(
            channel).declare()
        channel.close()
        document = self.db[COLLECTION].find_one({'_id': queue})
        self.db[COLLECTION].update_one(
            {'_id': queue},
            {'$set': {'patterns': document['patterns'] + [pattern]}})

    def publish(self, routing_key):
        amqp.Publisher(self.connection).send(build_message(
            'audit', routing_key, {'project_id': 'demo'}))


class OrphanMixin:

    apps = {'slow': 'tests.apps:SlowApp', 'writer': 'tests.apps:WriterApp'}

    def setUp(self):
        super().setUp()
        # Declared while slow and writer were installed; then uninstalled.
        self.publish_to('slow.work')
        self.env = app_path_env(self.tmp + '-none')

    def publish_to(self, routing_key):
        amqp.Publisher(self.connection).send(build_message(
            'audit', routing_key, {'project_id': 'demo'}))

    def orphans(self, result):
        return {row[0]: row for row in table(result.stdout).get(
            'ORPHANED', [])}

    def test_orphans_listed_with_messages(self):
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run')
        orphans = self.orphans(result)
        self.assertEqual(sorted(orphans),
                         ['audit.slow.work', 'audit.writer.write'])
        self.assertEqual(orphans['audit.slow.work'][1:4],
                         ['audit', 'slow.#', '1'])
        self.assertEqual(orphans['audit.writer.write'][3], '0')
        self.assertIn('2 orphaned queue(s)', result.stderr)

    def test_dry_run_delete_orphans_deletes_nothing(self):
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run',
                                '--delete-orphans')
        self.assertIn('would be deleted: it is empty', result.stdout)
        self.assertIn('would be kept: it has 1 message(s)', result.stdout)
        self.assertEqual(self.ready('audit.writer.write'), 0)
        self.assertEqual(self.ready('audit.slow.work'), 1)

    def test_delete_orphans_keeps_queue_with_messages(self):
        result = self.paster_ok('reactor_setup', self.ini,
                                '--delete-orphans')
        orphans = self.orphans(result)
        self.assertIn('deleted: it is empty',
                      ' '.join(orphans['audit.writer.write']))
        self.assertIn('kept: it has 1 message(s)',
                      ' '.join(orphans['audit.slow.work']))
        self.assertIn('deleted 1 of 2 orphaned queue(s)', result.stderr)
        self.assertIsNone(self.ready('audit.writer.write'))
        self.assertEqual(self.ready('audit.slow.work'), 1)
        self.assertIsNone(self.db[COLLECTION].find_one(
            {'_id': 'audit.writer.write'}))
        again = self.paster_ok('reactor_setup', self.ini, '--dry-run')
        self.assertEqual(sorted(self.orphans(again)), ['audit.slow.work'])

    def test_setup_without_option_deletes_nothing(self):
        result = self.paster_ok('reactor_setup', self.ini)
        self.assertIn('--delete-orphans deletes the empty ones',
                      result.stderr)
        self.assertEqual(self.ready('audit.writer.write'), 0)

    def test_app_selection_judged_against_every_app(self):
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run',
                                '--app', 'wiki')
        orphans = self.orphans(result)
        self.assertEqual(sorted(orphans),
                         ['audit.slow.work', 'audit.writer.write'])


    def test_status_reports_orphan_with_messages(self):
        result = self.paster_ok('reactor_status', self.ini, '--json')
        orphans = {orphan['queue']: orphan
                   for orphan in json.loads(result.stdout)['orphans']}
        self.assertEqual(sorted(orphans),
                         ['audit.slow.work', 'audit.writer.write'])
        self.assertEqual(orphans['audit.slow.work']['messages'], 1)
        self.assertEqual(orphans['audit.writer.write']['messages'], 0)
        table_output = self.paster_ok('reactor_status', self.ini).stdout
        self.assertIn('orphaned queue: audit.slow.work, 1 message(s)',
                      table_output)

    def test_status_check_fails_on_orphan_with_messages(self):
        result = self.paster('reactor_status', self.ini, '--check',
                             '--app', 'wiki')
        self.assertEqual(result.returncode, 1)
        self.assertIn('orphaned queue audit.slow.work holds 1 message(s)',
                      result.stderr)
        # An empty orphan loses nothing, so it is no problem.
        self.assertNotIn('audit.writer.write', result.stderr)


class FilesystemDryRunTest(DryRunMixin, OpsTestCase):

    setup_bus = False

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitDryRunTest(DryRunMixin, OpsTestCase, RabbitTestCase):

    setup_bus = False

    def amqp_url(self):
        return self.vhost.url

    def test_dry_run_names_missing_exchanges(self):
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run')
        self.assertEqual([row[-1] for row in table(result.stdout)['EXCHANGE']],
                         ['create', 'create'])


class FilesystemOrphanTest(OrphanMixin, OpsTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]

    def test_orphan_found_by_binding_alone(self):
        # A queue bound by hand, never recorded in bus_queues.
        channel = self.connection.channel()
        amqp.declare_exchanges(channel)
        kombu.Queue('audit.manual.queue', bindings=[kombu.binding(
            amqp.exchange('audit'), routing_key='manual.#')])(
            channel).declare()
        channel.close()
        result = self.paster_ok('reactor_setup', self.ini, '--dry-run')
        self.assertIn('audit.manual.queue', self.orphans(result))


class RabbitOrphanTest(OrphanMixin, OpsTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url

    def test_orphan_with_consumer_kept(self):
        channel = self.connection.channel()
        channel.basic_consume('audit.writer.write', callback=lambda m: None)
        result = self.paster_ok('reactor_setup', self.ini,
                                '--delete-orphans')
        self.assertIn('kept: it has 1 consumer(s)', result.stdout)
        self.assertEqual(self.ready('audit.writer.write'), 0)
        channel.close()

    def test_record_of_deleted_queue_forgotten(self):
        channel = self.connection.channel()
        channel.queue_delete('audit.writer.write')
        channel.close()
        result = self.paster_ok('reactor_setup', self.ini,
                                '--delete-orphans')
        self.assertIn('forgotten: the queue no longer exists',
                      result.stdout)
        self.assertIsNone(self.db[COLLECTION].find_one(
            {'_id': 'audit.writer.write'}))


class SetupUsageTest(TempDirTestCase):

    def test_broker_down_named_without_password(self):
        _, mongo_url = self.embedded_urls()
        ini = self.write_ini('amqp://guest:secret@127.0.0.1:1//', mongo_url)
        result = paster('reactor_setup', ini, '--dry-run')
        self.assertEqual(result.returncode, 1)
        self.assertIn('cannot connect to the broker at '
                      'amqp://guest:****@127.0.0.1:1//', result.stderr)
        self.assertNotIn('secret', result.stderr + result.stdout)

    def test_help_names_new_options(self):
        result = paster('reactor_setup', '--help')
        self.assertEqual(result.returncode, 0)
        self.assertIn('--dry-run', result.stdout)
        self.assertIn('--delete-orphans', result.stdout)


if __name__ == '__main__':
    unittest.main()

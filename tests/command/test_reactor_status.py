"""``paster reactor_status`` on RabbitMQ and on the embedded broker."""

import datetime
import json
import unittest

from pyforge.lib.amqp import Publisher
from pyforge.lib.message import build_message
from pyforge.lib.topology import inspect_queue
from pyforge.model import records
from tests.command.ops import (
    AUDITOR, AUDITOR_LABEL, COUNTER, OpsTestCase, stop_process)
from tests.rabbit import RabbitTestCase
from tests.support import TempDirTestCase, paster, start_paster, wait_for

QUEUES = [AUDITOR, COUNTER, 'react.wiki.count_events',
          'react.wiki.on_comment']


class StatusMixin:

    def publish(self, count=1):
        publisher = Publisher(self.connection)
        for _ in range(count):
            publisher.send(build_message('audit', 'hello_forge.comment',
                                         {'project_id': 'demo'}))

    def add_record(self, queue, status, message_id, error=None,
                   reason=None, minutes_ago=0):
        finished_at = records.utcnow() - datetime.timedelta(
            minutes=minutes_ago)
        fields = {'message_id': message_id, 'queue': queue,
                  'status': status, 'finished_at': finished_at}
        if error:
            fields.update(error=error, reason=reason)
        records.save_outcome(self.db, fields)

    def status_json(self, *args):
        result = self.paster_ok('reactor_status', self.ini, '--json', *args)
        status = json.loads(result.stdout)
        return status, {queue['queue']: queue for queue in status['queues']}

    def test_table_lists_every_queue(self):
        self.publish(2)
        result = self.paster_ok('reactor_status', self.ini)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), [
            'QUEUE', 'EXCHANGE', 'PATTERNS', 'LISTENER', 'READY',
            'CONSUMERS', 'DONE', 'RETRYING', 'DEAD', 'LAST', 'ERROR'])
        rows = {line.split()[0]: line.split() for line in lines[1:-1]}
        self.assertEqual(sorted(rows), QUEUES)
        self.assertEqual(rows[AUDITOR][1:5],
                         ['audit', 'hello_forge.#', AUDITOR_LABEL, '2'])
        self.assertEqual(rows['react.wiki.on_comment'][4], '0')
        self.assertEqual(lines[-1], 'dead letters: 0 in pyforge.dead')

    def test_record_counts_and_last_error(self):
        for number in range(3):
            self.add_record(AUDITOR, records.DONE, 'd%d' % number)
        self.add_record(AUDITOR, records.FAILED, 'f1', 'ValueError: first',
                        'listener-failed', minutes_ago=2)
        self.add_record(AUDITOR, records.DEAD, 'x1', 'ValueError: last',
                        'max-attempts', minutes_ago=1)
        status, queues = self.status_json()
        counts = queues[AUDITOR]['records']
        self.assertEqual(counts['done'], 3)
        self.assertEqual(counts['failed'], 1)
        self.assertEqual(counts['dead'], 1)
        self.assertEqual(counts['requeued'], 0)
        error = queues[AUDITOR]['last_error']
        self.assertEqual(error['error'], 'ValueError: last')
        self.assertEqual(error['reason'], 'max-attempts')
        self.assertEqual(error['message_id'], 'x1')
        self.assertIsNone(queues[COUNTER]['last_error'])
        result = self.paster_ok('reactor_status', self.ini)
        row = [line for line in result.stdout.splitlines()
               if line.startswith(AUDITOR)][0]
        self.assertIn('max-attempts: ValueError: last', row)

    def test_dead_letters_counted(self):
        self.add_dead_letter()
        self.add_dead_letter()
        status, _ = self.status_json()
        self.assertEqual(status['dead_letters'], 2)

    def test_check_fails_on_dead_letters(self):
        self.add_dead_letter()
        result = self.paster('reactor_status', self.ini, '--check')
        self.assertEqual(result.returncode, 1)
        self.assertIn('1 dead letter(s) in pyforge.dead', result.stderr)

    def test_broker_url_has_no_password(self):
        status, _ = self.status_json()
        self.assertNotIn('guest:guest', status['broker'])

    def test_app_selects_queues(self):
        _, queues = self.status_json('--app', 'wiki')
        self.assertEqual(sorted(queues), QUEUES[2:])


class FilesystemStatusTest(StatusMixin, OpsTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]

    def test_consumers_unknown_and_not_checked(self):
        status, queues = self.status_json()
        self.assertFalse(status['counts_consumers'])
        self.assertIsNone(queues[AUDITOR]['consumers'])
        result = self.paster('reactor_status', self.ini, '--check')
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('consumers cannot be counted on filesystem://',
                      result.stderr)


class RabbitStatusTest(StatusMixin, OpsTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url

    def test_check_fails_without_consumers(self):
        result = self.paster('reactor_status', self.ini, '--check')
        self.assertEqual(result.returncode, 1)
        for queue in QUEUES:
            self.assertIn('queue %s has no consumer' % queue, result.stderr)

    def test_check_passes_with_reactor_running(self):
        reactor = start_paster('reactor', self.ini, env=self.env)
        self.addCleanup(stop_process, reactor)
        wait_for(lambda: all(self.consumers(queue) == 1 for queue in QUEUES),
                 what='a consumer on every queue', timeout=60)
        status, queues = self.status_json()
        self.assertEqual(queues[AUDITOR]['consumers'], 1)
        result = self.paster('reactor_status', self.ini, '--check')
        self.assertEqual(result.returncode, 0, result.stderr)

    def consumers(self, queue):
        return inspect_queue(self.connection, queue)[1]


class RabbitUndeclaredStatusTest(OpsTestCase, RabbitTestCase):

    setup_bus = False

    def amqp_url(self):
        return self.vhost.url

    def test_undeclared_queues_reported(self):
        result = self.paster('reactor_status', self.ini, '--check')
        self.assertEqual(result.returncode, 1)
        self.assertIn('queue %s is not declared; run paster reactor_setup'
                      % AUDITOR, result.stderr)
        self.assertIn('the dead-letter queue pyforge.dead is not declared',
                      result.stderr)
        self.assertIn('not declared', result.stdout)


class StatusErrorTest(TempDirTestCase):

    def test_broker_down_exits_1(self):
        _, mongo_url = self.embedded_urls()
        ini = self.write_ini('amqp://guest:secret@127.0.0.1:1//', mongo_url)
        result = paster('reactor_status', ini, '--check')
        self.assertEqual(result.returncode, 1)
        self.assertIn('cannot connect to the broker at '
                      'amqp://guest:****@127.0.0.1:1//', result.stderr)
        self.assertNotIn('secret', result.stderr + result.stdout)

    def test_unexpected_argument_exits_2(self):
        _, mongo_url = self.embedded_urls()
        ini = self.write_ini(self.embedded_urls()[0], mongo_url)
        result = paster('reactor_status', ini, 'extra')
        self.assertEqual(result.returncode, 2)
        self.assertIn('unexpected arguments: extra', result.stderr)

    def test_help_explains_unacknowledged(self):
        result = paster('reactor_status', '--help')
        self.assertEqual(result.returncode, 0)
        self.assertIn('messages_unacknowledged', result.stdout)
        self.assertIn('--check', result.stdout)


if __name__ == '__main__':
    unittest.main()

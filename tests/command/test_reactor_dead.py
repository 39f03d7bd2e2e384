"""``paster reactor_dead`` on RabbitMQ and on the embedded broker."""

import json
import os
import unittest

from pyforge.lib.amqp import DEAD_LETTER_QUEUE, Publisher
from pyforge.lib.dead_letters import dead_letter_id
from pyforge.lib.message import Delivery
from pyforge.lib.publish import publish_now
from pyforge.lib.transport import claim_message_file
from pyforge.lib.unacked import LOCK_NAME
from pyforge.model import records
from tests.command.ops import AUDITOR, COUNTER, OpsTestCase, stop_process
from tests.rabbit import RabbitTestCase
from tests.support import (
    BIN, TempDirTestCase, paster, start_paster, wait_for)
from tests.terminal import run_in_terminal


def letter_id(letter):
    return dead_letter_id(Delivery.from_outgoing(letter, DEAD_LETTER_QUEUE))


class DeadListMixin:

    def test_list_shows_each_dead_letter(self):
        first = self.add_dead_letter(reason='max-attempts')
        second = self.add_dead_letter(queue=COUNTER, reason='unknown-project',
                                      error='project nope does not exist')
        result = self.paster_ok('reactor_dead', self.ini, 'list')
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split()[:4],
                         ['ID', 'DEAD', 'AT', '(UTC)'])
        self.assertEqual(len(lines), 3)
        # filesystem:// may list dead letters of one millisecond in any
        # order, so rows are matched by ID.
        rows = {line.split()[0]: line for line in lines[1:]}
        self.assertEqual(sorted(rows),
                         sorted([letter_id(first), letter_id(second)]))
        row = rows[letter_id(first)]
        self.assertIn(AUDITOR, row)
        self.assertIn('max-attempts', row)
        self.assertIn('ValueError: boom', row)
        self.assertIn('unknown-project', rows[letter_id(second)])
        self.assertIn('2 dead letter(s) in pyforge.dead', result.stderr)

    def test_list_leaves_dead_letters_in_place(self):
        for _ in range(3):
            self.add_dead_letter()
        first = self.dead_letter_ids()
        second = self.dead_letter_ids()
        self.assertEqual(len(first), 3)
        self.assertEqual(second, first)
        self.assertEqual(self.dead_count(), 3)

    def test_list_json_fields(self):
        letter = self.add_dead_letter(attempts=4)
        result = self.paster_ok('reactor_dead', self.ini, 'list', '--json')
        [entry] = json.loads(result.stdout)
        self.assertEqual(entry['id'], letter_id(letter))
        self.assertEqual(entry['message_id'], letter.message_id)
        self.assertEqual(entry['queue'], AUDITOR)
        self.assertEqual(entry['reason'], 'max-attempts')
        self.assertEqual(entry['error'], 'ValueError: boom')
        self.assertEqual(entry['attempts'], 4)
        self.assertEqual(entry['exchange'], 'audit')
        self.assertEqual(entry['routing_key'], 'hello_forge.comment')
        self.assertIn('HelloForgeApp.auditor', entry['listener'])
        self.assertTrue(entry['dead_at'].endswith('+00:00'))

    def test_list_filters_by_queue_and_reason(self):
        self.add_dead_letter(reason='max-attempts')
        self.add_dead_letter(queue=COUNTER, reason='max-attempts')
        self.add_dead_letter(queue=COUNTER, reason='invalid-json')
        result = self.paster_ok('reactor_dead', self.ini, 'list', '--json',
                                '--queue', COUNTER, '--reason',
                                'invalid-json')
        entries = json.loads(result.stdout)
        self.assertEqual([(e['queue'], e['reason']) for e in entries],
                         [(COUNTER, 'invalid-json')])
        self.assertIn('3 dead letter(s) in pyforge.dead, 1 selected',
                      result.stderr)

    def test_list_limit_says_more_exist(self):
        for _ in range(3):
            self.add_dead_letter()
        result = self.paster_ok('reactor_dead', self.ini, 'list', '--json',
                                '--limit', '2')
        self.assertEqual(len(json.loads(result.stdout)), 2)
        self.assertIn('2 shown; raise --limit', result.stderr)

    def test_list_empty_queue(self):
        result = self.paster_ok('reactor_dead', self.ini, 'list')
        self.assertEqual(result.stdout, '')
        self.assertIn('0 dead letter(s) in pyforge.dead', result.stderr)

    def test_show_prints_headers_and_body(self):
        letter = self.add_dead_letter(data={'project_id': 'demo',
                                            'text': 'shown'})
        result = self.paster_ok('reactor_dead', self.ini, 'show',
                                letter_id(letter))
        self.assertIn('message id:    %s' % letter.message_id,
                      result.stdout)
        self.assertIn('reason:        max-attempts', result.stdout)
        self.assertIn('pyforge-dead-queue: %s' % AUDITOR, result.stdout)
        self.assertIn('"text": "shown"', result.stdout)
        self.assertEqual(self.dead_count(), 1)

    def test_show_by_message_id_finds_every_queue(self):
        message_id = 'a' * 32
        self.add_dead_letter(queue=AUDITOR, message_id=message_id)
        self.add_dead_letter(queue=COUNTER, message_id=message_id)
        self.add_dead_letter()
        result = self.paster_ok('reactor_dead', self.ini, 'show',
                                message_id, '--json')
        shown = json.loads(result.stdout)
        self.assertEqual(sorted(entry['queue'] for entry in shown),
                         [AUDITOR, COUNTER])
        self.assertEqual(shown[0]['body']['project_id'], 'demo')

    def test_show_unknown_id_exits_1(self):
        self.add_dead_letter()
        result = self.paster('reactor_dead', self.ini, 'show', '0123456789ab')
        self.assertEqual(result.returncode, 1)
        self.assertIn('no dead letter has the ID or message id 0123456789ab',
                      result.stderr)
        self.assertEqual(result.stdout, '')


class DeadRequeueMixin:

    def test_requeue_sends_message_back_to_its_queue(self):
        letter = self.add_dead_letter(attempts=5)
        other = self.add_dead_letter()
        result = self.paster_ok('reactor_dead', self.ini, 'requeue',
                                letter_id(letter))
        self.assertEqual(result.stdout.strip(), '%s requeued to queue %s'
                         % (letter_id(letter), AUDITOR))
        self.assertIn('requeued 1 dead letter(s)', result.stderr)
        self.assertEqual(self.dead_letter_ids(), [letter_id(other)])
        [delivery] = self.take_messages(AUDITOR)
        self.assertEqual(delivery.message_id, letter.message_id)
        self.assertEqual(delivery.body, letter.body)
        self.assertEqual(delivery.original_exchange, 'audit')
        self.assertEqual(delivery.original_routing_key,
                         'hello_forge.comment')
        self.assertNotIn('pyforge-attempt', delivery.headers)
        dead_headers = [name for name in delivery.headers
                        if name.startswith('pyforge-dead-')]
        self.assertEqual(dead_headers, [])
        self.assertEqual(self.ready(COUNTER), 0)
        record = records.find_record(self.db, AUDITOR, letter.message_id)
        self.assertEqual(record['status'], records.REQUEUED)

    def test_requeue_by_message_id(self):
        letter = self.add_dead_letter()
        self.paster_ok('reactor_dead', self.ini, 'requeue',
                       letter.message_id)
        self.assertEqual(self.dead_count(), 0)
        self.assertEqual(self.ready(AUDITOR), 1)

    def test_requeue_unknown_id_requeues_nothing(self):
        letter = self.add_dead_letter()
        result = self.paster('reactor_dead', self.ini, 'requeue',
                             letter_id(letter), 'feedfeedfeed')
        self.assertEqual(result.returncode, 1)
        self.assertIn('feedfeedfeed', result.stderr)
        self.assertIn('Nothing was requeued', result.stderr)
        self.assertEqual(self.dead_count(), 1)
        self.assertEqual(self.ready(AUDITOR), 0)

    def test_requeue_all_with_queue_filter(self):
        self.add_dead_letter(queue=AUDITOR)
        self.add_dead_letter(queue=COUNTER)
        self.add_dead_letter(queue=COUNTER)
        result = self.paster_ok('reactor_dead', self.ini, 'requeue', '--all',
                                '--queue', COUNTER)
        self.assertEqual(len(result.stdout.splitlines()), 2)
        self.assertIn('requeued 2 dead letter(s)', result.stderr)
        self.assertEqual(self.ready(COUNTER), 2)
        self.assertEqual(self.ready(AUDITOR), 0)
        self.assertEqual(self.dead_count(), 1)

    def test_requeue_all_empties_dead_letter_queue(self):
        for _ in range(5):
            self.add_dead_letter()
        result = self.paster_ok('reactor_dead', self.ini, 'requeue', '--all')
        self.assertIn('requeued 5 dead letter(s)', result.stderr)
        self.assertEqual(self.dead_count(), 0)
        self.assertEqual(self.ready(AUDITOR), 5)

    def test_republish_reaches_every_bound_queue(self):
        letter = self.add_dead_letter()
        result = self.paster_ok('reactor_dead', self.ini, 'requeue',
                                letter_id(letter), '--republish')
        self.assertIn('requeued to exchange audit with routing key '
                      'hello_forge.comment', result.stdout)
        self.assertEqual(self.ready(AUDITOR), 1)
        self.assertEqual(self.ready(COUNTER), 1)
        self.assertEqual(self.dead_count(), 0)

    def test_requeue_to_missing_queue_keeps_letter(self):
        letter = self.add_dead_letter(queue='audit.gone.listener')
        result = self.paster('reactor_dead', self.ini, 'requeue',
                             letter_id(letter))
        self.assertEqual(result.returncode, 1)
        self.assertIn('queue audit.gone.listener does not exist any more',
                      result.stderr)
        self.assertIn('--republish', result.stderr)
        self.assertIn('1 kept in pyforge.dead', result.stderr)
        self.assertEqual(self.dead_count(), 1)

    def test_republish_unroutable_keeps_letter(self):
        letter = self.add_dead_letter(routing_key='nobody.listens')
        result = self.paster('reactor_dead', self.ini, 'requeue',
                             letter_id(letter), '--republish')
        self.assertEqual(result.returncode, 1)
        self.assertIn('no queue received the copy', result.stderr)
        self.assertEqual(self.dead_count(), 1)
        record = records.find_record(self.db, AUDITOR, letter.message_id)
        self.assertEqual(record['status'], records.DEAD)

    def test_requeue_progress_on_terminal(self):
        for _ in range(3):
            self.add_dead_letter()
        status, stdout, stderr, terminal = run_in_terminal(
            [os.path.join(BIN, 'paster'), 'reactor_dead', self.ini,
             'requeue', '--all'], env=self.env, stderr_terminal=True)
        self.assertEqual(status, 0, terminal)
        self.assertIn('\rrequeued 1 ...', terminal)
        self.assertIn('requeued 3 dead letter(s)', terminal)
        self.assertEqual(len(stdout.splitlines()), 3)

    def test_requeue_without_terminal_prints_only_count(self):
        for _ in range(2):
            self.add_dead_letter()
        result = self.paster_ok('reactor_dead', self.ini, 'requeue', '--all')
        self.assertNotIn('\r', result.stderr)
        self.assertIn('requeued 2 dead letter(s)', result.stderr)


class DeadPurgeMixin:

    def test_purge_without_terminal_needs_yes(self):
        self.add_dead_letter()
        result = self.paster('reactor_dead', self.ini, 'purge', input='y\n')
        self.assertEqual(result.returncode, 2)
        self.assertIn('pass --yes', result.stderr)
        self.assertEqual(self.dead_count(), 1)

    def test_purge_yes_deletes_every_dead_letter(self):
        for _ in range(3):
            self.add_dead_letter()
        result = self.paster_ok('reactor_dead', self.ini, 'purge', '--yes')
        self.assertIn('purged 3 dead letter(s)', result.stderr)
        self.assertEqual(self.dead_count(), 0)

    def test_purge_asks_on_terminal(self):
        self.add_dead_letter()
        command = [os.path.join(BIN, 'paster'), 'reactor_dead', self.ini,
                   'purge']
        status, _, stderr, _ = run_in_terminal(
            command, env=self.env, stdin_terminal=True, input_text='n\n')
        self.assertEqual(status, 1)
        self.assertIn('Delete the 1 dead letter(s) in pyforge.dead', stderr)
        self.assertIn('nothing purged', stderr)
        self.assertEqual(self.dead_count(), 1)
        status, _, stderr, _ = run_in_terminal(
            command, env=self.env, stdin_terminal=True, input_text='y\n')
        self.assertEqual(status, 0, stderr)
        self.assertEqual(self.dead_count(), 0)


class DeadUsageMixin:

    def test_usage_errors_exit_2(self):
        cases = [
            (['frobnicate'], 'unknown action'),
            ([], 'give an action'),
            (['requeue'], 'give the IDs to requeue, or --all'),
            (['requeue', 'abc', '--all'], 'give IDs or --all, not both'),
            (['requeue', 'abc', '--queue', AUDITOR], '--queue and --reason '
             'go with --all'),
            (['show'], '"show" takes 1 argument(s), not 0'),
            (['show', 'a', 'b'], '"show" takes 1 argument(s), not 2'),
            (['show', ' a'], "dead letter ID ' a' is invalid"),
            (['list', '--limit', '0'], '--limit must be 1 or more'),
        ]
        for args, text in cases:
            with self.subTest(args=args):
                result = self.paster('reactor_dead', self.ini, *args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(text, result.stderr)


class FilesystemDeadTest(DeadListMixin, DeadRequeueMixin, DeadPurgeMixin,
                         DeadUsageMixin, OpsTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]

    def dead_letter_file(self):
        folder = os.path.join(self.tmp, 'broker', 'queues')
        [name] = [name for name in os.listdir(folder)
                  if name.endswith('.pyforge.dead.msg')]
        return os.path.join(folder, name)

    def test_claimed_file_not_listed(self):
        letter = self.add_dead_letter()
        # Another live reactor_dead, this test process, took it between
        # the scan and the requeue.
        self.assertIsNotNone(claim_message_file(self.dead_letter_file()))
        result = self.paster('reactor_dead', self.ini, 'requeue',
                             letter.message_id)
        self.assertEqual(result.returncode, 1)
        self.assertIn('no dead letter has the ID', result.stderr)
        self.assertEqual(self.ready(AUDITOR), 0)

    def test_killed_claim_listed_again(self):
        letter = self.add_dead_letter()
        # What a reactor_dead killed between claim and requeue leaves: the
        # file in a folder whose lock no process holds.
        path = self.dead_letter_file()
        dead = os.path.join(self.tmp, 'broker', 'unacked', '99999999-dead')
        os.makedirs(dead)
        open(os.path.join(dead, LOCK_NAME), 'w').close()
        os.rename(path, os.path.join(dead, os.path.basename(path)))
        self.assertEqual(self.dead_letter_ids(), [letter_id(letter)])
        self.assertFalse(os.path.exists(dead))


class RabbitDeadTest(DeadListMixin, DeadRequeueMixin, DeadPurgeMixin,
                     DeadUsageMixin, OpsTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url

    def test_list_keeps_queue_order(self):
        letters = [self.add_dead_letter() for _ in range(4)]
        self.dead_letter_ids()
        self.assertEqual(self.dead_letter_ids(),
                         [letter_id(letter) for letter in letters])


class RabbitUndeclaredDeadTest(OpsTestCase, RabbitTestCase):

    setup_bus = False

    def amqp_url(self):
        return self.vhost.url

    def test_missing_dead_letter_queue_named(self):
        result = self.paster('reactor_dead', self.ini, 'list')
        self.assertEqual(result.returncode, 1)
        self.assertIn('the dead-letter queue pyforge.dead does not exist',
                      result.stderr)
        self.assertIn('run paster reactor_setup', result.stderr)


class DeadBrokerDownTest(TempDirTestCase):

    def test_broker_down_named_without_password(self):
        _, mongo_url = self.embedded_urls()
        ini = self.write_ini('amqp://guest:secret@127.0.0.1:1//', mongo_url)
        for action in (['list'], ['show', 'abc'], ['requeue', '--all'],
                       ['purge', '--yes']):
            with self.subTest(action=action):
                result = paster('reactor_dead', ini, *action)
                self.assertEqual(result.returncode, 1)
                self.assertIn('cannot connect to the broker at '
                              'amqp://guest:****@127.0.0.1:1//',
                              result.stderr)
                self.assertNotIn('secret', result.stderr + result.stdout)


class RequeueFlowMixin:
    """A dead letter requeued with paster reactor_dead is handled again
    by paster reactor."""

    apps = {'flaky': 'tests.apps:SwitchedApp'}
    extra_settings = 'reactor.max_attempts = 2\n'
    queue = 'audit.flaky.work'

    def test_requeued_message_handled_by_reactor(self):
        self.paster_ok('project', self.ini, 'mount', 'demo', 'flaky:flaky')
        blocker = os.path.join(self.tmp, 'failing')
        open(blocker, 'w').close()
        reactor = start_paster('reactor', self.ini, '--queue', self.queue,
                               env=self.env)
        self.addCleanup(stop_process, reactor)
        publisher = Publisher(self.connection)
        message_id = publish_now(publisher, 'audit', 'flaky.work', {
            'project_id': 'demo', 'mount_point': 'flaky', 'text': 'again',
            'fail_while': blocker})
        wait_for(lambda: self.dead_count() == 1, what='a dead letter',
                 timeout=60)
        record = records.find_record(self.db, self.queue, message_id)
        self.assertEqual(record['status'], records.DEAD)
        self.assertEqual(self.db.notes.count_documents({}), 0)

        os.remove(blocker)
        result = self.paster_ok('reactor_dead', self.ini, 'requeue',
                                message_id)
        self.assertIn('requeued 1 dead letter(s)', result.stderr)
        wait_for(lambda: records.find_record(
            self.db, self.queue, message_id)['status'] == records.DONE,
            what='the requeued message to be handled', timeout=60)
        record = records.find_record(self.db, self.queue, message_id)
        self.assertEqual(record['attempts'], 1)
        self.assertEqual(self.db.notes.count_documents({'text': 'again'}),
                         1)
        self.assertEqual(self.dead_count(), 0)


class FilesystemRequeueFlowTest(RequeueFlowMixin, OpsTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitRequeueFlowTest(RequeueFlowMixin, OpsTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url


if __name__ == '__main__':
    unittest.main()

"""``paster publish`` on RabbitMQ and on the embedded broker."""

import json
import os
import re
import subprocess
import unittest

from tests.command.ops import AUDITOR, COUNTER, OpsTestCase
from tests.rabbit import RabbitTestCase
from tests.support import BIN, TempDirTestCase, paster
from tests.terminal import run_in_terminal

MESSAGE_ID = re.compile(r'\A[0-9a-f]{32}\Z')
COMMENT = {'project_id': 'demo', 'mount_point': 'hello', 'text': 'hi'}


class PublishMixin:

    #: False where the broker may deliver messages published within the
    #: same millisecond in another order.
    keeps_order = True

    def bodies(self, queue=AUDITOR):
        return [json.loads(delivery.body)
                for delivery in self.take_messages(queue)]

    def test_object_published_and_id_printed(self):
        result = self.paster_ok('publish', self.ini, 'audit',
                                'hello_forge.comment', json.dumps(COMMENT))
        [message_id] = result.stdout.split()
        self.assertRegex(message_id, MESSAGE_ID)
        [delivery] = self.take_messages(AUDITOR)
        self.assertEqual(delivery.message_id, message_id)
        self.assertEqual(json.loads(delivery.body), COMMENT)
        self.assertEqual(delivery.content_type, 'application/json')
        self.assertIn('published 1 message(s) to exchange audit with '
                      'routing key hello_forge.comment', result.stderr)

    def test_body_file(self):
        path = os.path.join(self.tmp, 'comment.json')
        with open(path, 'w') as body_file:
            json.dump(COMMENT, body_file, indent=2)
        self.paster_ok('publish', self.ini, 'audit', 'hello_forge.comment',
                       '@' + path)
        self.assertEqual(self.bodies(), [COMMENT])

    def test_stdin_lines_sent_in_order(self):
        lines = ''.join(json.dumps({'project_id': 'demo', 'n': n}) + '\n'
                        for n in range(3))
        result = self.paster_ok('publish', self.ini, 'audit', 'hello_forge.x',
                                '-', input=lines + '\n')
        ids = result.stdout.split()
        self.assertEqual(len(ids), 3)
        self.assertEqual(len(set(ids)), 3)
        deliveries = self.take_messages(AUDITOR)
        received = [(d.message_id, json.loads(d.body)['n'])
                    for d in deliveries]
        if not self.keeps_order:
            received.sort(key=lambda pair: pair[1])
        self.assertEqual(received, list(zip(ids, [0, 1, 2])))
        self.assertIn('published 3 message(s)', result.stderr)

    def test_invalid_line_stops_after_earlier_lines(self):
        lines = '{"project_id": "p", "n": 1}\n\n{"n": 2, oops}\n{"n": 3}\n'
        result = self.paster('publish', self.ini, 'audit', 'hello_forge.x',
                             '-', input=lines)
        self.assertEqual(result.returncode, 1)
        self.assertIn('line 3 of stdin is not valid JSON', result.stderr)
        self.assertIn('\'{"n": 2, oops}\'', result.stderr)
        self.assertIn('published 1 message(s) before line 3 and none after '
                      'it', result.stderr)
        self.assertIn('tail -n +3', result.stderr)
        self.assertEqual(len(result.stdout.split()), 1)
        self.assertEqual(self.bodies(), [{'project_id': 'p', 'n': 1}])

    def test_non_object_line_named(self):
        result = self.paster('publish', self.ini, 'audit', 'hello_forge.x',
                             '-',
                             input='{"project_id": "p", "n": 1}\n[1, 2]\n')
        self.assertEqual(result.returncode, 1)
        self.assertIn('line 2 of stdin is a JSON array, not an object: '
                      "'[1, 2]'", result.stderr)
        self.assertEqual(self.bodies(), [{'project_id': 'p', 'n': 1}])

    def test_invalid_utf8_line_named(self):
        result = subprocess.run(
            [os.path.join(BIN, 'paster'), 'publish', self.ini, 'audit',
             'hello_forge.x', '-'], input=b'{"n": "\xff"}\n',
            capture_output=True, env=self.env, timeout=120)
        self.assertEqual(result.returncode, 1)
        self.assertIn(b'line 1 of stdin is not valid UTF-8', result.stderr)
        self.assertEqual(self.ready(AUDITOR), 0)

    def test_empty_stdin_fails(self):
        result = self.paster('publish', self.ini, 'audit', 'hello_forge.x',
                             '-', input='\n\n')
        self.assertEqual(result.returncode, 1)
        self.assertIn('stdin has no message', result.stderr)
        self.assertEqual(result.stdout, '')

    def test_project_id_and_mount_point_set(self):
        self.paster_ok('publish', self.ini, 'audit', 'hello_forge.comment',
                       '{"project_id": "old", "text": "x"}', '--project-id',
                       'demo', '--mount-point', 'hello')
        self.assertEqual(self.bodies(), [
            {'project_id': 'demo', 'mount_point': 'hello', 'text': 'x'}])

    def test_react_exchange_reaches_wiki(self):
        self.paster_ok('publish', self.ini, 'react', 'hello_forge.commented',
                       '{"project_id": "demo"}')
        self.assertEqual(self.ready('react.wiki.on_comment'), 1)
        self.assertEqual(self.ready('react.wiki.count_events'), 1)
        self.assertEqual(self.ready(COUNTER), 0)

    def test_unroutable_message_fails(self):
        result = self.paster('publish', self.ini, 'audit', 'nobody.listens',
                             '{"project_id": "demo"}')
        self.assertEqual(result.returncode, 1)
        self.assertIn("no queue is bound to exchange 'audit' for routing key"
                      " 'nobody.listens'", result.stderr)
        self.assertEqual(result.stdout, '')

    def test_body_over_max_size_not_sent(self):
        big = json.dumps({'project_id': 'demo', 'text': 'x' * 2000})
        result = self.paster('publish', self.ini, 'audit', 'hello_forge.x',
                             '-',
                             input='{"project_id": "p", "n": 1}\n'
                             + big + '\n')
        self.assertEqual(result.returncode, 1)
        self.assertIn('line 2: the body is 2', result.stderr)
        self.assertIn('over reactor.max_body_size = 1000', result.stderr)
        self.assertEqual(self.bodies(), [{'project_id': 'p', 'n': 1}])

    def test_progress_only_on_terminal(self):
        command = [os.path.join(BIN, 'paster'), 'publish', self.ini, 'audit',
                   'hello_forge.x', '-']
        lines = ('{"project_id": "p", "n": 1}\n'
                 '{"project_id": "p", "n": 2}\n')
        status, stdout, _, terminal = run_in_terminal(
            command, env=self.env, stderr_terminal=True, input_text=lines)
        self.assertEqual(status, 0, terminal)
        self.assertIn('\rpublished 1 ...', terminal)
        self.assertIn('published 2 message(s)', terminal)
        self.assertEqual(len(stdout.split()), 2)
        result = self.paster_ok('publish', self.ini, 'audit',
                                'hello_forge.x', '-', input=lines)
        self.assertNotIn('\r', result.stderr)
        self.assertIn('published 2 message(s)', result.stderr)


class FilesystemPublishTest(PublishMixin, OpsTestCase):

    extra_settings = 'reactor.max_body_size = 1000\n'
    # kombu names message files <milliseconds>_<uuid4>, so files of the
    # same millisecond are fetched in random order.
    keeps_order = False

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitPublishTest(PublishMixin, OpsTestCase, RabbitTestCase):

    extra_settings = 'reactor.max_body_size = 1000\n'

    def amqp_url(self):
        return self.vhost.url


class PublishInputErrorTest(TempDirTestCase):
    """Bad arguments are caught before the broker is reached."""

    def setUp(self):
        super().setUp()
        # Nothing listens on port 1: a test that got as far as connecting
        # would fail with a broker error instead of the expected one.
        _, mongo_url = self.embedded_urls()
        self.ini = self.write_ini('amqp://guest:secret@127.0.0.1:1//',
                                  mongo_url)

    def test_usage_errors_exit_2(self):
        cases = [
            (['audit', 'a.b', '{"a": 1'], 'BODY is not valid JSON'),
            (['audit', 'a.b', '[1]'], 'BODY is a JSON array, not an object'),
            (['audit', 'a.b', '"text"'], 'BODY is a JSON string'),
            (['audit', 'a.b', '{"n": NaN}'], 'NaN is not valid JSON'),
            (['nowhere', 'a.b', '{}'], "exchange 'nowhere' is unknown; use "
             'audit or react'),
            (['audit', 'a.#', '{}'], "routing key 'a.#' contains a wildcard"),
            (['audit', 'a.*.c', '{}'], 'contains a wildcard'),
            (['audit', '', '{}'], 'the routing key is empty'),
            (['audit', 'a.b'], 'give EXCHANGE, ROUTING_KEY and BODY'),
            (['audit', 'a.b', '@'], 'BODY "@" names no file'),
            (['audit', 'a.b', '{}', '--project-id', ''],
             '--project-id is empty'),
        ]
        for args, text in cases:
            with self.subTest(args=args):
                result = paster('publish', self.ini, *args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(text, result.stderr)
                self.assertNotIn('secret', result.stderr)

    def test_missing_file_exits_1(self):
        missing = os.path.join(self.tmp, 'missing.json')
        result = paster('publish', self.ini, 'audit', 'a.b', '@' + missing)
        self.assertEqual(result.returncode, 1)
        self.assertIn('cannot read the body file %s: No such file'
                      % missing, result.stderr)

    def test_file_with_invalid_json_exits_1(self):
        path = os.path.join(self.tmp, 'bad.json')
        with open(path, 'w') as body_file:
            body_file.write('{"a": 1,}\n')
        result = paster('publish', self.ini, 'audit', 'a.b', '@' + path)
        self.assertEqual(result.returncode, 1)
        self.assertIn('the body file %s is not valid JSON' % path,
                      result.stderr)

    def test_broker_down_named_without_password(self):
        result = paster('publish', self.ini, 'audit', 'a.b', '{}')
        self.assertEqual(result.returncode, 1)
        self.assertIn('cannot connect to the broker at '
                      'amqp://guest:****@127.0.0.1:1//', result.stderr)
        self.assertNotIn('secret', result.stderr)
        self.assertNotIn('Traceback', result.stderr)

    def test_help_names_units_and_forms(self):
        result = paster('publish', '--help')
        self.assertEqual(result.returncode, 0)
        self.assertIn('--project-id=ID', result.stdout)
        self.assertIn('@FILE', result.stdout)
        self.assertIn('JSON Lines', result.stdout)


if __name__ == '__main__':
    unittest.main()

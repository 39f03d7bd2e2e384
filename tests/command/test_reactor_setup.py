import unittest

from pyforge.environment import configure
from pyforge.lib.publish import publish
from pyforge.lib.topology import inspect_queue
from tests.rabbit import RabbitTestCase
from tests.support import TempDirTestCase, paster

EXAMPLE_QUEUES = {
    'audit.hello_forge.auditor': ('audit', 'hello_forge.#'),
    'audit.hello_forge.count_messages': ('audit', 'hello_forge.#'),
    'react.wiki.count_events': ('react', '#'),
    'react.wiki.on_comment': ('react', 'hello_forge.commented'),
}


class SetupCommandMixin:

    def amqp_url(self):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.ini = self.write_ini(self.amqp_url(), mongo_url)

    def setup_rows(self):
        result = paster('reactor_setup', self.ini,
                        '--app', 'hello_forge', '--app', 'wiki')
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ['QUEUE', 'EXCHANGE', 'PATTERNS', 'LISTENER',
                          'STATE', 'MESSAGES'])
        return {line.split()[0]: line.split() for line in lines[1:]}

    def test_declares_queue_per_listener(self):
        rows = self.setup_rows()
        self.assertEqual(sorted(rows), sorted(EXAMPLE_QUEUES))
        for queue, (exchange, pattern) in EXAMPLE_QUEUES.items():
            with self.subTest(queue=queue):
                self.assertEqual(rows[queue][1:3], [exchange, pattern])
                self.assertEqual(rows[queue][4:], ['created', '0'])
        self.assertEqual(
            rows['audit.hello_forge.auditor'][3],
            'pyforge_examples.hello_forge:HelloForgeApp.auditor')

    def test_second_run_changes_nothing(self):
        first = self.setup_rows()
        second = self.setup_rows()
        self.assertEqual(sorted(second), sorted(first))
        for queue in first:
            with self.subTest(queue=queue):
                self.assertEqual(second[queue][:4], first[queue][:4])
                self.assertEqual(second[queue][4], 'exists')

    def test_waiting_messages_kept(self):
        self.setup_rows()
        environment = configure(self.ini)
        self.addCleanup(environment.close)
        publish('audit', 'hello_forge.comment',
                {'project_id': 'demo', 'mount_point': 'hello', 'text': 'x'})
        rows = self.setup_rows()
        self.assertEqual(rows['audit.hello_forge.auditor'][5], '1')
        with environment.connection() as connection:
            messages, _ = inspect_queue(connection,
                                        'audit.hello_forge.auditor')
        self.assertEqual(messages, 1)

    def test_bindings_not_doubled(self):
        self.setup_rows()
        self.setup_rows()
        environment = configure(self.ini)
        self.addCleanup(environment.close)
        publish('react', 'hello_forge.commented', {'project_id': 'demo'})
        with environment.connection() as connection:
            messages, _ = inspect_queue(connection, 'react.wiki.on_comment')
        self.assertEqual(messages, 1)

    def test_unknown_app_is_a_usage_error(self):
        result = paster('reactor_setup', self.ini, '--app', 'nope')
        self.assertEqual(result.returncode, 2)
        self.assertIn("no app is registered as 'nope'", result.stderr)
        self.assertEqual(result.stdout, '')


class FilesystemSetupTest(SetupCommandMixin, TempDirTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]


class RabbitSetupTest(SetupCommandMixin, TempDirTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url

    def test_queue_with_other_arguments_reported(self):
        import kombu
        queue = 'audit.hello_forge.auditor'
        with kombu.Connection(self.vhost.url) as connection:
            channel = connection.channel()
            kombu.Queue(queue, durable=True, queue_arguments={
                'x-dead-letter-exchange': 'elsewhere'})(channel).declare()
            kombu.Producer(channel).publish(
                b'{}', routing_key=queue, content_type='application/json')
        result = paster('reactor_setup', self.ini)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        self.assertIn('queue %s exists with other arguments' % queue,
                      result.stderr)
        self.assertIn('PRECONDITION_FAILED', result.stderr)
        self.assertIn('rabbitmqctl delete_queue -p VHOST %s' % queue,
                      result.stderr)
        rows = {line.split()[0]: line.split()
                for line in result.stdout.splitlines()[1:]}
        self.assertEqual(rows[queue][4:], ['differs', '1'])
        self.assertEqual(rows['react.wiki.on_comment'][4], 'created')
        with kombu.Connection(self.vhost.url) as connection:
            _, messages, _ = connection.channel().queue_declare(
                queue, passive=True)
        self.assertEqual(messages, 1)


class CommandUsageTest(TempDirTestCase):

    def test_missing_config_file_exits_2(self):
        result = paster('reactor_setup')
        self.assertEqual(result.returncode, 2)
        self.assertIn('at least 1 arguments', result.stderr)

    def test_config_file_not_found_exits_2(self):
        result = paster('reactor_setup', '/nonexistent/x.ini')
        self.assertEqual(result.returncode, 2)
        self.assertIn('config file /nonexistent/x.ini not found',
                      result.stderr)

    def test_unknown_setting_named(self):
        amqp_url, mongo_url = self.embedded_urls()
        ini = self.write_ini(amqp_url, mongo_url,
                             'reactor.max_attemps = 3\n')
        result = paster('reactor_setup', ini)
        self.assertEqual(result.returncode, 1)
        self.assertIn('unknown setting reactor.max_attemps', result.stderr)

    def test_invalid_setting_value_named(self):
        amqp_url, mongo_url = self.embedded_urls()
        ini = self.write_ini(amqp_url, mongo_url, 'reactor.prefetch = many\n')
        result = paster('reactor_setup', ini)
        self.assertEqual(result.returncode, 1)
        self.assertIn('reactor.prefetch = many is invalid', result.stderr)

    def test_zero_processes_rejected(self):
        amqp_url, mongo_url = self.embedded_urls()
        ini = self.write_ini(amqp_url, mongo_url)
        result = paster('reactor', ini, '--processes', '0')
        self.assertEqual(result.returncode, 2)
        self.assertIn('--processes must be 1 or more, not 0', result.stderr)

    def test_help_says_what_options_set(self):
        result = paster('reactor_setup', '--help')
        self.assertEqual(result.returncode, 0)
        self.assertIn('--app=NAME', result.stdout)


if __name__ == '__main__':
    unittest.main()

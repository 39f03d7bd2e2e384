import datetime
import unittest

from pyforge.lib import store
from pyforge.model import records
from tests.support import TempDirTestCase, paster


class PruneCommandTest(TempDirTestCase):

    def setUp(self):
        super().setUp()
        amqp_url, mongo_url = self.embedded_urls()
        self.ini = self.write_ini(amqp_url, mongo_url)
        self.db = store.connect(mongo_url)
        now = records.utcnow()
        ages = {'new-done': (1, 'done'), 'old-done': (10, 'done'),
                'old-dead': (10, 'dead'), 'old-failed': (10, 'failed'),
                'old-flushed': (10, 'flushed')}
        for name, (days, status) in ages.items():
            self.db[records.COLLECTION].insert_one({
                '_id': 'q/%s' % name, 'queue': 'q', 'status': status,
                'finished_at': now - datetime.timedelta(days=days)})

    def remaining(self):
        return sorted(record['_id'][2:] for record in
                      self.db[records.COLLECTION].find())

    def test_deletes_old_final_records_only(self):
        result = paster('reactor_prune', self.ini, '--older-than', '7')
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('deleted 2 record(s)', result.stdout)
        self.assertEqual(self.remaining(),
                         ['new-done', 'old-failed', 'old-flushed'])

    def test_status_option_narrows(self):
        result = paster('reactor_prune', self.ini, '--older-than', '7',
                        '--status', 'dead')
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('deleted 1 record(s)', result.stdout)
        self.assertIn('old-done', self.remaining())

    def test_zero_days_deletes_every_final_record(self):
        result = paster('reactor_prune', self.ini, '--older-than', '0')
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.remaining(), ['old-failed', 'old-flushed'])

    def test_usage_errors(self):
        cases = [
            ((), '--older-than DAYS is required'),
            (('--older-than', '-1'), 'must be 0 or more days'),
            (('--older-than', '7', '--status', 'failed'),
             '--status failed is not a final status'),
            (('--older-than', 'week'), "invalid floating-point value"),
        ]
        for arguments, expected in cases:
            with self.subTest(arguments=arguments):
                result = paster('reactor_prune', self.ini, *arguments)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(expected, result.stderr)
        self.assertEqual(len(self.remaining()), 5)


if __name__ == '__main__':
    unittest.main()

import io
import unittest

from pyforge.lib.progress import Progress


class TerminalStream(io.StringIO):

    def isatty(self):
        return True


class ProgressTest(unittest.TestCase):

    def test_running_count_on_terminal(self):
        stream = TerminalStream()
        progress = Progress('requeued', total=3, stream=stream, interval=0)
        for _ in range(3):
            progress.advance()
        progress.finish('requeued 3 dead letter(s)')
        text = stream.getvalue()
        self.assertIn('\rrequeued 1 of 3 ...', text)
        self.assertIn('\rrequeued 3 of 3 ...', text)
        self.assertTrue(text.endswith('\r\033[Krequeued 3 dead letter(s)\n'))

    def test_updates_wait_for_interval(self):
        stream = TerminalStream()
        progress = Progress('published', stream=stream, interval=3600)
        for _ in range(5):
            progress.advance()
        self.assertEqual(stream.getvalue().count('\r'), 1)
        self.assertEqual(progress.count, 5)

    def test_only_final_line_elsewhere(self):
        stream = io.StringIO()
        progress = Progress('published', stream=stream, interval=0)
        progress.advance(2)
        progress.finish('published 2 message(s)')
        self.assertEqual(stream.getvalue(), 'published 2 message(s)\n')


if __name__ == '__main__':
    unittest.main()

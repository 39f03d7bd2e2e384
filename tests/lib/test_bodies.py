import io
import os
import unittest

from pyforge.lib.bodies import (
    BodyError, parse_body, read_body_file, read_body_lines)
from tests.support import TempDirTestCase


class ParseBodyTest(unittest.TestCase):

    def test_object_returned(self):
        self.assertEqual(parse_body('{"a": [1, null]}', 'BODY'),
                         {'a': [1, None]})

    def test_errors_name_source_and_type(self):
        cases = [
            ('{"a": 1', 'BODY is not valid JSON'),
            ('', 'BODY is not valid JSON'),
            ('[1]', 'BODY is a JSON array, not an object'),
            ('"x"', 'BODY is a JSON string'),
            ('3', 'BODY is a JSON number'),
            ('true', 'BODY is a JSON boolean'),
            ('null', 'BODY is a JSON null'),
            ('{"a": NaN}', 'NaN is not valid JSON'),
            ('{"a": Infinity}', 'Infinity is not valid JSON'),
        ]
        for text, expected in cases:
            with self.subTest(text=text):
                with self.assertRaises(BodyError) as caught:
                    parse_body(text, 'BODY')
                self.assertIn(expected, str(caught.exception))

    def test_long_value_shortened(self):
        with self.assertRaises(BodyError) as caught:
            parse_body('[' + '1,' * 500 + '1]', 'BODY')
        self.assertIn('... (1003 characters)', str(caught.exception))


class ReadBodyLinesTest(unittest.TestCase):

    def test_blank_lines_skipped_but_counted(self):
        stream = io.BytesIO(b'{"a": 1}\n\n  \r\n{"b": 2}\r\n')
        self.assertEqual(list(read_body_lines(stream)),
                         [(1, {'a': 1}), (4, {'b': 2})])

    def test_first_bad_line_stops_after_earlier_ones(self):
        lines = read_body_lines(io.BytesIO(b'{"a": 1}\n{oops\n{"c": 3}\n'))
        self.assertEqual(next(lines), (1, {'a': 1}))
        with self.assertRaises(BodyError) as caught:
            next(lines)
        self.assertEqual(caught.exception.line_number, 2)
        self.assertIn("line 2 of stdin is not valid JSON", str(
            caught.exception))
        self.assertIn("'{oops'", str(caught.exception))

    def test_invalid_utf8_named(self):
        with self.assertRaises(BodyError) as caught:
            list(read_body_lines(io.BytesIO(b'{"a": "\xff"}\n')))
        self.assertIn('line 1 of stdin is not valid UTF-8',
                      str(caught.exception))


class ReadBodyFileTest(TempDirTestCase):

    def test_pretty_printed_object(self):
        path = os.path.join(self.tmp, 'body.json')
        with open(path, 'w') as body_file:
            body_file.write('{\n  "a": 1\n}\n')
        self.assertEqual(read_body_file(path), {'a': 1})

    def test_missing_file_named(self):
        path = os.path.join(self.tmp, 'missing.json')
        with self.assertRaises(BodyError) as caught:
            read_body_file(path)
        self.assertIn('cannot read the body file %s' % path,
                      str(caught.exception))

    def test_two_objects_rejected(self):
        path = os.path.join(self.tmp, 'two.json')
        with open(path, 'w') as body_file:
            body_file.write('{"a": 1}\n{"b": 2}\n')
        with self.assertRaises(BodyError) as caught:
            read_body_file(path)
        self.assertIn('Extra data', str(caught.exception))


if __name__ == '__main__':
    unittest.main()

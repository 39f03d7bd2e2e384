"""Message bodies read from the command line, a file or a stream.

A body is a JSON object, as the workers accept it: UTF-8, no NaN or
Infinity, and an object at the top. Errors name where the body came from
(the argument, the file, or a line of the stream) and show a short, safe
preview of the text.
"""

import json

from pyforge.exceptions import PyforgeError
from pyforge.lib.message import preview, reject_constant


class BodyError(PyforgeError):
    """A body is not a JSON object, or could not be read."""

    def __init__(self, text, line_number=None):
        super().__init__(text)
        #: Line of the stream the error is on, or None for a whole body.
        self.line_number = line_number


def parse_body(text, source):
    """Return the JSON object in `text`; raise :class:`BodyError` naming
    `source` (e.g. ``'BODY'`` or ``'line 3'``) when it is not one."""
    try:
        data = json.loads(text, parse_constant=reject_constant)
    except ValueError as exc:
        raise BodyError('%s is not valid JSON (%s): %s'
                        % (source, exc, preview(text))) from None
    except RecursionError:
        raise BodyError('%s is JSON nested too deeply to read: %s'
                        % (source, preview(text))) from None
    if not isinstance(data, dict):
        raise BodyError(
            '%s is a JSON %s, not an object: %s; write an object such as '
            '{"project_id": "demo", ...}'
            % (source, _json_type(data), preview(text)))
    return data


def read_body_file(path):
    """Return the one JSON object that the file at `path` contains."""
    try:
        with open(path, 'rb') as body_file:
            raw = body_file.read()
    except OSError as exc:
        raise BodyError('cannot read the body file %s: %s; check the path '
                        'after "@"' % (path, exc.strerror or exc)) from None
    source = 'the body file %s' % path
    try:
        return parse_body(_decode(raw, source), source)
    except BodyError as exc:
        if 'Extra data' not in str(exc):
            raise
        raise BodyError(
            '%s; @FILE holds one JSON object, and a file of one object per '
            'line is read from stdin: paster publish CONFIG EXCHANGE '
            'ROUTING_KEY - < %s' % (exc, path)) from None


def read_body_lines(stream, source='stdin'):
    """Yield ``(line number, object)`` for each line of a binary stream.

    Blank lines are skipped but counted, so that the numbers match what
    an editor shows. The first invalid line raises :class:`BodyError`
    with its number; the lines before it have been yielded already.
    """
    for line_number, raw in enumerate(stream, start=1):
        where = 'line %d of %s' % (line_number, source)
        try:
            text = _decode(raw, where).rstrip('\r\n')
            if not text.strip():
                continue
            yield line_number, parse_body(text, where)
        except BodyError as exc:
            raise BodyError(str(exc), line_number) from None


def _decode(raw, source):
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise BodyError('%s is not valid UTF-8 (%s); bodies are JSON in '
                        'UTF-8' % (source, exc)) from None


def _json_type(value):
    if isinstance(value, list):
        return 'array'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, bool):
        return 'boolean'
    if value is None:
        return 'null'
    return 'number'

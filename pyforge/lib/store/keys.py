"""Canonical byte encoding of BSON values for primary keys and indexes.

Two values get the same encoding exactly when MongoDB's query language
treats them as equal: 1, 1.0, Int64(1) and Decimal128('1') share one
encoding, '1' and True do not, and documents compare field by field in
order. Every encoding is self-delimiting, so no encoding is a proper
prefix of another and the encoding of a compound index key starts with
the encoding of its first field. That lets the store look up an index
prefix as the byte range [prefix, prefix + b'\\xff').

The encoding is for equality only: its byte order is not MongoDB's
sort order.
"""

import datetime
import decimal
import fractions
import math
import struct

import bson
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

# Type tags, numbered in MongoDB's comparison order of BSON types.
MIN_KEY = 0x01
NULL = 0x02
NUMBER = 0x03
STRING = 0x04
DOCUMENT = 0x05
ARRAY = 0x06
BINARY = 0x07
OBJECT_ID = 0x08
BOOLEAN = 0x09
DATETIME = 0x0A
TIMESTAMP = 0x0B
REGEX = 0x0C
MAX_KEY = 0x0D
CODE = 0x0E
# Any other type, encoded as its BSON bytes. Tags stay below 0xFF, which
# closes the prefix range of a compound index key.
OTHER = 0xFE

ITEM = b'\x01'
END = b'\x00'
PREFIX_END = b'\xff'

_EPOCH = datetime.datetime(1970, 1, 1)
_LENGTH = struct.Struct('>I')
_MILLISECONDS = struct.Struct('>q')


def encode_key(value):
    """Encode one BSON value so that equal values give equal bytes."""
    parts = []
    _encode(value, parts)
    return b''.join(parts)


def encode_compound_key(values):
    """Encode the values of a compound index key, in index field order."""
    parts = []
    for value in values:
        _encode(value, parts)
    return b''.join(parts)


def prefix_range(prefix):
    """Return the (low, high) byte bounds of every key starting with
    prefix, high excluded."""
    return prefix, prefix + PREFIX_END


def canonical_number(value):
    """Return the text form shared by every number equal to value.

    Finite numbers become an exact fraction, so the double 0.1 and
    Decimal128('0.1') stay different, as in MongoDB.
    """
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, int):
        return '%d' % value
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return 'nan'
        if value.is_infinite():
            return '-inf' if value < 0 else 'inf'
    elif math.isnan(value):
        return 'nan'
    elif math.isinf(value):
        return '-inf' if value < 0 else 'inf'
    elif value.is_integer():
        return '%d' % int(value)
    fraction = fractions.Fraction(value)
    if fraction.denominator == 1:
        return '%d' % fraction.numerator
    return '%d/%d' % (fraction.numerator, fraction.denominator)


def datetime_to_milliseconds(value):
    """Return milliseconds since the Unix epoch, as BSON stores a date.

    A naive datetime is taken as UTC, like bson.encode does.
    """
    if isinstance(value, DatetimeMS):
        return int(value)
    if value.tzinfo is not None:
        offset = value.utcoffset()
        value = value.replace(tzinfo=None) - offset
    return (value - _EPOCH) // datetime.timedelta(milliseconds=1)


def _encode_text(text, parts):
    data = text.encode('utf-8', 'surrogatepass')
    parts.append(_LENGTH.pack(len(data)))
    parts.append(data)


def _encode(value, parts):
    # bool before int, because bool is a subclass of int in Python.
    if value is None:
        parts.append(bytes((NULL,)))
    elif value is True or value is False:
        parts.append(bytes((BOOLEAN, value)))
    elif isinstance(value, Code):
        # Code subclasses str, so it is tested before str.
        parts.append(bytes((CODE,)))
        _encode_text(str(value), parts)
        _encode(value.scope, parts)
    elif isinstance(value, str):
        parts.append(bytes((STRING,)))
        _encode_text(value, parts)
    elif isinstance(value, (int, float, Decimal128)):
        parts.append(bytes((NUMBER,)))
        _encode_text(canonical_number(value), parts)
    elif isinstance(value, dict):
        parts.append(bytes((DOCUMENT,)))
        for name, item in value.items():
            parts.append(ITEM)
            _encode_text(name, parts)
            _encode(item, parts)
        parts.append(END)
    elif isinstance(value, (list, tuple)):
        parts.append(bytes((ARRAY,)))
        for item in value:
            parts.append(ITEM)
            _encode(item, parts)
        parts.append(END)
    elif isinstance(value, ObjectId):
        parts.append(bytes((OBJECT_ID,)))
        parts.append(value.binary)
    elif isinstance(value, (datetime.datetime, DatetimeMS)):
        parts.append(bytes((DATETIME,)))
        parts.append(_MILLISECONDS.pack(datetime_to_milliseconds(value)))
    elif isinstance(value, bytes):
        # Binary is a bytes subclass; plain bytes are BSON subtype 0.
        subtype = value.subtype if isinstance(value, Binary) else 0
        parts.append(bytes((BINARY, subtype)))
        parts.append(_LENGTH.pack(len(value)))
        parts.append(bytes(value))
    elif isinstance(value, Timestamp):
        parts.append(bytes((TIMESTAMP,)))
        parts.append(_LENGTH.pack(value.time) + _LENGTH.pack(value.inc))
    elif isinstance(value, Regex):
        parts.append(bytes((REGEX,)))
        _encode_text(value.pattern, parts)
        _encode_text(str(value.flags), parts)
    elif isinstance(value, MinKey):
        parts.append(bytes((MIN_KEY,)))
    elif isinstance(value, MaxKey):
        parts.append(bytes((MAX_KEY,)))
    else:
        data = bson.encode({'v': value})
        parts.append(bytes((OTHER,)))
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)

"""BSON documents: normalization, validation and type names.

Everything the store keeps or compares passes through bson.encode and
bson.decode, so that types and their limits are MongoDB's. Datetimes
keep millisecond precision and tuples become arrays. Sets and other
non-BSON types raise InvalidDocument, and integers wider than 64 bits
raise OverflowError.
"""

import datetime

import bson
from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from pymongo.errors import DocumentTooLarge, WriteError

# MongoDB's maximum BSON document size, in bytes.
MAX_BSON_SIZE = 16 * 1024 * 1024
BAD_VALUE = 2
INVALID_ID_FIELD = 53


def normalize(document):
    """Return document as MongoDB would receive it: decoded BSON types."""
    return bson.decode(bson.encode(document))


def encode_document(document):
    """Validate a document to store and return its BSON bytes.

    Raises InvalidDocument for a field name that starts with '$',
    WriteError for an invalid _id and DocumentTooLarge past 16 MiB.
    """
    _reject_dollar_names(document)
    validate_id(document.get('_id'))
    data = bson.encode(document)
    if len(data) > MAX_BSON_SIZE:
        raise DocumentTooLarge(
            'document with _id %r is %d bytes; the maximum BSON document '
            'size is %d bytes' % (document.get('_id'), len(data),
                                  MAX_BSON_SIZE))
    return data


def decode_document(data):
    """Decode stored BSON bytes into a new dict."""
    return bson.decode(data)


def write_error(message, code):
    """Return a WriteError shaped like the server's for one operation."""
    return WriteError(
        message, code, {'index': 0, 'code': code, 'errmsg': message})


def validate_id(value):
    """Raise WriteError when value cannot be a document's _id."""
    if isinstance(value, list):
        raise write_error(
            "The '_id' value cannot be of type array: %r" % (value,),
            INVALID_ID_FIELD)
    if isinstance(value, Regex):
        raise write_error(
            "can't use a regex for _id: %r" % (value,), INVALID_ID_FIELD)


def _reject_dollar_names(document):
    for name, value in document.items():
        if name.startswith('$'):
            raise InvalidDocument(
                'field name %r starts with "$", which this store does not '
                'allow in a stored document; rename the field' % name)
        if isinstance(value, dict):
            _reject_dollar_names(value)
        elif isinstance(value, list):
            _reject_dollar_names_in_array(value)


def _reject_dollar_names_in_array(values):
    for value in values:
        if isinstance(value, dict):
            _reject_dollar_names(value)
        elif isinstance(value, list):
            _reject_dollar_names_in_array(value)


def is_number(value):
    """Return whether value is a BSON number (bool is not one)."""
    if value is True or value is False:
        return False
    return isinstance(value, (int, float, Decimal128))


def bson_type_name(value):
    """Return MongoDB's name for value's BSON type, as in its errors."""
    if value is None:
        return 'null'
    if value is True or value is False:
        return 'bool'
    if isinstance(value, Int64):
        return 'long'
    if isinstance(value, int):
        return 'int' if -2 ** 31 <= value < 2 ** 31 else 'long'
    for python_type, name in _TYPE_NAMES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


# Code before str, because Code subclasses str.
_TYPE_NAMES = (
    (float, 'double'),
    (Decimal128, 'decimal'),
    (Code, 'javascript'),
    (str, 'string'),
    (dict, 'object'),
    (list, 'array'),
    (bytes, 'binData'),
    (Binary, 'binData'),
    (ObjectId, 'objectId'),
    (datetime.datetime, 'date'),
    (Timestamp, 'timestamp'),
    (Regex, 'regex'),
)

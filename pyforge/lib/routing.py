"""Topic routing as RabbitMQ does it, and checks of keys and patterns.

RabbitMQ splits a routing key and a binding pattern into words at each
``.``; ``*`` matches exactly one word and ``#`` matches zero or more. The
empty key has no words, and empty words count (``a.`` is ``a`` and
``''``). kombu's virtual transports use a regular expression under which
``a.#`` does not match ``a``, so pyforge routes with this module there.
"""

import functools

from pyforge.exceptions import ConfigurationError

#: The two topic exchanges listeners bind to: ``audit`` carries requests
#: to one app instance, ``react`` news about a project.
AUDIT = 'audit'
REACT = 'react'
EXCHANGES = (AUDIT, REACT)

#: AMQP 0-9-1 limits routing keys and binding keys to a short string.
MAX_KEY_BYTES = 255


def split_words(key):
    """Split a routing key or pattern into words, as RabbitMQ does."""
    if key == '':
        return ()
    return tuple(key.split('.'))


@functools.lru_cache(maxsize=4096)
def _pattern_words(pattern):
    return split_words(pattern)


def topic_matches(pattern, routing_key):
    """Return True when `routing_key` matches the binding `pattern`."""
    pattern_words = _pattern_words(pattern)
    key_words = split_words(routing_key)
    return _match_words(pattern_words, key_words)


def _match_words(pattern_words, key_words):
    # reachable[j] is True when the pattern words seen so far can consume
    # exactly the first j key words; '#' may consume any number of them.
    reachable = [True] + [False] * len(key_words)
    for word in pattern_words:
        if word == '#':
            for j in range(1, len(reachable)):
                reachable[j] = reachable[j] or reachable[j - 1]
            continue
        following = [False] * len(reachable)
        for j, key_word in enumerate(key_words):
            if reachable[j] and (word == '*' or word == key_word):
                following[j + 1] = True
        reachable = following
    return reachable[-1]


def check_pattern(pattern):
    """Return `pattern` if it is a valid binding pattern, else raise.

    pyforge is stricter than RabbitMQ, which takes ``a#`` as a literal
    word: a wildcard mixed into a word is almost always a typo.
    """
    if not isinstance(pattern, str):
        raise ConfigurationError(
            'routing pattern %r is not a string; write it as in '
            "@audit('wiki.#')" % (pattern,))
    _check_length('routing pattern', pattern)
    _check_words('routing pattern', pattern)
    for word in split_words(pattern):
        if word in ('#', '*'):
            continue
        if '#' in word or '*' in word:
            raise ConfigurationError(
                'routing pattern %r has the word %r: a wildcard must be a '
                "whole word between dots, e.g. 'wiki.#' or 'wiki.*.edit'"
                % (pattern, word))
    return pattern


def check_routing_key(routing_key):
    """Return `routing_key` if messages may be published with it."""
    if not isinstance(routing_key, str):
        raise ConfigurationError(
            'routing key %r is not a string; use words separated by '
            "dots, e.g. 'wiki.page_edited'" % (routing_key,))
    _check_length('routing key', routing_key)
    _check_words('routing key', routing_key)
    if '#' in routing_key or '*' in routing_key:
        raise ConfigurationError(
            'routing key %r contains a wildcard; wildcards belong in '
            'listener patterns, a published key names one topic, e.g. '
            "'wiki.page_edited'" % routing_key)
    return routing_key


def _check_words(what, value):
    # RabbitMQ takes empty words, but 'wiki..edit' is a typo far more
    # often than a topic.
    if '' in split_words(value):
        raise ConfigurationError(
            'the %s %r has an empty word (a dot at an end, or two in a '
            'row); write words separated by single dots, e.g. '
            "'wiki.page_edited'" % (what, value))


def _check_length(what, value):
    if value == '':
        raise ConfigurationError(
            'the %s is empty; give at least one word, e.g. '
            "'wiki.page_edited'" % what)
    size = len(value.encode('utf-8'))
    if size > MAX_KEY_BYTES:
        raise ConfigurationError(
            'the %s %r... is %d bytes long; AMQP allows at most %d'
            % (what, value[:40], size, MAX_KEY_BYTES))

"""The exceptions pyforge raises, under one root class."""


class PyforgeError(Exception):
    """Root of every error pyforge raises on purpose."""


class ConfigurationError(PyforgeError):
    """A setting, an entry point or a listener declaration is invalid."""


class MessageError(PyforgeError):
    """A message can never be handled: bad body, project or mount point.

    The worker dead-letters such a message at once instead of retrying it.
    """

    #: Short, stable code stored with the dead letter, e.g. ``invalid-json``.
    reason = 'invalid-message'

    def __init__(self, text, reason=None):
        super().__init__(text)
        if reason is not None:
            self.reason = reason


class DispatchError(PyforgeError):
    """A listener could not be called or its changes not persisted."""


class PublishError(PyforgeError):
    """A message could not be published; it was not sent."""


class BrokerError(PyforgeError):
    """The broker could not be reached, or the connection to it dropped."""

"""pyforge: event listeners for forge apps over a message bus."""

__version__ = '0.1.0'

"""Example apps for the pyforge message bus."""

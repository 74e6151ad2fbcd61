"""The channel simulators the campaign tests send through (the same fixtures the channel tests use)."""

from tests.channels.conftest import fake, smtp  # noqa: F401

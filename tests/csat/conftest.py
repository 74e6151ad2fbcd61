"""The channel simulators the survey tests send through (the same fixtures the channel tests use)."""

from tests.channels.conftest import fake, smtp  # noqa: F401

"""Hypothesis profiles for the whole suite.

``RAFTSIM_HYPOTHESIS_PROFILE=thorough`` runs the property tests with many
more examples and fresh randomness each run (for long runs; see the README);
the default ``ci`` profile is derandomized, so a CI failure replays locally.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "RAFTSIM_HYPOTHESIS_PROFILE"

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def profile() -> str:
    """The active profile's name (``ci`` unless the environment says otherwise)."""
    name = os.environ.get(PROFILE_VARIABLE, "ci")
    if name not in ("ci", "thorough"):
        raise ValueError(f"{PROFILE_VARIABLE} must be ci or thorough, got {name!r}")
    return name


settings.load_profile(profile())

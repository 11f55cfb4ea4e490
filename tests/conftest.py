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

#: How much more the thorough profile asks of a test that sets its own max_examples.
THOROUGH_FACTOR = 10


def pytest_collection_modifyitems(items) -> None:
    """Under the thorough profile, raise the example counts of tests that set their own.

    A test's own ``@settings(max_examples=...)`` beats the loaded profile, so
    without this the thorough profile would leave exactly the tests that
    chose a count (the expensive, important ones) at their CI size.
    """
    if profile() != "thorough":
        return
    thorough = settings.get_profile("thorough")
    for item in items:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is not None and getattr(test, "hypothesis", None) is not None:
            test._hypothesis_internal_use_settings = _raised(own, thorough)
        case = getattr(item, "cls", None)
        if case is not None and isinstance(getattr(case, "settings", None), settings):
            case.settings = _raised(case.settings, thorough)


def _raised(own: settings, thorough: settings) -> settings:
    examples = max(thorough.max_examples, THOROUGH_FACTOR * own.max_examples)
    return settings(own, max_examples=examples, deadline=None,
                    suppress_health_check=[*own.suppress_health_check, HealthCheck.too_slow])

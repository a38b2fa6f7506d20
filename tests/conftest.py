"""Test-session hooks: the longest interpreter children (test modules with ``START_EARLY = True``, whose module fixture
runs the module itself as a script under TRITON_INTERPRET=1) start when collection ends, so that on a 2-core machine
they run beside the rest of the suite (`interpreted.start_early`); only for modules with a selected test."""

import interpreted


def pytest_collection_finish(session):
    seen = set()
    for item in session.items:
        mod = getattr(item, "module", None)
        if mod is not None and getattr(mod, "START_EARLY", False) and mod.__file__ not in seen:
            seen.add(mod.__file__)
            interpreted.start_early(mod.__file__)


def pytest_sessionfinish(session, exitstatus):
    interpreted.stop_early()

"""Property search over your own state machine: a counter whose restore forgets a field.

``python -m pytest examples/test_own_counter.py`` (raftsim's pytest plugin gives
the ``raftsim_search`` fixture) fails, naming what broke, and leaves the
smallest failing fault program as a scenario file that imports
``test_own_counter.Counter``; the failure says how to replay it
(``PYTHONPATH=examples raftsim run raftsim-failures/<test>.py``).
"""

import json

from hypothesis import strategies as st

from simulator import SearchSpace


class Counter:
    def __init__(self):
        self.applied_index, self.total, self.adds = 0, 0, 0

    def apply(self, index, command):
        self.applied_index = index
        self.total, self.adds = self.total + int(command.split()[1]), self.adds + 1
        return str(self.total)

    def snapshot_chunks(self, index):
        yield json.dumps([index, self.total, self.adds]).encode()

    def restore_from_snapshot(self, chunks):
        self.applied_index, self.total, _ = json.loads(b"".join(chunks))  # bug: adds is lost

    def digest(self):
        return f"{self.total}/{self.adds}"


COMMANDS = st.integers(1, 9).map(lambda n: b"add %d" % n)


def test_the_counter_survives_faults(raftsim_search):
    raftsim_search(SearchSpace(state_machine=Counter, commands=COMMANDS, max_steps=6), max_examples=60)

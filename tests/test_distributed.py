"""Leaving the process group: all ranks meet at a barrier before a normal teardown; an error skips both; a
finished rank exits without Python's finalisers."""
import os
import subprocess
import sys

import pytest

from sciffusion.training import distributed


def record_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(distributed, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed, "teardown", lambda: calls.append("teardown"))
    return calls


def test_a_normal_end_waits_for_every_rank_then_leaves_the_group(monkeypatch):
    calls = record_calls(monkeypatch)
    with distributed.process_group_closed_at_end():
        calls.append("work")
    assert calls == ["work", "barrier", "teardown"]


def test_an_error_neither_waits_for_the_other_ranks_nor_tears_down(monkeypatch):
    calls = record_calls(monkeypatch)
    with pytest.raises(ValueError, match="bad"):
        with distributed.process_group_closed_at_end():
            raise ValueError("bad")
    assert calls == []


def test_outside_torchrun_the_end_is_a_no_op():
    with distributed.process_group_closed_at_end():
        pass
    assert distributed.world() == (0, 1)


END_A_RANK = """
import atexit
from sciffusion.training import distributed
atexit.register(print, "finalisers ran")
print("work done", end="")  # still in the buffer: a pipe is block-buffered
distributed.end_finished_rank()
print(" and returned", end="")
"""


@pytest.mark.parametrize("world_size, expected", [("2", "work done"), ("1", "work done and returnedfinalisers ran\n")])
def test_a_finished_rank_exits_without_finalisers_and_loses_no_output(world_size, expected):
    env = {**os.environ, "WORLD_SIZE": world_size}
    done = subprocess.run([sys.executable, "-c", END_A_RANK], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected

"""Test-wide settings.

Tests run in parallel workers (pytest-xdist) on small machines; one intra-op thread per worker
avoids oversubscribing the cores, which made the suite several times slower.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by subprocesses the tests start

import torch  # noqa: E402

torch.set_num_threads(1)

"""Session-wide test setup, and the fixtures several test files share.

Without a GPU, Triton kernels run under Triton's interpreter, which must be chosen before triton is
first imported (it decorates its own library on import); some modules import triton indirectly
(torch.utils.flop_counter), so the choice is made here, before any test module is collected.
"""

import pytest

from kernels.runtime import use_interpreter_without_gpu

use_interpreter_without_gpu()


@pytest.fixture
def store(tmp_path):
    """A fresh experience database and archive in ``tmp_path``, and the recording service over them."""
    from memory import DesignArchive, ExperienceDB
    from memory.recorder import Recorder

    with ExperienceDB(tmp_path / "experience.db") as db, DesignArchive(tmp_path / "archive") as archive:
        yield db, Recorder(db.records, archive)


@pytest.fixture
def one_thread():
    """Tiny ops on a shared machine: extra threads only add contention (``usefixtures`` in the kernel tests)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

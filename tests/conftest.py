import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests share a 2-core machine: one torch thread keeps them predictable."""
    import torch

    torch.set_num_threads(1)
    yield

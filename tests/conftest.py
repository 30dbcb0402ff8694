import os

import pytest

# Tests never reach the Hugging Face Hub: CI has no access to it, and a developer's machine
# that has it should still test the offline path the project promises.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty qeu cache, so provisioning runs from scratch."""
    cache = tmp_path / "qeu-cache"
    monkeypatch.setenv("QEU_CACHE", str(cache))
    return cache

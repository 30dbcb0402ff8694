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


@pytest.fixture
def fake_hub(monkeypatch):
    """``huggingface_hub.HfApi`` replaced by a recorder, and a token in ``HF_TOKEN``: what a
    push would send, without a network. Returns the recorded calls."""
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create"] = (repo_id, kwargs)

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    return calls

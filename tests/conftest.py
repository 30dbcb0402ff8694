import os

import pytest
from hypothesis import HealthCheck, settings

# Tests never reach the Hugging Face Hub: CI has no access to it, and a developer's machine
# that has it should still test the offline path the project promises.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property tests: a quick look while editing (`make check`), a thorough one in `make test`
# (what CI runs), which sets HYPOTHESIS_PROFILE=ci.
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """A qeu cache for the whole session with tiny-random built in it once (building it
    trains a tokenizer); tests that must provision from nothing use ``tmp_cache``."""
    from qeu_utils.model.models import resolve_model

    cache = tmp_path_factory.mktemp("qeu-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QEU_CACHE", str(cache))
        resolve_model("tiny-random")
    return cache


@pytest.fixture(scope="session")
def tiny(tiny_cache):
    """tiny-random loaded once for the session, for tests that only run it. A test that
    changes the model (adds LoRA layers, trains it) loads its own."""
    from qeu_utils.model.models import load_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QEU_CACHE", str(tiny_cache))
        return load_model("tiny-random", device="cpu")


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

import argparse

import pytest

from ocrserve.settings import Settings, add_settings_flags, apply_flags, settings_from_env


def test_env_values_are_converted_and_lists_split():
    settings = settings_from_env(
        {"OCRSERVE_PORT": "9000", "OCRSERVE_API_KEYS": "a, b", "OCRSERVE_URL_ALLOW_PRIVATE": "true", "OTHER": "x"}
    )
    assert settings.port == 9000 and settings.api_keys == ("a", "b") and settings.url_allow_private is True
    assert settings.embedded and settings.model_name == Settings().model


def test_flags_override_env_and_bad_values_fail_clearly():
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    args = parser.parse_args(["--port", "7000", "--served-model-name", "ocr"])
    settings = apply_flags(settings_from_env({"OCRSERVE_PORT": "9000"}), args)
    assert settings.port == 7000 and settings.model_name == "ocr"
    with pytest.raises(SystemExit, match="invalid setting"):
        settings_from_env({"OCRSERVE_MAX_NUM_SEQS": "many"})
    with pytest.raises(SystemExit, match=r"OCRSERVE_BATCH_SIZE is gone.*OCRSERVE_MAX_NUM_SEQS"):
        settings_from_env({"OCRSERVE_BATCH_SIZE": "4"})
    assert settings.document_limits.max_pages == Settings().max_pages


@pytest.mark.parametrize(("interval", "timeout"), [("0", "30"), ("15", "30")])
def test_a_worker_refuses_heartbeats_too_sparse_for_its_timeout(interval, timeout, monkeypatch):
    from ocrserve.cli import main

    monkeypatch.delenv("OCRSERVE_REDIS_URL", raising=False)
    argv = ["worker", "--redis-url", "redis://127.0.0.1:1/0", "--heartbeat-interval", interval]
    with pytest.raises(SystemExit, match="OCRSERVE_HEARTBEAT_INTERVAL must be above 0 and at most a third"):
        main([*argv, "--worker-timeout", timeout])

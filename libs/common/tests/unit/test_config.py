"""Settings from the environment: the contract's names and defaults (CONTRACT section 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lms_common.config import Settings


@pytest.fixture()
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_amqp_url_defaults_to_local_rabbitmq() -> None:
    assert Settings.from_env("catalog", env={}).amqp_url == "amqp://guest:guest@127.0.0.1:5672/%2F"


def test_issuer_defaults_to_identity_on_port_8001() -> None:
    settings = Settings.from_env("catalog", env={})
    assert settings.issuer == "http://127.0.0.1:8001"
    assert settings.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"


def test_database_url_defaults_to_a_sqlite_file_under_var(in_empty_dir: Path) -> None:
    settings = Settings.from_env("enrollment", env={})
    assert settings.database_url == f"sqlite:///{in_empty_dir / 'var' / 'enrollment.sqlite3'}"


def test_var_dir_can_be_moved(tmp_path: Path) -> None:
    settings = Settings.from_env("enrollment", env={"LMS_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'enrollment.sqlite3'}"


def test_api_port_defaults_to_the_contract_port() -> None:
    ports = {name: Settings.from_env(name, env={}).api_port for name in ("identity", "catalog", "reporting")}
    assert ports == {"identity": 8001, "catalog": 8002, "reporting": 8005}


def test_variables_override_the_defaults() -> None:
    env = {
        "LMS_AMQP_URL": "amqp://u:p@broker:5672/lms",
        "LMS_CATALOG_DATABASE_URL": "postgresql://db/catalog",
        "LMS_ISSUER": "https://id.example.com/",
        "LMS_MAX_BODY_BYTES": "2048",
        "LMS_CONSUMER_RETRY_BASE_SECONDS": "0.25",
    }
    settings = Settings.from_env("catalog", env=env)
    assert settings.amqp_url == "amqp://u:p@broker:5672/lms"
    assert settings.database_url == "postgresql://db/catalog"
    assert settings.issuer == "https://id.example.com"
    assert settings.jwks_url == "https://id.example.com/.well-known/jwks.json"
    assert settings.max_body_bytes == 2048
    assert settings.consumer_retry_base_seconds == 0.25


def test_database_variable_of_another_service_is_ignored(in_empty_dir: Path) -> None:
    settings = Settings.from_env("catalog", env={"LMS_ENROLLMENT_DATABASE_URL": "postgresql://db/enrollment"})
    assert settings.database_url.startswith("sqlite:///")


def test_empty_variable_means_the_default() -> None:
    assert Settings.from_env("catalog", env={"LMS_MAX_BODY_BYTES": ""}).max_body_bytes == 1024 * 1024


def test_bad_integer_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match=r"LMS_MAX_BODY_BYTES must be an integer, got 'lots'"):
        Settings.from_env("catalog", env={"LMS_MAX_BODY_BYTES": "lots"})


def test_bad_number_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match=r"LMS_RELAY_POLL_SECONDS must be a number, got 'soon'"):
        Settings.from_env("catalog", env={"LMS_RELAY_POLL_SECONDS": "soon"})


def test_queue_names_follow_the_service_name() -> None:
    settings = Settings.from_env("enrollment", env={"LMS_QUEUE_PREFIX": "t1."})
    assert (settings.queue, settings.dead_letter_queue) == ("t1.enrollment", "t1.enrollment.dead")
    assert settings.dead_letter_exchange == "lms.events.dead"


def test_a_service_may_have_its_own_broker_user() -> None:
    env = {
        "LMS_AMQP_URL": "amqp://shared:p@broker/lms",
        "LMS_ENROLLMENT_AMQP_URL": "amqp://lms-enrollment:s@broker/lms",
    }
    assert Settings.from_env("enrollment", env=env).amqp_url == "amqp://lms-enrollment:s@broker/lms"
    assert Settings.from_env("catalog", env=env).amqp_url == "amqp://shared:p@broker/lms"


def test_only_reporting_lingers_for_a_batch_unless_told_otherwise() -> None:
    assert Settings.from_env("reporting", {}).consumer_linger_seconds == 0.05
    assert Settings.from_env("enrollment", {}).consumer_linger_seconds == 0.0
    assert Settings.from_env("reporting", {"LMS_CONSUMER_LINGER_SECONDS": "0"}).consumer_linger_seconds == 0.0
    assert Settings.from_env("identity", {"LMS_CONSUMER_LINGER_SECONDS": "0.2"}).consumer_linger_seconds == 0.2

"""Where Client() finds its server and token: arguments, then PIE_URL / PIE_TOKEN, then the
profile (named, PIE_PROFILE, or the current one) of a config file only its owner can read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pie_client import Client
from pie_client.config import config_path, resolve, save_profile


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PIE_URL", "PIE_TOKEN", "PIE_PROFILE", "PIE_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "pie" / "config.json"


def test_profiles_are_saved_for_the_owner_only(config: Path) -> None:
    assert config_path() == config
    save_profile("default", "http://a.example/", "t1")
    save_profile("other", "http://b.example", "t2")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert not list(config.parent.glob("*.tmp"))
    assert resolve() == resolve(profile="other")  # the last saved is the current one
    assert resolve(profile="default").url == "http://a.example"


def test_arguments_then_environment_then_profile(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_profile("default", "http://profile.example", "profile-token")
    save_profile("ci", "http://ci.example", "ci-token")
    monkeypatch.setenv("PIE_PROFILE", "default")
    assert (resolve().url, resolve().token) == ("http://profile.example", "profile-token")
    monkeypatch.setenv("PIE_TOKEN", "env-token")
    assert (resolve().url, resolve().token) == ("http://profile.example", "env-token")
    monkeypatch.setenv("PIE_URL", "http://env.example")
    assert (resolve().url, resolve().token) == ("http://env.example", "env-token")
    client = Client("http://arg.example", "arg-token")
    assert (client.url, client.transport.token) == ("http://arg.example", "arg-token")


def test_no_server_url_is_an_error_that_says_what_to_do(config: Path) -> None:
    from pie_client import ConfigurationError, PieError

    with pytest.raises(ConfigurationError, match="pie login"):
        Client()
    with pytest.raises(ConfigurationError, match="no profile 'absent'"):
        Client(profile="absent")
    with pytest.raises(PieError, match="not an http"):  # `except PieError` catches them all
        Client("ftp://x.example", "t")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("{broken")
    with pytest.raises(ConfigurationError, match=f"{config} is not a PIE client config file"):
        Client()

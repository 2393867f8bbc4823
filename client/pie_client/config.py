"""Where the client finds its server and token: arguments, PIE_URL / PIE_TOKEN, then the
named profiles of the config file that `pie login` writes (readable by its owner only)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pie_client.errors import ConfigurationError

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Settings:
    url: str
    token: str | None


def config_path() -> Path:
    """PIE_CONFIG, else $XDG_CONFIG_HOME/pie/config.json (~/.config/pie/config.json)."""
    if os.environ.get("PIE_CONFIG"):
        return Path(os.environ["PIE_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "pie" / "config.json"


def read_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"current": DEFAULT_PROFILE, "profiles": {}}
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PIE client config file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise ConfigurationError(f"{path} is not a PIE client config file")
    return data


def save_profile(name: str, url: str, token: str | None, path: Path | None = None) -> Path:
    """Store (or replace) a profile and make it the current one; the file is mode 0600."""
    path = path or config_path()
    data = read_config(path)
    data["profiles"][name] = {"url": url.rstrip("/"), "token": token}
    data["current"] = name
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    # Created 0600 from the start (never readable by others, even for a moment), then renamed.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def resolve(
    url: str | None = None, token: str | None = None, profile: str | None = None
) -> Settings:
    """Arguments first, then PIE_URL / PIE_TOKEN, then the profile (PIE_PROFILE, else the
    config file's current one)."""
    url = url or os.environ.get("PIE_URL")
    token = token or os.environ.get("PIE_TOKEN")
    if not url or not token:
        data = read_config()
        name = profile or os.environ.get("PIE_PROFILE") or data.get("current") or DEFAULT_PROFILE
        stored = data["profiles"].get(name)
        if stored is None and profile:
            raise ConfigurationError(f"no profile {profile!r} in {config_path()} (run `pie login`)")
        stored = stored or {}
        url = url or stored.get("url")
        token = token or stored.get("token")
    if not url:
        raise ConfigurationError(
            "no server URL: pass one, set PIE_URL, or run `pie login --url URL`"
        )
    return Settings(url.rstrip("/"), token)

"""Settings: a TOML file (optional) overlaid with HUB_<SECTION>__<KEY> environment variables, validated at start."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "HUB_"


class ConfigError(Exception):
    """Raised with a message naming the offending key; the CLI prints it and exits."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = ""
    max_body_bytes: int = Field(1_048_576, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout_seconds: float = Field(10.0, ge=0)

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class DatabaseSettings(Section):
    url: str = "sqlite:///hub-data/hub.db"
    pool_size: int = Field(4, ge=1, le=64)
    sqlite_synchronous: Literal["normal", "full"] = "normal"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST/DB")
        return v


class IdentitySettings(Section):
    default_region: str = "US"

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        import phonenumbers

        if v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {v!r}: use a two-letter ISO country code such as US or GB")
        return v.upper()


class ConversationSettings(Section):
    reopen_window_seconds: float = Field(0.0, ge=0)


class IngestSettings(Section):
    recovery_interval_seconds: float = Field(5.0, gt=0)
    max_attachment_bytes: int = Field(20_000_000, ge=0)


class OutboxSettings(Section):
    max_attempts: int = Field(8, ge=1)
    base_delay_seconds: float = Field(1.0, gt=0)
    max_delay_seconds: float = Field(300.0, gt=0)
    poll_interval_seconds: float = Field(1.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    concurrency: int = Field(8, ge=1)


class QueueSettings(Section):
    title: str = ""


class RoutingSettings(Section):
    default_queue: str = "support"
    queues: dict[str, QueueSettings] = Field(default_factory=lambda: {"support": QueueSettings(title="Support")})


class ApiChannelSettings(Section):
    enabled: bool = True
    webhook_url: str = ""
    webhook_secret: str = ""
    timeout_seconds: float = Field(10.0, gt=0)


class ChannelSettings(Section):
    api: ApiChannelSettings = Field(default_factory=ApiChannelSettings)


class MetricsSettings(Section):
    enabled: bool = True


class Settings(Section):
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    identities: IdentitySettings = Field(default_factory=IdentitySettings)
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @model_validator(mode="after")
    def _default_queue_exists(self) -> Settings:
        if self.routing.default_queue not in self.routing.queues:
            raise ValueError(
                f"routing.default_queue {self.routing.default_queue!r} is not one of routing.queues "
                f"({', '.join(sorted(self.routing.queues)) or 'none'})"
            )
        return self


def _env_value(raw: str) -> Any:
    # Lists and tables come as JSON; scalars stay strings and pydantic coerces them ("8080" -> 8080).
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """HUB_SERVER__PORT=9000 -> {"server": {"port": "9000"}}; also returns dotted key -> env var name."""
    tree: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            continue
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} conflicts with another HUB_ variable")
            node = child
        node[path[-1]] = _env_value(raw)
        origin[".".join(path)] = name
    return tree, origin


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _describe(err: ValidationError, origin: dict[str, str], source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown setting (see config/hub.example.toml for every setting)"
        where = f" (from {origin[key]})" if key in origin else f" (in {source})"
        lines.append(f"  {key}: {msg}{where}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read FILE (if any), overlay the environment, validate; raise ConfigError naming the bad key."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"config file {p} does not exist (run without --config for the embedded default)"
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
        source = str(p)
    over, origin = env_overrides(environ)
    try:
        return Settings.model_validate(_merge(data, over))
    except ValidationError as e:
        raise ConfigError(_describe(e, origin, source)) from None
    except ValueError as e:
        raise ConfigError(f"invalid configuration: {e}") from None

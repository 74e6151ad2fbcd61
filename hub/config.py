"""Settings: a TOML file (optional) overlaid with HUB_<SECTION>__<KEY> environment variables, validated at start."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.business_hours import parse_span, zone

ENV_PREFIX = "HUB_"


class ConfigError(Exception):
    """Raised with a message naming the offending key; the CLI prints it and exits."""


def _hour_spans(spans: list[str]) -> list[str]:
    for span in spans:
        parse_span(span)  # raises ValueError saying what a span looks like
    return spans


def _time_zone(name: str) -> str:
    zone(name)  # raises ValueError naming an IANA zone to use
    return name


#: business hours as spans like "mon-fri 09:00-17:30" (hub.business_hours); an IANA time zone name
HoursSpans = Annotated[list[str], AfterValidator(_hour_spans)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = ""
    max_body_bytes: int = Field(1_048_576, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout_seconds: float = Field(10.0, ge=0)
    #: hub processes sharing the port (SO_REUSEPORT) under one supervisor; 0 or "auto": one per core (hub.workers)
    workers: Annotated[int, Field(ge=0, le=256)] | Literal["auto"] = 1
    #: the event loop `hub serve` and `hub demo` run on (hub.serve.run): uvloop costs less CPU a request
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

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
    pending_fact_seconds: float = Field(600.0, gt=0)


class OutboxSettings(Section):
    max_attempts: int = Field(8, ge=1)
    base_delay_seconds: float = Field(1.0, gt=0)
    max_delay_seconds: float = Field(300.0, gt=0)
    poll_interval_seconds: float = Field(1.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    concurrency: int = Field(8, ge=1)
    max_attachments: int = Field(10, ge=0)
    max_attachment_bytes: int = Field(10_000_000, ge=0)


class QueueSettings(Section):
    title: str = Field("", max_length=200)  # free text for people; the queue's name is its slug
    strategy: Literal["longest_idle", "least_occupied", "round_robin", "skills"] = "longest_idle"
    skills: dict[str, int] = Field(default_factory=dict)
    offer_timeout: float = Field(30.0, gt=0)
    direct: bool = False
    sticky_for: float = Field(0.0, ge=0)
    sla_wait: float = Field(60.0, ge=0)
    first_response: float = Field(0.0, ge=0)  # seconds from arrival to the first agent reply; 0: no target
    #: how the first-response target is counted: "business" (only while the queue's business hours are open) or
    #: "calendar" (every second); unset: routing.first_response_hours
    first_response_hours: Literal["calendar", "business"] | None = None
    stages: list[dict[str, Any]] = Field(default_factory=list)
    #: send a satisfaction survey after a conversation of this queue is resolved (hub.csat), this many seconds later
    csat: bool = False
    csat_delay: float = Field(0.0, ge=0, le=30 * 86400)

    def engine_config(self) -> dict[str, Any]:
        return self.model_dump(exclude={"title", "csat", "csat_delay"})


class AgentRoutingSettings(Section):
    """Routing facts about one agent (who is identified by email; agents themselves live in the store)."""

    email: str
    capacity: dict[str, int] | None = None
    skills: dict[str, int] = Field(default_factory=dict)
    wrapup: float = Field(0.0, ge=0)
    exclusive: list[str] = Field(default_factory=lambda: ["voice"])


class RoutingSettings(Section):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "hub:routing:"
    tick_seconds: float = Field(1.0, gt=0)
    # How often the routing state (memory or Redis) is compared with the store and repaired (hub/routing/reconciler.py)
    reconcile_seconds: float = Field(5.0, gt=0)
    default_queue: str = "support"
    missed_offers: int = Field(3, ge=1)
    transfer_wait: float = Field(60.0, ge=0)
    default_capacity: dict[str, int] = Field(default_factory=lambda: {"voice": 1, "chat": 3, "email": 5})
    queues: dict[str, QueueSettings] = Field(default_factory=lambda: {"support": QueueSettings(title="Support")})
    agents: list[AgentRoutingSettings] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    #: the queues' first_response_hours where a queue does not set its own
    first_response_hours: Literal["calendar", "business"] = "calendar"

    def engine_config(self, agents: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The shape hub.routing.config.RoutingConfig.from_dict reads."""
        return {
            "default_queue": self.default_queue,
            "missed_offers": self.missed_offers,
            "transfer_wait": self.transfer_wait,
            "queues": {name: {**q.engine_config(),
                              "first_response_hours": q.first_response_hours or self.first_response_hours}
                       for name, q in self.queues.items()},
            "agents": agents or [],
            "rules": self.rules,
        }

    @model_validator(mode="after")
    def _engine_accepts(self) -> RoutingSettings:
        from hub.routing.config import RoutingConfig, RoutingConfigError, parse_agent

        try:
            RoutingConfig.from_dict(self.engine_config())
            for i, a in enumerate(self.agents):
                raw = {"id": 1, "skills": a.skills, "wrapup": a.wrapup, "exclusive": a.exclusive,
                       "capacity": a.capacity or self.default_capacity}
                parse_agent(raw, f"routing.agents[{i}]")
        except RoutingConfigError as e:
            raise ValueError(str(e)) from None
        return self


class ApiChannelSettings(Section):
    enabled: bool = True
    webhook_url: str = ""
    webhook_secret: str = ""
    timeout_seconds: float = Field(10.0, gt=0)


class MailboxSettings(Section):
    """One IMAP mailbox the email channel reads; `name` keys its sync state, so keep it stable."""

    name: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(993, ge=1, le=65535)
    # The same words as smtp_security: TLS from the first byte (993), STARTTLS on the plain port (143), or none.
    security: Literal["tls", "starttls", "none"] = "tls"
    username: str = Field(min_length=1)
    password: str = ""
    folder: str = "INBOX"
    after_processing: Literal["seen", "move"] = "seen"
    move_to: str = "Processed"
    poll_interval_seconds: float = Field(60.0, gt=0)
    use_idle: bool = True


class EmailChannelSettings(Section):
    enabled: bool = False
    address: str = ""
    from_name: str = ""
    reply_to: str = ""
    message_id_domain: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    mailboxes: list[MailboxSettings] = Field(default_factory=list)
    allow_remote_images: bool = False
    idle_renew_seconds: float = Field(1500.0, gt=0, lt=1740)
    reconnect_max_delay_seconds: float = Field(300.0, gt=0)
    fetch_batch: int = Field(50, ge=1, le=1000)
    parse_processes: int = Field(1, ge=0, le=16)
    lease_seconds: float = Field(120.0, gt=0)
    tls_ca_file: str = ""
    tls_verify: bool = True

    @model_validator(mode="after")
    def _usable(self) -> EmailChannelSettings:
        if self.tls_ca_file and not Path(self.tls_ca_file).is_file():
            raise ValueError(f"channels.email.tls_ca_file: no such file: {self.tls_ca_file}")
        if self.enabled and "@" not in self.address:
            raise ValueError(
                "channels.email.address must be the support address replies come from, e.g. help@example.com"
            )
        names = [m.name for m in self.mailboxes]
        if len(set(names)) != len(names):
            raise ValueError("channels.email.mailboxes: each mailbox needs its own name")
        return self


TELEGRAM_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]{20,}")
TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{16,256}")


def _check_telegram_bot(where: str, token: str, mode: str, secret: str) -> None:
    if not TELEGRAM_TOKEN.fullmatch(token):
        raise ValueError(f"{where}bot_token must be the token @BotFather gave you (digits:letters)")
    if mode == "webhook" and not TELEGRAM_SECRET.fullmatch(secret):
        raise ValueError(
            f"{where}webhook_secret must be 16-256 characters of A-Z, a-z, 0-9, _ and - (Telegram sends it back in "
            "X-Telegram-Bot-Api-Secret-Token); or use mode = \"polling\""
        )


class TelegramBotSettings(Section):
    """One of several bots of the business: its updates come to /webhooks/telegram/<name>."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    bot_token: str
    mode: Literal["webhook", "polling"] = "webhook"
    webhook_secret: str = ""
    groups: Literal["ignore", "accept"] | None = None


class TelegramSettings(Section):
    enabled: bool = False
    bot_token: str = ""
    mode: Literal["webhook", "polling"] = "webhook"
    webhook_secret: str = ""
    groups: Literal["ignore", "accept"] = "ignore"
    bots: list[TelegramBotSettings] = Field(default_factory=list)
    api_url: str = "https://api.telegram.org/bot"
    file_url: str = "https://api.telegram.org/file/bot"
    max_file_bytes: int = Field(20_000_000, ge=0)
    rate_per_second: float = Field(30.0, gt=0)
    per_chat_interval_seconds: float = Field(1.0, ge=0)
    poll_timeout_seconds: int = Field(25, ge=0, le=50)
    timeout_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _usable(self) -> TelegramSettings:
        if not self.enabled:
            return self
        if self.bot_token or not self.bots:
            _check_telegram_bot("", self.bot_token, self.mode, self.webhook_secret)
        names = [b.name for b in self.bots]
        if "default" in names or len(set(names)) != len(names):
            raise ValueError("bots: each bot needs its own name (\"default\" is the top-level bot_token's)")
        tokens = [b.bot_token for b in self.bots] + ([self.bot_token] if self.bot_token else [])
        if len(set(tokens)) != len(tokens):
            raise ValueError("bots: the same bot_token is configured twice")
        for i, b in enumerate(self.bots):
            _check_telegram_bot(f"bots[{i}] ({b.name}): ", b.bot_token, b.mode, b.webhook_secret)
        return self


class WebchatSettings(Section):
    enabled: bool = False
    allowed_origins: list[str] = Field(default_factory=list)
    identity_secret: str = ""
    title: str = "Chat with us"
    welcome: str = "Hi! How can we help you today?"
    team_name: str = "Support"
    accent_color: str = "#4f46e5"
    prechat_form: bool = False
    max_message_chars: int = Field(4000, ge=1, le=100_000)
    messages_per_minute: int = Field(20, ge=1)
    history_limit: int = Field(100, ge=0, le=1000)
    max_sockets_per_visitor: int = Field(5, ge=1)
    # When agents answer chats (e.g. "mon-fri 09:00-17:30"); outside them the widget shows the offline form.
    hours: HoursSpans = Field(default_factory=list)
    timezone: TimeZone = "UTC"
    max_file_bytes: int = Field(10_000_000, ge=0)  # a file a visitor sends (0: visitors cannot send files)
    new_visitors_per_address_per_minute: int = Field(10, ge=1)
    new_visitors_per_minute: int = Field(300, ge=1)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for o in v:
            if o != "*" and not re.fullmatch(r"https?://[^/\s]+", o.rstrip("/")):
                raise ValueError(f"{o!r} is not an origin: use scheme://host[:port], e.g. https://shop.example.com")
        return [o.rstrip("/") for o in v]

    @field_validator("accent_color")
    @classmethod
    def _color(cls, v: str) -> str:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", v):
            raise ValueError("must be a #rrggbb color, e.g. #4f46e5")
        return v


class TwilioNumberSettings(Section):
    """One of the business's Twilio numbers: a business line, with what callers hear on it."""

    line: str = ""
    greeting: str = "Thank you for calling. Please hold: the next available agent will be with you shortly."
    menu_prompt: str = ""
    menu: dict[str, str] = Field(default_factory=dict)
    max_wait_seconds: float = Field(300.0, gt=0)
    hours: HoursSpans = Field(default_factory=list)
    timezone: TimeZone = "UTC"
    voicemail_prompt: str = "Sorry, nobody can take your call right now. Please leave a message after the tone."
    closed_prompt: str = "We are closed right now. Please leave a message after the tone and we will call you back."
    agent_phone: str = ""

    @field_validator("menu")
    @classmethod
    def _digits(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[0-9*#]", key):
                raise ValueError(f"menu key {key!r} must be one keypad key: 0-9, * or #")
        return v


class TwilioSettings(Section):
    enabled: bool = False
    account_sid: str = ""
    auth_token: str = ""
    signature_mode: Literal["enforce", "log-only"] = "enforce"
    api_base_url: str = ""
    messaging_service_sid: str = ""
    sms_from: str = ""
    whatsapp_from: str = ""
    max_media_bytes: int = Field(5_000_000, ge=0)
    media_attempts: int = Field(5, ge=1)
    timeout_seconds: float = Field(15.0, gt=0)
    media_url_key: str = ""
    media_url_seconds: int = Field(3600, ge=60)
    screen_agent_calls: Literal["phone", "always", "never"] = "phone"
    numbers: dict[str, TwilioNumberSettings] = Field(default_factory=dict)

    @field_validator("api_base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (empty: Twilio's https://api.twilio.com)")
        return v.rstrip("/")

    @field_validator("numbers")
    @classmethod
    def _e164(cls, v: dict[str, TwilioNumberSettings]) -> dict[str, TwilioNumberSettings]:
        for number in v:
            if not re.fullmatch(r"\+[1-9]\d{6,14}", number):
                raise ValueError(f"number {number!r} must be in E.164 form, e.g. \"+14155550199\"")
        return v

    @model_validator(mode="after")
    def _usable(self) -> TwilioSettings:
        if not self.enabled:
            return self
        # Never run with the signature check silently off: a missing token is a start-up error.
        if not self.auth_token:
            raise ValueError("auth_token is required when the Twilio channel is enabled (Twilio console > Account)")
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", self.account_sid):
            raise ValueError("account_sid is required when the Twilio channel is enabled: AC followed by 32 hex digits")
        return self


class ChannelSettings(Section):
    api: ApiChannelSettings = Field(default_factory=ApiChannelSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    webchat: WebchatSettings = Field(default_factory=WebchatSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    email: EmailChannelSettings = Field(default_factory=EmailChannelSettings)


class ConsoleSettings(Section):
    enabled: bool = True
    session_lifetime_seconds: float = Field(43_200.0, gt=0)
    session_idle_seconds: float = Field(7_200.0, gt=0)
    # Sign-in throttling (hub.console.throttle): an attacker slows themselves, never the agent.
    signin_window_seconds: float = Field(900.0, gt=0)
    signin_free_failures: int = Field(5, ge=1)
    signin_address_free_failures: int = Field(50, ge=1)
    signin_backoff_seconds: float = Field(1.0, gt=0)
    signin_max_backoff_seconds: float = Field(300.0, gt=0)
    signin_concurrent_checks: int = Field(4, ge=1, le=256)
    #: an agent's reply to a conversation nobody holds makes it theirs (through routing: capacity is respected)
    claim_on_first_reply: bool = True
    #: how often each hub process looks for snoozed conversations that are due (a customer's message wakes its
    #: conversation at once in the process that hears of it; this poll is the floor, across processes and restarts)
    snooze_poll_seconds: float = Field(5.0, gt=0, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old in ("lockout_threshold", "lockout_window_seconds"):
                if old in data:
                    raise ValueError(
                        f"console.{old}: was removed, since a stranger could lock any agent out with it. Sign-in "
                        "now slows down per client address and account instead: use console.signin_free_failures, "
                        "signin_backoff_seconds, signin_max_backoff_seconds and signin_window_seconds "
                        "(see config/hub.example.toml)")
        return data


class EventSettings(Section):
    """The event bus: "memory" (one process) or "redis" (Pub/Sub, so every hub process sees every event)."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = ""
    channel: str = Field("hub:events", min_length=1)


class MetricsSettings(Section):
    enabled: bool = True
    token: str = ""  # when set, /metrics needs Authorization: Bearer <token>
    listen: str = ""  # "host:port": serve /metrics there only, not on the hub's public address

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        if v and (len(v) < 16 or not v.isascii() or not v.isprintable() or " " in v):
            raise ValueError("must be at least 16 printable ASCII characters without spaces (or empty: no token)")
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if v:
            host, sep, port = v.rpartition(":")
            if not sep or not host or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError('must be "host:port", e.g. "127.0.0.1:9108" (or empty: serve on the hub\'s address)')
        return v


class ReportsSettings(Section):
    """Reports: figures kept as hourly and daily rollups of conversation events (see docs/reports.md)."""

    #: the business's time zone: daily rollups (ranges over 35 days) start at its midnight, business hours are in it
    time_zone: TimeZone = "UTC"
    #: spans like "mon-fri 09:00-17:00"; a conversation opened outside them counts as after-hours. Empty: always open
    business_hours: HoursSpans = Field(default_factory=list)
    #: a customer who comes back within this many days of a resolved conversation is a repeat contact
    repeat_window_days: float = Field(7.0, gt=0)
    #: how often new conversation events are folded into the rollups
    roll_interval_seconds: float = Field(1.0, gt=0)
    #: fold events in this process; false: only record them (another hub process folds them, or none: the figures
    #: then stop moving until one does)
    roller: bool = True
    #: count the significant words of customers' messages by week (keyword trends)
    keywords: bool = True
    #: and the two-word phrases among them
    keyword_phrases: bool = True


class CsatSettings(Section):
    """Customer satisfaction surveys (hub.csat); which queues survey is each queue's `csat`."""

    #: a survey takes answers for this long after it is sent; later, a number is an ordinary message
    answer_window_hours: float = Field(72.0, gt=0, le=24 * 90)
    #: a score at or below this raises csat.low (automation, webhooks, the live wall)
    low_score: int = Field(2, ge=1, le=4)
    #: signs the link in an email survey (with server.public_url); empty: emails ask for a numeric reply only
    link_secret: str = ""
    poll_interval_seconds: float = Field(5.0, gt=0)
    question: str = Field("How satisfied are you with the help you got?", min_length=1, max_length=300)


class CampaignSettings(Section):
    """Proactive campaigns (hub.campaigns): a message to a segment or a list of identities."""

    #: messages a minute per campaign on each channel, unless the campaign sets its own (the providers' limits:
    #: a Twilio long code takes about one SMS a second; Telegram about 30 messages a second to different chats)
    rate_per_minute: dict[str, int] = Field(default_factory=lambda: {
        "sms": 60, "whatsapp": 60, "email": 300, "telegram": 1200})
    #: for a channel not named above
    default_rate_per_minute: int = Field(60, ge=1, le=100_000)
    #: a customer's message within this long after a campaign's counts as a reply to it
    reply_window_hours: float = Field(72.0, gt=0, le=24 * 90)
    poll_interval_seconds: float = Field(2.0, gt=0)
    #: recipients one campaign may have (a segment or a list bigger than this is refused)
    max_recipients: int = Field(100_000, ge=1)

    def rate(self, channel: str) -> int:
        return self.rate_per_minute.get(channel, self.default_rate_per_minute)


class AutomationSettings(Section):
    """Rules that act on the hub's events (hub.automation)."""

    enabled: bool = True
    #: an event caused by a rule's action has depth + 1; rules do not run on events deeper than this
    max_depth: int = Field(3, ge=0, le=10)
    poll_interval_seconds: float = Field(1.0, gt=0)
    #: processed events (and finished webhook deliveries) older than this are deleted
    retention_days: float = Field(30.0, gt=0)


class WebhookSettings(Section):
    """Signed outbound webhooks (hub.webhooks)."""

    enabled: bool = True
    #: private, loopback and link-local addresses are refused as targets unless this is on (tests, private networks)
    allow_private_targets: bool = False
    timeout_seconds: float = Field(10.0, gt=0)
    max_attempts: int = Field(10, ge=1)
    base_delay_seconds: float = Field(2.0, gt=0)
    max_delay_seconds: float = Field(3600.0, gt=0)
    poll_interval_seconds: float = Field(1.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    concurrency: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _lease_outlasts_a_post(self) -> WebhookSettings:
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError(f"webhooks.lease_seconds ({self.lease_seconds}) must be longer than "
                             f"webhooks.timeout_seconds ({self.timeout_seconds}), or a slow receiver gets it twice")
        return self


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
    events: EventSettings = Field(default_factory=EventSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    reports: ReportsSettings = Field(default_factory=ReportsSettings)
    csat: CsatSettings = Field(default_factory=CsatSettings)
    campaigns: CampaignSettings = Field(default_factory=CampaignSettings)
    automation: AutomationSettings = Field(default_factory=AutomationSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    @model_validator(mode="after")
    def _default_queue_exists(self) -> Settings:
        if self.routing.default_queue not in self.routing.queues:
            raise ValueError(
                f"routing.default_queue {self.routing.default_queue!r} is not one of routing.queues "
                f"({', '.join(sorted(self.routing.queues)) or 'none'})"
            )
        return self


#: env var name -> why its value, which looked like JSON, did not parse (named if validation then fails)
_JSON_ERRORS: dict[str, str] = {}


def _env_value(name: str, raw: str) -> Any:
    # Lists and tables come as JSON; scalars stay strings and pydantic coerces them ("8080" -> 8080).
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            # It may be a plain value (a password starting with "{"); if it was meant as JSON, the error says so.
            _JSON_ERRORS[name] = f"the JSON did not parse: {e}"
            return raw
    return raw


def _field_type(path: list[str]) -> Any:
    """The annotation of the setting at PATH (None when PATH is not a settings field)."""
    model: Any = Settings
    annotation: Any = None
    for part in path:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return None
        annotation = fields[part].annotation
        model = annotation
    return annotation


def _lists_from_indexes(node: Any, base: Any, path: list[str], origin: dict[str, str]) -> Any:
    """HUB_CHANNELS__EMAIL__MAILBOXES__0__PASSWORD sets one field of the first mailbox: under a setting that is a
    list, a table whose keys are all numbers becomes (or is merged into) that list, item by item."""
    if not isinstance(node, dict):
        return node
    listed = isinstance(base, list) or get_origin(_field_type(path)) is list
    if node and listed and all(k.isdigit() for k in node):
        items = list(base) if isinstance(base, list) else []
        for k in sorted(node, key=int):
            i = int(k)
            here = [*path, k]
            if i > len(items):
                var = next((v for d, v in origin.items() if d.startswith(".".join(here))), ".".join(here))
                raise ConfigError(f"{var}: index {i}, but only {len(items)} item(s) before it in "
                                  f"{'.'.join(path)} (count from 0, without gaps)")
            old = items[i] if i < len(items) else None
            value = _lists_from_indexes(node[k], old, here, origin)
            if isinstance(value, dict) and isinstance(old, dict):
                value = _merge(old, value)
            if i < len(items):
                items[i] = value
            else:
                items.append(value)
        return items
    sub = base if isinstance(base, dict) else {}
    return {k: _lists_from_indexes(v, sub.get(k), [*path, k], origin) for k, v in node.items()}


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
        node[path[-1]] = _env_value(name, raw)
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
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown setting (see config/hub.example.toml for every setting)"
        # A validator on a whole section names the exact setting at the start of its message: use that.
        named = msg.split(":", 1)[0]
        if named.startswith(key + ".") and " " not in named:
            key, msg = named, msg.split(":", 1)[1].strip()
        base = key.split("[", 1)[0]
        env = origin.get(base) or next((v for k, v in origin.items() if base.startswith(k + ".")), None)
        where = f" (from {env}{'; ' + _JSON_ERRORS[env] if env in _JSON_ERRORS else ''})" if env else f" (in {source})"
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
    _JSON_ERRORS.clear()
    over, origin = env_overrides(environ)
    over = _lists_from_indexes(over, data, [], origin)
    try:
        return Settings.model_validate(_merge(data, over))
    except ValidationError as e:
        raise ConfigError(_describe(e, origin, source)) from None
    except ValueError as e:
        raise ConfigError(f"invalid configuration: {e}") from None

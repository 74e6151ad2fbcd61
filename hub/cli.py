"""The `hub` command: serve, demo, migrate, tokens, agents, events."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hub.history.db import Database, open_database, redact

if TYPE_CHECKING:
    from hub.attention import Attention
    from hub.config import Settings
    from hub.ingest import Ingest

log = logging.getLogger("hub")


def _setup_logging(level: str = "info", worker: bool = False) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        # The workers of `hub serve --workers N` write to one stream: each line says whose it is.
        format="%(asctime)s %(levelname)-7s " + ("[pid %(process)d] " if worker else "") + "%(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if level != "debug":
        # Libraries' per-request lines (the HTTP clients of Telegram and Twilio, the SMTP server's connection log)
        # drown the hub's own; they come back with log_level = "debug".
        for chatty in LIBRARY_CHATTER:
            logging.getLogger(chatty).setLevel(logging.WARNING)


LIBRARY_CHATTER = ("httpx", "httpcore", "mail.log", "aiosmtpd", "telegram.ext", "aioimaplib", "twilio.http_client")


def _settings(args: argparse.Namespace) -> Settings:
    from hub.config import load_settings

    return load_settings(getattr(args, "config", None))


async def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[int]]) -> int:
    from hub.agents import sync_queues
    from hub.history.schema import migrate

    db = open_database(settings.database.url, settings.database.pool_size, settings.database.sqlite_synchronous)
    try:
        await migrate(db)
        await sync_queues(db, settings.routing.queues)
        return await fn(db)
    finally:
        await db.close()


# -- commands ------------------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    # Here, not at the top: a worker process the hub spawns (email parsing) imports this module as its parent's
    # main module, and the web server's imports would cost it 0.3 s of CPU at every start.
    from hub.app import build_app
    from hub.serve import run, run_server
    from hub.workers import die_with_parent, run_supervisor, worker_count

    settings = _settings(args)
    if args.host:
        settings.server.host = args.host
    if args.port is not None:
        settings.server.port = args.port
    if args.workers is not None:
        settings.server.workers = args.workers
    workers = worker_count(settings.server.workers)
    supervised = args.supervised_fd is not None
    _setup_logging(settings.server.log_level, worker=supervised)
    if workers > 1 and not supervised:
        return run_supervisor(settings, workers, args.config)
    started = None
    if supervised:
        die_with_parent()
        ready_fd: int = args.supervised_fd

        async def serving(port: int) -> None:
            os.write(ready_fd, b"r")  # the supervisor counts this worker as started
            os.close(ready_fd)

        started = serving
    app = build_app(settings)
    run(run_server(app, settings.server.host, settings.server.port, settings.server.shutdown_timeout_seconds,
                   started=started, reuse_port=supervised), settings.server.event_loop)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from hub.history.schema import LATEST, current_version, migrate

    settings = _settings(args)
    _setup_logging(settings.server.log_level)

    async def run() -> int:
        db = open_database(settings.database.url, 1, settings.database.sqlite_synchronous)
        try:
            applied = await migrate(db)
            version = await current_version(db)
        finally:
            await db.close()
        print(f"{redact(settings.database.url)}: schema at version {version} of {LATEST}"
              + (f" (applied {', '.join(map(str, applied))})" if applied else " (nothing to do)"))
        return 0

    return asyncio.run(run())


def cmd_tokens_create(args: argparse.Namespace) -> int:
    from hub.agents import find_agent
    from hub.api.auth import create_token

    settings = _settings(args)

    async def run(db: Database) -> int:
        agent_id = None
        if args.agent:
            agent = await find_agent(db, args.agent)
            if agent is None:
                print(f"error: no agent {args.agent!r} (see `hub agents list`)", file=sys.stderr)
                return 2
            agent_id = agent.id
        try:
            token = await create_token(db, args.role, agent_id, args.label or "")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"created an {args.role} token; it is shown only once:", file=sys.stderr)
        print(token)
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_agents_add(args: argparse.Namespace) -> int:
    from hub.agents import AgentError, add_agent

    settings = _settings(args)
    password = args.password
    if password is None:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.email}: ")

    async def run(db: Database) -> int:
        try:
            agent = await add_agent(db, args.name, args.email, password, args.role, args.queue or [],
                                    phone=args.phone, voice_client=args.voice_client)
        except AgentError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"added agent {agent.id}: {agent.name} <{agent.email}> {agent.role}, queues: "
              f"{', '.join(agent.queues) or 'none'}")
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_agents_list(args: argparse.Namespace) -> int:
    from hub.agents import list_agents

    settings = _settings(args)

    async def run(db: Database) -> int:
        agents = await list_agents(db)
        if not agents:
            print("no agents yet: add one with `hub agents add --name NAME --email EMAIL --queue QUEUE`")
        for a in agents:
            state = " (disabled)" if a.disabled else ""
            voice = f"  rings {a.voice_client or a.phone}" if (a.voice_client or a.phone) else ""
            print(f"{a.id:>4}  {a.name:<20} {a.email:<30} {a.role:<10} {', '.join(a.queues) or '-'}{state}{voice}")
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_events_replay(args: argparse.Namespace) -> int:
    from hub.channels.registry import CHANNEL_RULES
    from hub.events import MemoryBus
    from hub.ingest import Ingest
    from hub.metrics import Metrics

    settings = _settings(args)
    _setup_logging(settings.server.log_level)

    async def run(db: Database) -> int:
        ingest = Ingest(db, settings, MemoryBus(), Metrics(), channel_rules=CHANNEL_RULES)
        if args.ids or "rejected" in args.status:
            return await _replay_rejected(db, ingest, args)
        statuses = tuple(args.status)
        n = await ingest.process_journal(statuses)
        left = await db.read(
            lambda tx: tx.one(
                f"SELECT COUNT(*) AS n FROM journal WHERE status IN ({', '.join('?' for _ in statuses)})", statuses
            )
        )
        remaining = int(left["n"]) if left else 0
        print(f"replayed: {n} event(s) stored; {remaining} still {'/'.join(statuses)}")
        return 0 if remaining == 0 else 1

    return asyncio.run(_with_db(settings, run))


def _attention(ingest: Ingest, settings: Settings) -> Attention:
    """Flagged events read by the configured channels' own parsers (nothing is started or connected)."""
    from hub.app import build_channels
    from hub.attention import Attention
    from hub.channel_host import ChannelHost
    from hub.channels.base import Channel
    from hub.outbox import Outbox

    channels: dict[str, Channel] = {}
    outbox = Outbox(ingest.db, channels, settings.outbox, ingest.bus, ingest.metrics)
    channels.update(build_channels(settings, ChannelHost(ingest, outbox)))
    return Attention(ingest, channels)


async def _replay_rejected(db: Database, ingest: Ingest, args: argparse.Namespace) -> int:
    """`hub events replay ID...` or `--status rejected`: each event through the operator's replay (journaled)."""
    from hub.attention import AttentionError, listing

    attention = _attention(ingest, ingest.settings)
    ids = list(args.ids)
    if not ids:
        statuses = tuple(s for s in args.status if s in ("failed", "rejected"))
        ids = [f.id for f in await db.read(lambda tx: listing(tx, limit=100_000, statuses=statuses))][::-1]
        if "pending" in args.status:
            await ingest.process_journal(("pending",))
    left = 0
    for jid in ids:
        try:
            r = await attention.replay(jid, f"cli {getpass.getuser()}")
        except (AttentionError, LookupError) as e:
            print(f"{jid:>6}  not replayed: {e}")
            left += 1
            continue
        print(f"{jid:>6}  {r['status']:<8} {r['outcome']}")
        left += r["status"] != "done"
    print(f"replayed: {len(ids) - left} event(s) stored or applied; {left} still flagged")
    return 0 if left == 0 else 1


def cmd_events_show(args: argparse.Namespace) -> int:
    from hub.attention import raw_bytes, show

    settings = _settings(args)

    async def run(db: Database) -> int:
        try:
            event, body = await db.read(lambda tx: show(tx, args.id))
        except LookupError as e:
            print(f"hub: {e}", file=sys.stderr)
            return 1
        data, ctype, _name = raw_bytes(body)
        if args.raw:
            sys.stdout.buffer.write(data)
            return 0
        print(f"event {event.id}  {event.channel}  {event.status}  ({event.reason})  received {event.received_at}")
        print(f"  from:    {event.sender or '(unknown)'}")
        print(f"  about:   {event.summary or '(nothing readable)'}")
        print(f"  why:     {event.error or '-'}")
        print(f"  key:     {event.dedupe_key}   attempts: {event.attempts}   message: {event.message_id or '-'}")
        for a in event.actions:
            print(f"  {a['created_at']}  {a['action']} by {a['actor']}: {a['outcome']}"
                  + (f" ({a['note']})" if a["note"] else ""))
        text = data.decode("utf-8", "replace")
        print(f"  raw ({ctype}, {len(data)} bytes; --raw prints all of it):")
        print("    " + "\n    ".join(text[:2000].splitlines()))
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_events_list(args: argparse.Namespace) -> int:
    from hub.journal import FLAGGED, listing

    settings = _settings(args)
    statuses = tuple(dict.fromkeys([*(FLAGGED if args.flagged else ()), *(args.statuses or ())]))

    async def run(db: Database) -> int:
        rows = await db.read(lambda tx: listing(tx, statuses, args.channel, args.limit))
        if not rows:
            print(f"no {'/'.join(statuses) or 'journaled'} events")
        for r in rows:
            print(f"{r['id']:>6}  {r['received_at']}  {r['channel']:<9} {r['status']:<8} {r['dedupe_key']}"
                  + (f"  ({r['reason']})" if r.get("reason") else ""))
            if r["error"]:
                print(f"        {r['error']}")
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_demo(args: argparse.Namespace) -> int:
    from hub.config import load_settings
    from hub.demo.runner import run_demo
    from hub.serve import run

    # The demo reads HUB_* like serve does (HUB_SERVER__PORT, HUB_SERVER__HOST, HUB_SERVER__LOG_LEVEL...).
    server = load_settings(None).server  # a bad value is a ConfigError, reported by main()
    _setup_logging(server.log_level)
    host = server.host if args.host is None else args.host
    port = server.port if args.port is None else args.port
    return run(run_demo(Path(args.data), host, port, traffic=not args.no_traffic), server.event_loop)


def _workers(value: str) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if not value.isdigit() or int(value) > 256:
        raise argparse.ArgumentTypeError(f"{value!r}: a number of processes up to 256, or auto (one per core)")
    return int(value)


# -- parser --------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config", metavar="FILE",
        help="TOML settings file (default: the embedded default; HUB_<SECTION>__<KEY> env vars override either)",
    )
    p = argparse.ArgumentParser(
        prog="hub", description="An omnichannel contact-center hub: one timeline per customer across every channel."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", parents=[config], help="run the hub", description="Run the hub's HTTP server.")
    s.add_argument("--host", help="listen address (default: server.host)")
    s.add_argument("--port", type=int, help="listen port (default: server.port; 0 picks a free one)")
    s.add_argument("--workers", type=_workers, metavar="N|auto",
                   help="hub processes sharing the port under a supervisor (default: server.workers, 1); 0 or auto: "
                        "one per core; more than 1 needs PostgreSQL and Redis (see docs/routing.md)")
    # Internal: set by the supervisor for its workers (the write end of the pipe that says "serving").
    s.add_argument("--supervised-fd", type=int, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_serve)

    d = sub.add_parser("demo", help="run a demo hub with sample queues, agents and live traffic",
                       description="Run the hub on its embedded default (SQLite in --data) with demo queues, agents "
                                   "and a simulated customer writing in through the real inbound path.")
    d.add_argument("--data", default="hub-demo", help="data folder (default: ./hub-demo)")
    d.add_argument("--host", help="listen address (default: server.host, i.e. HUB_SERVER__HOST or 127.0.0.1)")
    d.add_argument("--port", type=int, help="listen port (default: server.port, i.e. HUB_SERVER__PORT or 8080; "
                                            "0 picks a free one)")
    d.add_argument("--no-traffic", action="store_true", help="no simulated customers")
    d.set_defaults(fn=cmd_demo)

    m = sub.add_parser("migrate", parents=[config], help="bring the database schema up to date",
                       description="Apply schema migrations (the hub also does this at start).")
    m.set_defaults(fn=cmd_migrate)

    t = sub.add_parser("tokens", help="API tokens", description="Manage API bearer tokens.")
    tsub = t.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    tc = tsub.add_parser("create", parents=[config], help="create a token (printed alone on the last line)",
                         description="Create an API token. Only its hash is stored: the token is printed once, "
                                     "alone on the last line of stdout.")
    tc.add_argument("--role", required=True, choices=["admin", "agent"])
    tc.add_argument("--agent", metavar="ID_OR_EMAIL", help="the agent an agent token acts as (required for agent)")
    tc.add_argument("--label", help="a note on what the token is for")
    tc.set_defaults(fn=cmd_tokens_create)

    a = sub.add_parser("agents", help="agents", description="Manage agents.")
    asub = a.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    aa = asub.add_parser("add", parents=[config], help="add an agent",
                         description="Add an agent. The password is read from --password, else stdin or a prompt.")
    aa.add_argument("--name", required=True)
    aa.add_argument("--email", required=True)
    aa.add_argument("--password", help="at least 8 characters (default: prompt, or first line of stdin)")
    aa.add_argument("--role", default="agent", choices=["agent", "supervisor", "admin"])
    aa.add_argument("--queue", action="append", metavar="QUEUE", help="a queue the agent works (repeatable)")
    aa.add_argument("--phone", help="E.164 number the hub rings to connect the agent to calls, e.g. +14155550100")
    aa.add_argument("--voice-client", help="Twilio Client identity rung for calls (a softphone), before --phone")
    aa.set_defaults(fn=cmd_agents_add)
    al = asub.add_parser("list", parents=[config], help="list agents", description="List agents.")
    al.set_defaults(fn=cmd_agents_list)

    e = sub.add_parser("events", help="the inbound event journal", description="Work with the inbound journal.")
    esub = e.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    er = esub.add_parser("replay", parents=[config], help="reprocess failed journaled events (idempotent)",
                         description="Reprocess journaled inbound events that failed (or are pending). "
                                     "Safe to repeat: an event already stored is never stored twice.")
    er.add_argument("ids", nargs="*", type=int, metavar="ID",
                    help="these events (from `hub events list --flagged`), read again by their channel")
    er.add_argument("--status", action="append", choices=["failed", "pending", "rejected"],
                    help="which events (repeatable; default: failed and pending); rejected ones are read again by "
                         "their channel, as after a fix or a config change")
    er.set_defaults(fn=cmd_events_replay)
    es = esub.add_parser("show", parents=[config], help="one event: who sent it, why it was flagged, its raw",
                         description="Show one journaled event: sender, subject or first line, why it was flagged, "
                                     "what operators did about it, and the raw event as the provider sent it.")
    es.add_argument("id", type=int, help="the event id (from `hub events list`)")
    es.add_argument("--raw", action="store_true", help="print only the raw event, whole (an .eml, or JSON)")
    es.set_defaults(fn=cmd_events_show)
    el = esub.add_parser("list", parents=[config], help="list journaled events, newest first, with their errors",
                         description="List journaled events (inbound messages and providers' later facts such as "
                                     "delivery statuses), newest first, with why each flagged one was flagged.")
    el.add_argument("--flagged", action="store_true", help="only events an operator should look at (failed, "
                                                           "rejected)")
    el.add_argument("--status", dest="statuses", action="append",
                    choices=["pending", "done", "failed", "rejected", "dismissed"],
                    help="only events in this status (repeatable)")
    el.add_argument("--channel", help="only this channel's events")
    el.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    el.set_defaults(fn=cmd_events_list)

    rp = sub.add_parser("reports", help="report rollups", description="Work with the report rollups.")
    rpsub = rp.add_subparsers(dest="reports_cmd", required=True)
    rr = rpsub.add_parser("rebuild", parents=[config], help="recompute every report figure from the conversation "
                          "events", description="Throw the report rollups away and fold every conversation event "
                          "again (safe while the hub runs; figures are incomplete until it finishes).")
    rr.set_defaults(fn=cmd_reports_rebuild)

    tg = sub.add_parser("telegram", help="the Telegram bot", description="Work with the Telegram channel's bot.")
    tgsub = tg.add_subparsers(dest="telegram_command", required=True, metavar="ACTION")
    tw = tgsub.add_parser("set-webhook", parents=[config], help="register this hub's webhook with Telegram",
                          description="Tell Telegram to POST the bot's updates to this hub, with "
                                      "channels.telegram.webhook_secret as the secret token it must send back.")
    tw.add_argument("--url", help="the webhook URL (default: <server.public_url>/webhooks/telegram, or "
                                  ".../webhooks/telegram/<name> for a bot of channels.telegram.bots)")
    tw.add_argument("--bot", metavar="NAME", help="only this bot (\"default\" is bot_token's; default: every bot "
                                                  "in webhook mode)")
    tw.set_defaults(fn=cmd_telegram_set_webhook)

    wh = sub.add_parser("webhooks", help="provider webhooks", description="Work with saved provider webhooks.")
    whsub = wh.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    wr = whsub.add_parser("replay", parents=[config], help="post a saved Twilio webhook to a hub, signed",
                          description="POST a saved Twilio webhook (form-encoded .txt or JSON .json, e.g. "
                                      "webhooks/twilio/sms_inbound.txt) to URL with X-Twilio-Signature computed "
                                      "from channels.twilio.auth_token, as Twilio would. URL must be the address "
                                      "the hub's server.public_url gives it, or the signature will not match.")
    wr.add_argument("file", type=Path, metavar="FILE")
    wr.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080/webhooks/twilio/sms")
    wr.add_argument("--fresh", action="store_true",
                    help="new random MessageSid/CallSid/... so the hub stores it as a new event, not a retry")
    wr.set_defaults(fn=cmd_webhooks_replay)
    return p


def cmd_reports_rebuild(args: argparse.Namespace) -> int:
    from hub.reports.rollup import RollRules, rebuild

    settings = _settings(args)
    _setup_logging(settings.server.log_level)

    async def run(db: Database) -> int:
        n = await rebuild(db, RollRules.from_settings(settings.reports, settings.routing))
        print(f"rebuilt the report rollups from {n} conversation events")
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_telegram_set_webhook(args: argparse.Namespace) -> int:
    from telegram.error import TelegramError

    from hub.channels.telegram.channel import bot_specs, set_webhook

    settings = _settings(args)
    tg = settings.channels.telegram
    specs = [b for b in bot_specs(tg) if args.bot in (None, b.name)]
    if args.bot is None:
        specs = [b for b in specs if b.mode == "webhook"]  # polling bots have no webhook to register
    problems = [
        msg for bad, msg in [
            (not tg.enabled, "channels.telegram.enabled is false"),
            (args.bot is not None and not specs, f"no bot named {args.bot!r} in channels.telegram"),
            (args.bot is None and not specs, "no bot in webhook mode"),
            (bool(args.url) and len(specs) > 1, "--url needs --bot NAME when there are several bots"),
            (not args.url and not settings.server.public_url, "no URL: pass --url or set server.public_url"),
            *[(not b.secret, f"bot {b.name}'s webhook_secret is empty: the hub would reject every update")
              for b in specs],
        ] if bad
    ]
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    failed = 0
    for b in specs:
        url = args.url or settings.server.public_url + b.path
        if not url.startswith("https://"):
            print(f"warning: {url} is not https://; Telegram's cloud Bot API only calls https webhooks",
                  file=sys.stderr)
        try:
            print(f"{b.name}: {asyncio.run(set_webhook(tg, url, b.name))}")
        except TelegramError as e:
            print(f"error: {b.name}: Telegram refused: {str(e).replace(b.token, '<bot token>')}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_webhooks_replay(args: argparse.Namespace) -> int:
    from hub.channels.twilio.replay import replay

    token = _settings(args).channels.twilio.auth_token
    if not token:
        print("error: channels.twilio.auth_token is empty: set it (HUB_CHANNELS__TWILIO__AUTH_TOKEN) to sign with",
              file=sys.stderr)
        return 2
    try:
        status, body = asyncio.run(replay(args.file, args.url, token, fresh=args.fresh))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{status} {body}".rstrip())
    return 0 if status < 400 else 1

def main(argv: list[str] | None = None) -> int:
    from hub.config import ConfigError

    args = parser().parse_args(argv)
    if getattr(args, "status", None) is None and getattr(args, "events_command", None) == "replay":
        args.status = ["failed", "pending"]
    try:
        return int(args.fn(args))
    except ConfigError as e:
        print(f"hub: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

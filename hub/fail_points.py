"""Named fail points: the places between the writes of one decision where a crash would leave them half done.

Tests (and the soak) turn one on with the environment, `HUB_FAIL_POINTS=accept.after_state:kill` (a comma-separated
list of name:action), and the process dies there for real; recovery is then whatever the hub does at its next start
and in its reconciler. Actions: `kill` (SIGKILL: no cleanup, no flush) and `raise` (FailPointHit: the operation
stops there, the process lives on; for in-process tests).

Routing decisions are taken in the routing state (memory or Redis) and then written to the store, so every
operation has two points, `<op>.after_state` and `<op>.after_store`, with op one of: enqueue, accept, reject,
timeout, transfer, resolve, presence, repair. A resolve writes the store first (the API marks the conversation
resolved, then tells routing): `resolve.after_store` is the point between those two writes. POINTS lists them.
"""

from __future__ import annotations

import os
import signal

ENV = "HUB_FAIL_POINTS"
OPERATIONS = ("enqueue", "accept", "reject", "timeout", "transfer", "resolve", "presence", "repair")
POINTS = frozenset(f"{op}.{where}" for op in OPERATIONS for where in ("after_state", "after_store"))
ACTIONS = ("kill", "raise")


class FailPointHit(RuntimeError):
    """Raised at a fail point whose action is `raise`."""


def _active() -> dict[str, str]:
    raw = os.environ.get(ENV, "")
    if not raw:
        return {}
    out: dict[str, str] = {}
    for part in raw.split(","):
        name, _, action = part.strip().partition(":")
        if name not in POINTS or action not in ACTIONS:
            raise ValueError(f"{ENV}: {part!r} is not name:action (names: see hub/fail_points.py; "
                             f"actions: {', '.join(ACTIONS)})")
        out[name] = action
    return out


def check() -> None:
    """Validate HUB_FAIL_POINTS at start, so a typo fails loudly instead of never firing."""
    _active()


def hit(name: str) -> None:
    """Pass fail point NAME: nothing unless it is turned on."""
    if not os.environ.get(ENV):
        return  # the usual case: one dict lookup
    action = _active().get(name)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise FailPointHit(name)

# Automation and outbound webhooks (hub.automation, hub.webhooks). `event.before_deliveries`: the hub's event row is
# written and its webhook deliveries are not yet (one transaction: a kill there leaves neither). `webhook.after_post`:
# the receiver has the delivery and the hub has not yet marked it delivered (at least once: it is sent again).
POINTS = POINTS | {"event.before_deliveries", "webhook.after_post"}
# `automation.before_done` (hub.automation.runner): a rule's actions and its run record are written (label, reply and
# its outbox row, webhook deliveries) and the event is not yet marked done; one transaction, so a kill there leaves
# neither, and another process (or the restarted one) runs the rule on that event once.
POINTS = POINTS | {"automation.before_done"}

# Snooze (hub.inbox.snooze) writes the store first, then routing: `snooze.before_release` (snoozed in the store, still
# held by routing: the reconciler lets go of it), `wake.after_store` (woken in the store, not yet back in routing:
# the reconciler puts it back in its queue). `snooze.after_state` / `.after_store` are routing's own two writes.
POINTS = POINTS | {"snooze.before_release", "snooze.after_state", "snooze.after_store", "wake.after_store"}
# Operators' actions on flagged events (hub.attention). `attention.before_record`: an action's effect is written (the
# event stored on a timeline through ingest, a fact applied, the event marked dismissed) and the record of who did it
# is not yet; one transaction, so a kill there leaves neither: the event is still open, and acting on it again after
# the restart does it once.
POINTS = POINTS | {"attention.before_record"}
# Campaigns (hub.campaigns.sender). `campaign.before_mark`: a recipient's message and its outbox row are written and
# the recipient is not yet marked as sent to; one transaction, so a kill there leaves neither, and the restarted hub
# writes that recipient's message once.
POINTS = POINTS | {"campaign.before_mark"}
# The email channel (hub.channels.email.imap). `email.before_seen`: a fetched batch of emails is committed (journaled,
# stored or flagged, in one transaction) and the IMAP server has not yet been told (Seen or moved) nor the
# mailbox's progress saved; the restarted hub fetches the batch again and finds every email already there.
POINTS = POINTS | {"email.before_seen"}
# A conversation an inbound message opens (or reopens) is stored, with its first-response deadline, in the inbound
# transaction (hub.ingest), then routing queues it (hub.routing.service.Router.on_ingest): `enqueue.before_state` is
# between the two (nothing separates the deadline from the conversation: one transaction). The reconciler queues it
# with the stored deadline.
POINTS = POINTS | {"enqueue.before_state"}
# The reports roller (hub.reports.rollup.catch_up) folds pending events in slices, each slice's events marked rolled in
# the transaction that adds their figures: `reports.between_slices` is after one slice's commit, before the next.
POINTS = POINTS | {"reports.between_slices"}

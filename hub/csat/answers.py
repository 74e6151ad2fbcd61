"""A survey's answer, recorded where it belongs in the transaction that stores the customer's message: on the survey,
in the reports' events (hub.reports: the CSAT figures) and in the event log (csat.received, and csat.low for a low
score: rules and webhooks). The first answer counts; a second one is kept on the timeline, marked ignored."""

from __future__ import annotations

from typing import Any

from hub import event_log
from hub.csat.surveys import Survey
from hub.history.db import Tx
from hub.reports import events as conversation_events


def ignored(survey: Survey, now: str) -> str | None:
    """Why an answer to SURVEY arriving at NOW does not count, or None when it does."""
    if survey.status == "answered":
        return f"the survey was answered already (score {survey.score})"
    if not survey.open_at(now):
        return "the answer came after the survey closed"
    return None


def meta_for(survey: Survey, score: int, comment: str, now: str) -> dict[str, Any]:
    """What the answer's message carries in meta["csat"] (the console and the timeline show it)."""
    out: dict[str, Any] = {"survey": survey.id, "score": score, "comment": comment}
    why = ignored(survey, now)
    if why is not None:
        out["ignored"] = why
    return out


def record(tx: Tx, survey: Survey, score: int, comment: str, message_id: int, now: str, low_score: int) -> bool:
    """Record SCORE as SURVEY's answer (message MESSAGE_ID). Returns False when it does not count: the first answer
    in time stands, so a figure never changes after it was counted and a double tap is harmless."""
    taken = tx.exec(
        "UPDATE csat_surveys SET status = 'answered', score = ?, comment = ?, answered_at = ?, answer_message_id = ? "
        "WHERE id = ? AND status = 'sent' AND expires_at > ?",
        (score, comment or None, now, message_id, survey.id, now),
    )
    if not taken:
        return False
    conversation_events.record(tx, "csat", survey.conversation_id, now, customer_id=survey.customer_id,
                               channel=survey.channel or "", queue=survey.queue, agent_id=survey.agent_id,
                               seconds=float(score))
    event_log.record(tx, "csat.received", survey.conversation_id, now, message_id=message_id)
    if score <= low_score:
        event_log.record(tx, "csat.low", survey.conversation_id, now, message_id=message_id)
    return True

"""The one-question page an email survey links to: GET shows the question (a mail scanner opening the link
answers nothing), POST answers it through the inbound path, as if the customer had replied. The link is signed
(hub.csat.surveys.link_token); the page is rendered by hub.pages (Jinja, autoescape)."""

from __future__ import annotations

from aiohttp import web

from hub import pages
from hub.csat import surveys
from hub.csat.surveys import COMMENT_LIMIT, Survey
from hub.keys import DB, INGEST, SETTINGS
from hub.model import ANSWER_META, Identity, Inbound, format_time, utcnow

SCORES = [(5, "Very happy"), (4, "Happy"), (3, "Neutral"), (2, "Unhappy"), (1, "Very unhappy")]


async def _survey(request: web.Request) -> Survey | None:
    survey_id = surveys.verify_token(request.app[SETTINGS].csat.link_secret, request.match_info["token"])
    if survey_id is None:
        return None
    return await request.app[DB].read(lambda tx: surveys.load(tx, survey_id))


def _page(status: int = 200, **context: object) -> web.Response:
    base: dict[str, object] = {"state": "ask", "question": "", "scores": SCORES, "chosen": None, "error": None,
                               "token": "", "comment_limit": COMMENT_LIMIT}
    # No caching: the page says whether the survey is still open.
    return pages.render("csat.html", status, headers={"Cache-Control": "no-store"}, **(base | context))


async def show(request: web.Request) -> web.Response:
    survey = await _survey(request)
    if survey is None or survey.channel != "email":
        return _page(404, state="unknown")
    if survey.status == "answered":
        return _page(state="answered")
    if not survey.open_at(format_time(utcnow())):
        return _page(410, state="closed")
    chosen = request.query.get("score", "")
    return _page(question=request.app[SETTINGS].csat.question, token=request.match_info["token"],
                 chosen=int(chosen) if chosen in ("1", "2", "3", "4", "5") else None)


async def answer(request: web.Request) -> web.Response:
    survey = await _survey(request)
    if survey is None or survey.channel != "email" or survey.identity is None:
        return _page(404, state="unknown")
    if survey.status == "answered":
        return _page(state="answered")
    if not survey.open_at(format_time(utcnow())):
        return _page(410, state="closed")
    form = await request.post()
    raw_score, comment = str(form.get("score", "")), str(form.get("comment", "")).strip()
    question = request.app[SETTINGS].csat.question
    token = request.match_info["token"]
    if raw_score not in ("1", "2", "3", "4", "5"):
        return _page(422, question=question, token=token, error="Please pick a score from 1 to 5.")
    if len(comment) > COMMENT_LIMIT:
        return _page(422, question=question, token=token, chosen=int(raw_score),
                     error=f"The comment is longer than {COMMENT_LIMIT} characters.")
    score = int(raw_score)
    kind, _, value = survey.identity.partition(":")
    await request.app[INGEST].ingest(Inbound(
        channel="email", identity=Identity(kind, value), text=f"{score}/5" + (f" {comment}" if comment else ""),
        # One answer per survey from this page: a second post (a double click) is the same event, stored once.
        external_id=f"csat-page:{survey.id}",
        meta={ANSWER_META: {"survey": survey.id, "score": score, "comment": comment}, "via": "csat-page"},
    ))
    return _page(state="thanks")


def routes() -> list[web.RouteDef]:
    return [web.get("/csat/{token}", show), web.post("/csat/{token}", answer)]

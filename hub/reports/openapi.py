"""The OpenAPI part for reports (hub.api.report_routes; docs/reports.md defines every figure), merged into
hub.api.openapi: their paths, and the models of their answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, RootModel

from hub.api.doc_parts import json_response as _json
from hub.api.doc_parts import query as _query
from hub.api.responses import Answer, Error, Omittable
from hub.reports.query import BREAKDOWNS, FIGURES, GROUPS, SLICES

# hub.reports.query's GROUPS and BREAKDOWNS (tests/api/test_responses.py checks that they agree)
Group = Literal["hour", "day", "week", "month"]
BreakdownBy = Literal["channel", "queue", "agent", "label"]


def _every_figure(schema: dict[str, Any]) -> None:
    schema["required"] = list(FIGURES)
    schema["properties"] = {k: {"type": ["number", "null"]} for k in FIGURES}


class Figures(RootModel[dict[str, float | None]]):
    """Every figure by name (docs/reports.md defines each)."""

    model_config = ConfigDict(json_schema_extra=_every_figure)


class ReportSlice(Answer):
    by: Omittable[str] = None
    value: Omittable[str] = None


class Summary(Answer):
    from_: str = Field(alias="from")
    to: str
    previous_from: str
    slice: ReportSlice | None = None
    figures: Figures
    previous: Figures
    units: dict[str, Any]
    catching_up: bool = Field(description="events not folded into the figures yet (the roller trails by about a "
                              "second): ask again shortly for figures that include them")


class Bucket(Answer):
    start: str
    figures: Figures


class Timeseries(Answer):
    from_: Omittable[str] = Field(None, alias="from")
    to: Omittable[str] = None
    group: Group
    time_zone: str
    slice: ReportSlice | None = None
    units: Omittable[dict[str, Any]] = None
    buckets: list[Bucket]


class BreakdownRow(Answer):
    value: str
    label: str
    figures: Figures


class Breakdown(Answer):
    from_: Omittable[str] = Field(None, alias="from")
    to: Omittable[str] = None
    by: BreakdownBy
    units: Omittable[dict[str, Any]] = None
    rows: list[BreakdownRow]


HourCounts = Annotated[list[int], Field(min_length=24, max_length=24)]


class Heatmap(Answer):
    from_: Omittable[str] = Field(None, alias="from")
    to: Omittable[str] = None
    figure: str
    time_zone: str
    cells: Annotated[list[HourCounts], Field(min_length=7, max_length=7)]


class StaffingModel(Answer):
    weekly_level: Omittable[float] = None
    weekly_trend: Omittable[float] = None
    held_out_wape: float | None = None
    held_out_weeks: Omittable[int] = None


class StaffingHour(Answer):
    start: str
    contacts: float
    agents: int = Field(description="needed by Erlang C")
    agents_erlang_a: int | None = Field(description="needed by Erlang A (null: no abandonment measured)")
    available: float | None = Field(description="agents available on average in the hour (null: not over yet)")


class Staffing(Answer):
    slice: Omittable[dict[str, Any]] = None
    time_zone: Omittable[str] = None
    history: dict[str, Any]
    model: StaffingModel
    assumptions: dict[str, Any]
    hours: list[StaffingHour]
    last_week: Omittable[list[StaffingHour]] = None


class VolumeChange(Answer):
    now: Omittable[int] = None
    previous: Omittable[int] = None
    change: float | None = None


class TimeChange(Answer):
    now: float | None = None
    previous: float | None = None
    change: float | None = None


class ChannelTrend(Answer):
    channel: str
    volume: VolumeChange
    first_response: TimeChange


class TopicChange(Answer):
    label: Omittable[str] = None
    title: Omittable[str] = None
    now: Omittable[int] = None
    previous: Omittable[int] = None
    change: float | None = None


class TopicTrends(Answer):
    rising: Omittable[list[TopicChange]] = None
    falling: Omittable[list[TopicChange]] = None


class KeywordChange(Answer):
    word: str
    now: int
    previous: int
    change: float | None = None


class KeywordTrends(Answer):
    """The keywords of customers' messages in whole weeks [weeks_from, weeks_to) against the as many weeks before
    (from previous_from): the ones whose count rose and fell the most, among those counted min_count times in one."""

    slice: ReportSlice | None = None
    weeks_from: str
    weeks_to: str
    previous_from: str
    weeks: int
    min_count: int
    rising: list[KeywordChange]
    falling: list[KeywordChange]


class Trends(Answer):
    from_: Omittable[str] = Field(None, alias="from")
    to: Omittable[str] = None
    previous_from: Omittable[str] = None
    channels: list[ChannelTrend]
    topics: TopicTrends
    keywords: KeywordTrends


_ERRORS = {"400": _json(Error, "Bad request: the message says what to fix"),
           "401": _json(Error, "No valid bearer token"),
           "403": _json(Error, "An agent asked for figures other than their own"),
           "404": _json(Error, "No saved segment has that id"),
           "422": _json(Error, "A parameter is not valid: the message says which and why")}
_COMMON = [
    _query("from", "start: a date (midnight in tz) or a time with its offset; default 7 days before to"),
    _query("to", "end (excluded): a date or a time; default tomorrow's midnight in tz"),
    _query("tz", "the viewer's IANA time zone (default reports.time_zone)"),
    *(_query(s, f"only this {s} (one filter at a time; agents always see their own)") for s in SLICES[:4]),
    _query("segment", "only the customers in this saved segment now (its id; supervisors and admins)",
           {"type": "integer"}),
    _query("format", "json (default) or csv", {"enum": ["json", "csv"]}),
]


def _ok(model: type[Answer], what: str) -> dict[str, Any]:
    return {"description": what, "content": {"application/json": {"schema": model},
                                             "text/csv": {"schema": {"type": "string"}}}}


def _op(summary: str, extra: list[dict[str, Any]], model: type[Answer]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": [*_COMMON, *extra],
                    "responses": {"200": _ok(model, "The figures (or a CSV file with ?format=csv)"), **_ERRORS}}}


PATHS: dict[str, Any] = {
    "/api/v1/reports/summary": _op(
        "Every figure over the range, and over the period of the same length just before it", [], Summary),
    "/api/v1/reports/timeseries": _op(
        "Every figure per hour, day, week (from Monday) or month of the viewer's time zone",
        [_query("group", "hour (ranges up to 35 days), day (default), week or month", {"enum": list(GROUPS)})],
        Timeseries),
    "/api/v1/reports/breakdown": _op(
        "Every figure per channel, queue, agent or label",
        [_query("by", "channel, queue (default), agent or label", {"enum": list(BREAKDOWNS)})], Breakdown),
    "/api/v1/reports/heatmap": _op(
        "A count per hour of the week (Monday first, hours of the viewer's time zone)",
        [_query("figure", "conversations_opened (default), messages_in, messages_out, conversations_resolved, "
                          "abandoned or after_hours")], Heatmap),
    "/api/v1/reports/trends": {"get": {
        "summary": "Channel trends: per channel, this period against the one before (volume, first response), "
                   "the labels (topics) whose volume rose or fell the most, and the keywords of customers' messages "
                   "that did, by whole weeks (supervisors and admins)",
        "parameters": [*_COMMON[:3], _query("channel", "only this channel's keywords"),
                       _query("queue", "only this queue's keywords (one filter at a time)"),
                       _query("min_count", "a keyword ranks when counted this many times in one of the two periods "
                                           "(default 5)", {"type": "integer", "minimum": 1}),
                       _COMMON[-1]],
        "responses": {"200": _ok(Trends, "The trends (or a CSV file with ?format=csv)"),
                      **_ERRORS, "403": _json(Error, "Not a supervisor or admin")}}},
    "/api/v1/reports/staffing": {"get": {
        "summary": "Staffing forecast: the next weeks' contacts per hour and the agents each hour needs (Erlang C, "
                   "and Erlang A with the measured patience), and last week's needs beside the agents available",
        "description": "Supervisors and admins. The volume model (hour-of-week profile x trending weekly total) is "
                       "fitted on the last history_weeks whole weeks; held_out_wape is its error on the last two "
                       "of them when fitted without them. docs/reports.md has the formulas.",
        "parameters": [
            *_COMMON[2:],
            _query("weeks", "weeks to forecast, 1-8 (default 2)", {"type": "integer", "minimum": 1, "maximum": 8}),
            _query("history_weeks", "whole past weeks to learn from, 1-52 (default 8)",
                   {"type": "integer", "minimum": 1, "maximum": 52}),
            _query("handle_seconds", "average handle time per contact (talk + wrap-up; default 300)",
                   {"type": "number", "minimum": 1, "maximum": 86400}),
            _query("target_seconds", "answer within this many seconds (default 60)",
                   {"type": "number", "minimum": 0, "maximum": 86400}),
            _query("goal", "share of contacts to answer within the target (default 0.8)",
                   {"type": "number", "minimum": 0.01, "maximum": 0.999}),
            _query("concurrency", "contacts an agent handles at once (chats; default 1)",
                   {"type": "integer", "minimum": 1, "maximum": 20}),
            _query("patience_seconds", "customers' mean patience for Erlang A (default: measured from the "
                                       "waits of answered and abandoned contacts)",
                   {"type": "number", "minimum": 1, "maximum": 86400}),
        ],
        "responses": {"200": _ok(Staffing, "The forecast (or a CSV file with ?format=csv)"),
                      **_ERRORS, "403": _json(Error, "Not a supervisor or admin")}}},
}

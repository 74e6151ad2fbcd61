"""Staffing forecast: next weeks' contacts per hour from the past weeks' hourly volume, and the agents each hour needs
to meet a service-level target (Erlang C; chats with their concurrency). docs/reports.md states the formulas and
their assumptions.

The volume model is the classic one for contact centers: an hour-of-week profile (each hour's share of its week,
averaged over the history) times a weekly total that follows a linear trend (Holt's double exponential smoothing
on the weekly totals). Its error is shown honestly: the model is refitted without the last weeks of the history and
scored on them (WAPE: the absolute errors' sum over the actual volume)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HOURS_PER_WEEK = 168


# -- Erlang C -------------------------------------------------------------------------------------------------------

def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a contact waits (Erlang C), for TRAFFIC erlangs (arrivals per second x handle seconds)
    offered to AGENTS servers. 1.0 when the agents cannot keep up (agents <= traffic)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    # Erlang B by its stable recurrence, then C from B: no factorials, no overflow at hundreds of agents.
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return agents * b / (agents - traffic * (1 - b))


def service_level(traffic: float, agents: int, handle_seconds: float, target_seconds: float) -> float:
    """Share of contacts answered within TARGET_SECONDS (Erlang C with exponential handle times)."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return 1 - erlang_c(traffic, agents) * math.exp(-(agents - traffic) * target_seconds / handle_seconds)


def average_wait(traffic: float, agents: int, handle_seconds: float) -> float:
    """Average speed of answer in seconds, over every contact (those answered at once count 0)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(traffic, agents) * handle_seconds / (agents - traffic)


def agents_needed(contacts_per_hour: float, handle_seconds: float, target_seconds: float, goal: float,
                  concurrency: int = 1, max_agents: int = 10_000) -> int:
    """The fewest agents that answer GOAL (0-1) of the contacts within TARGET_SECONDS. With CONCURRENCY > 1 (chats),
    each agent is that many servers, each holding one contact for HANDLE_SECONDS: an approximation that holds when
    a chat's handle time is measured per chat, as it is when agents work several at once."""
    traffic = contacts_per_hour * handle_seconds / 3600
    if traffic <= 0:
        return 0
    # Erlang B carried from one more server to the next (the recurrence erlang_c uses): linear in the answer.
    b, servers = 1.0, 0
    while True:
        servers += 1
        if servers > max_agents * concurrency:
            raise ValueError(f"more than {max_agents} agents would be needed")
        b = traffic * b / (servers + traffic * b)
        if servers <= traffic:
            continue
        waits = servers * b / (servers - traffic * (1 - b))
        if 1 - waits * math.exp(-(servers - traffic) * target_seconds / handle_seconds) >= goal:
            return math.ceil(servers / concurrency)


# -- volume ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """A fitted volume model: the hour-of-week shares and the weekly level and trend at the end of the history."""

    profile: tuple[float, ...]  # 168 shares, Monday 00:00 first, summing to 1
    level: float
    trend: float

    def week(self, ahead: int) -> list[float]:
        """Contacts per hour AHEAD weeks after the history (1: the next week)."""
        total = max(0.0, self.level + ahead * self.trend)
        return [share * total for share in self.profile]


def fit(hourly: Sequence[float], alpha: float = 0.5, beta: float = 0.3) -> Model:
    """HOURLY: whole weeks of contacts per hour, oldest first, each starting Monday 00:00."""
    if len(hourly) < HOURS_PER_WEEK or len(hourly) % HOURS_PER_WEEK:
        raise ValueError("the history is whole weeks, at least one")
    weeks = [hourly[i:i + HOURS_PER_WEEK] for i in range(0, len(hourly), HOURS_PER_WEEK)]
    totals = [sum(w) for w in weeks]
    grand = sum(totals)
    if grand == 0:
        return Model(tuple([1 / HOURS_PER_WEEK] * HOURS_PER_WEEK), 0.0, 0.0)
    profile = tuple(sum(w[h] for w in weeks) / grand for h in range(HOURS_PER_WEEK))
    level, trend = totals[0], (totals[1] - totals[0]) if len(totals) > 1 else 0.0
    for total in totals[1:]:
        previous = level
        level = alpha * total + (1 - alpha) * (level + trend)
        trend = beta * (level - previous) + (1 - beta) * trend
    return Model(profile, level, trend)


def held_out_error(hourly: Sequence[float], weeks: int = 2) -> float | None:
    """WAPE of the model fitted without the last WEEKS, scored hour by hour on them; None when the history is too
    short to leave two weeks for fitting or the held-out weeks had no contacts."""
    n = len(hourly) // HOURS_PER_WEEK
    if n < weeks + 2:
        return None
    cut = (n - weeks) * HOURS_PER_WEEK
    model = fit(hourly[:cut])
    actual = hourly[cut:]
    predicted = [v for k in range(1, weeks + 1) for v in model.week(k)]
    volume = sum(actual)
    if volume == 0:
        return None
    return sum(abs(a - p) for a, p in zip(actual, predicted, strict=True)) / volume


# -- Erlang A (abandonment) -----------------------------------------------------------------------------------------

def _erlang_a_states(rate: float, mu: float, theta: float, agents: int) -> tuple[float, list[float]]:
    """The stationary M/M/N+M distribution seen by an arrival (PASTA): the share that finds a free agent, and the
    shares that find k = 0, 1, ... contacts queued ahead of them (truncated where the rest is negligible)."""
    # Birth-death chain: up to N busy agents, then a queue each member of which leaves at rate theta.
    below, term = 1.0, 1.0
    for n in range(1, agents):
        term *= rate / (n * mu)
        below += term
    term *= rate / (agents * mu) if agents > 0 else 1.0  # the state with every agent busy and nobody queued
    queue = [term]
    k = 0
    while True:
        k += 1
        term *= rate / (agents * mu + k * theta)
        queue.append(term)
        if term < 1e-10 * (below + sum(queue)) or k > 100_000:
            break
    total = below + sum(queue)
    return below / total, [q / total for q in queue]


def erlang_a(contacts_per_hour: float, handle_seconds: float, patience_seconds: float, agents: int,
             target_seconds: float) -> tuple[float, float]:
    """Erlang A (M/M/N+M): contacts arrive at random, take HANDLE_SECONDS on average (exponential), and give up
    after an exponential patience of PATIENCE_SECONDS on average if not answered by then. Returns (the share answered
    within TARGET_SECONDS, of every contact; the share that abandon)."""
    rate = contacts_per_hour / 3600
    if rate <= 0:
        return 1.0, 0.0
    mu, theta = 1 / handle_seconds, 1 / patience_seconds
    if agents <= 0:
        return 0.0, 1.0
    free, queue = _erlang_a_states(rate, mu, theta, agents)
    # Abandonment: theta times the mean queue length, over the arrival rate (Little's law on those who leave).
    # queue[k] is the share that find k ahead; the queue length time-average is the same by PASTA.
    abandon = theta * sum(k * q for k, q in enumerate(queue)) / rate
    # A contact finding k ahead is answered when k + 1 departures ahead (rates N mu + j theta) come before its own
    # patience runs out, and within the target: a pure-death chain with an absorbing "answered" and "gave up",
    # solved by uniformization (exact to the truncation; no factorials).
    top = len(queue) - 1
    big = agents * mu + top * theta + theta
    served = agents * mu
    # Per step of the uniformized chain, from "j ahead": one ahead leaves (down), or stay; the rest is giving up.
    down = [(served + j * theta) / big for j in range(top + 1)]
    stay = [1 - (served + j * theta + theta) / big for j in range(top + 1)]
    p = list(queue)  # p[j]: still waiting with j ahead
    answered = 0.0
    steps_mean = big * target_seconds
    log_weight = -steps_mean  # the Poisson weights in log space: a long target would underflow e^(-steps)
    weight = math.exp(log_weight) if log_weight > -700 else 0.0
    cumulative = weight
    gained = 0.0  # sum over m of P(m jumps by T) x P(answered within m jumps)
    m = 0
    while True:
        m += 1
        answered += p[0] * down[0]
        p = [a * s + b * d for a, s, b, d in zip(p, stay, [*p[1:], 0.0], [*down[1:], 0.0], strict=True)]
        log_weight += math.log(steps_mean / m)
        weight = math.exp(log_weight) if log_weight > -700 else 0.0
        gained += weight * answered
        cumulative += weight
        if (m > steps_mean and 1 - cumulative < 1e-9) or sum(p) < 1e-10 or m > 200_000:
            gained += max(0.0, 1 - cumulative) * answered  # the rest of the Poisson tail: answered by then at most
            break
    return free + gained, abandon


def agents_needed_a(contacts_per_hour: float, handle_seconds: float, patience_seconds: float, target_seconds: float,
                    goal: float, concurrency: int = 1, at_most: int | None = None) -> int:
    """The fewest agents whose Erlang A service level (answered within the target, over every contact) reaches
    GOAL. Abandonment takes load off, so it is never more than Erlang C's answer (AT_MOST, when given, bounds the
    search)."""
    if contacts_per_hour <= 0:
        return 0
    high = at_most if at_most is not None else agents_needed(contacts_per_hour, handle_seconds, target_seconds, goal,
                                                             concurrency)
    # The service level rises with the servers: a bisection between none and Erlang C's answer.
    lo, hi = 0, high * concurrency  # lo falls short, hi meets the goal
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if erlang_a(contacts_per_hour, handle_seconds, patience_seconds, mid, target_seconds)[0] >= goal:
            hi = mid
        else:
            lo = mid
    servers = hi
    return math.ceil(servers / concurrency)

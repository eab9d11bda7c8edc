"""The generic shop: its customers, their sessions, and churn as a process (sessions mode).

Pure and seeded: plain parameters in, events (epoch ms, record key, JSON value) and truth out. No clock, no I/O.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import statistics
from dataclasses import dataclass, replace
from heapq import heappop, heappush
from typing import Any, Iterator

from .events import FUNNEL_TYPES, TimestampFormatter, event_text, record_key, session_fields
from .figures import (ACTIVITY_SPREAD, BASE_HAZARD_PER_DAY, BREAK_DAYS, DAY_MS, DEFAULT_FUNNEL, DEPTH_SPREAD,
                      DORMANT_AGE_DAYS, DORMANT_AT_START, FADE_BOUNCE, FADE_DAYS_MEDIAN, FADE_DEPTH, FADE_FUNNEL,
                      FADE_SPREAD, FRICTION_MEMORY, FRICTION_WEIGHT, FULL_CHURN, GAP_MEDIAN_S, GAP_SPREAD,
                      HAZARD_ENGAGEMENT, HOUR_MS, HOURLY_TRAFFIC, MONTH_MS, PARTIAL_LEVEL, PROFILES,
                      REACTIVATION_PER_DAY, SEGMENTS, WEEKDAY_TRAFFIC, Funnel)

# A heap entry is one int, time * HEAP_SLOTS + user index: ints compare and allocate faster than tuples.
# The room is for the population and the customers who arrive later; the last two slots are the next arrival and
# a scenario's next moment (shopsim.scenarios).
HEAP_SLOTS = 1 << 22
ARRIVAL = HEAP_SLOTS - 1
SCENARIO = HEAP_SLOTS - 2
ENGAGED, FADING, DORMANT = 0, 1, 2
START, FADE_END, REACTIVATE = 0, 1, 2  # what a user's heap entry is for, when not in a session
BROWSED, ABANDONED, PURCHASED = 0, 1, 2  # how a session ended

def _with_odds(p: float, factor: float) -> float:
    """p with its odds multiplied by factor (keeps it a probability)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    odds = p / (1 - p) * factor
    return odds / (1 + odds)


def _lognormal_cdf(x: float, median: float, sigma: float) -> float:
    return 0.0 if x <= 0 else 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


def solve_funnel(weights: dict[str, float]) -> Funnel:
    """The funnel whose event mix is `weights` (product_view, add_to_cart, checkout, bounce), staying as close
    to DEFAULT_FUNNEL as the mix allows; ValueError naming what is attainable when no funnel gives it."""
    total = sum(weights[t] for t in FUNNEL_TYPES)
    views, carts, checkouts, bounces = (weights[t] / total for t in FUNNEL_TYPES)
    if views <= 0:
        raise ValueError("sessions need product_view > 0 (every engaged session views a product)")
    if carts > views:
        raise ValueError(f"add_to_cart={carts:.3g} is more than product_view={views:.3g} (of the total); a product is "
                         "viewed before it is added, so attainable mixes have add_to_cart <= product_view")
    if checkouts > carts:
        raise ValueError(f"checkout={checkouts:.3g} is more than add_to_cart={carts:.3g} (of the total); every "
                         "checkout follows an add_to_cart of its session, so attainable mixes have checkout <= "
                         "add_to_cart")
    d = DEFAULT_FUNNEL
    per_view = carts / views
    mean_views = min(d.views, views / checkouts) if checkouts else d.views
    if carts == 0:
        return Funnel(bounce=bounces / (bounces + views / mean_views), views=mean_views, cart=0.0, items=1.0,
                      checkout=0.0)
    # items (after the cap at the session's views) between what keeps cart <= 1 and checkout <= 1
    capped = min(max(d.items, per_view * mean_views), carts / checkouts if checkouts else math.inf, mean_views)
    return Funnel(bounce=bounces / (bounces + views / mean_views), views=mean_views,
                  cart=min(1.0, per_view * mean_views / capped), items=_uncapped_items(capped, mean_views),
                  checkout=min(1.0, checkouts / carts * capped))


def _uncapped_items(capped: float, views: float) -> float:
    """The mean K of 1 + geometric for which min(K, N) (N: views, 1 + geometric too) has mean `capped`.
    The minimum of two such numbers is one with 1 - 1/mean = (1 - 1/K)(1 - 1/N)."""
    if views <= 1 or capped <= 1:
        return 1.0
    inner = (1 - 1 / capped) / (1 - 1 / views)
    return 1 / (1 - inner) if inner < 0.999 else 1000.0


def _capped_items(items: float, views: float) -> float:
    return 1 / (1 - (1 - 1 / items) * (1 - 1 / views))


@dataclass(slots=True)  # slots: less memory for a million users, faster attribute access per event
class _User:
    user_id: int
    index: int
    segment: str
    key: bytes
    user_text: str  # the user id as JSON text, made once
    mine: bool  # in this shard: its events and labels are handed out
    rate: float  # session starts per ms when fully engaged, before the daily and weekly cycle
    depth: float  # views per engaged session beyond the first, mean
    hazard: float  # chance per ms of starting to disengage, before friction
    joined_ms: int | None  # None: a customer since before the simulation started
    state: int = ENGAGED
    fade_start: int = 0
    fade_end: int = 0
    friction: float = 0.0  # share of recent cart sessions abandoned
    break_at: float = math.inf
    break_days: float = 0.0  # how long the planned break lasts
    action: int = START
    plan: list | None = None  # the session's steps to come, last first: (event type, product, extra metadata)
    outcome: int = BROWSED
    session_start: int = 0
    sessions: int = 0
    first_ms: int = -1  # first event in the stream
    episodes: list | None = None  # [[churn ms, back ms or None], ...]
    at_cutoff: tuple | None = None  # (eligible, oracle probability) when the cut-off passed


class SessionSimulator:
    """Pure, seeded simulation of a shop's customers in simulated time (the `sessions` mode).

    Each customer has a segment (activity, funnel odds, churn propensity) and a heavy-tailed activity of
    their own. Sessions start at random with the shop's daily and weekly traffic cycle, and are a single
    bounce or views of products (Zipf-popular, a session revolves around a few), some added to the cart,
    some carts checked out with their order value. Churn is a process: the hazard of starting to disengage
    grows with friction; a decline of a few weeks follows; then the user leaves, or settles at a lower level;
    some who left come back; new customers arrive. The population starts in its long-run state (who is
    fading, who has left) so there is no warm-up. Events come out in time order from a heap of each user's
    next action; no clock is read: the caller decides how simulated time relates to the wall clock.
    """

    # The churn process's published defaults; a shop's twin (TwinSimulator) sets its fitted ones.
    full_churn = FULL_CHURN
    fade_days_median = FADE_DAYS_MEDIAN
    reactivation_per_day = REACTIVATION_PER_DAY
    friction_weight = FRICTION_WEIGHT  # how much abandoned carts raise the chance to start declining
    breaks_per_day = {segment: profile.breaks_per_day for segment, profile in PROFILES.items()}

    def __init__(self, *, segment_mix: dict[str, float], user_id_range: tuple[int, int],
                 product_id_range: tuple[int, int], session_length_range: tuple[float, float], start_ms: int,
                 seed: int | None, weights: dict[str, float] | None = None, timezone_name: str = "UTC",
                 zipf_exponent: float = 1.0, churn_signal: float = 0.7, cutoff_ms: int | None = None,
                 horizon_days: float = 14.0, shard: tuple[int, int] | None = None,
                 hourly: tuple[float, ...] = HOURLY_TRAFFIC, weekday: tuple[float, ...] = WEEKDAY_TRAFFIC,
                 warm_start: bool = False) -> None:
        from zoneinfo import ZoneInfo

        # A shard simulates the whole shop (the same draws in the same order as every other shard) and hands out
        # only its users' events and labels: the union of the shards is the unsharded stream, byte for byte.
        self.shard = shard

        self.rng = rng = random.Random(seed)
        self._random = rng.random
        self.start_ms = start_ms
        self.min_minutes, self.max_minutes = session_length_range
        self._max_session_ms = (self.max_minutes - self.min_minutes) * 60_000
        self.signal = churn_signal
        self._fade_depth = FADE_DEPTH(churn_signal)
        self.cutoff_ms = cutoff_ms  # cleared once the cut-off has passed and users' states are noted
        self._cutoff_noted: int | None = None
        self.horizon_ms = int(horizon_days * DAY_MS)
        self._timezone = ZoneInfo(timezone_name)
        self._cycle_cache: dict[int, float] = {}
        self._hourly, self._weekday = hourly, weekday
        week = sum(weekday) / 7 * sum(hourly) / 24
        self._cycle_norm = 1 / week
        self._cycle_max = max(weekday) * max(hourly) / week
        # Sessions start with the shop's traffic (a scenario shop's season raises it: shopsim.scenarios).
        self._session_cycle, self._session_peak = self._cycle, self._cycle_max
        # Product popularity: Zipf-like; products kept as their JSON text (the simulation only tells them
        # apart and writes them); prices are stable per product id, whatever the seed.
        lo, hi = product_id_range
        ranks = [str(product_id) for product_id in range(lo, hi + 1)]
        rng.shuffle(ranks)
        self._products = ranks
        self._product_cdf = list(itertools.accumulate(1.0 / rank ** zipf_exponent for rank in range(1, len(ranks) + 1)))
        self._product_total = self._product_cdf[-1]
        self._prices: dict[str, float] = {}
        # Gaps between a session's events: a table of log-normal quantiles, looked up by one random().
        quantile = statistics.NormalDist().inv_cdf
        self._gaps = [int(1000 * GAP_MEDIAN_S * math.exp(GAP_SPREAD * quantile((i + 0.5) / 1024))) for i in range(1024)]
        self._centi_lo = round(self.min_minutes * 100)
        self._minutes_text = [repr((self._centi_lo + i) / 100)
                              for i in range(round(self.max_minutes * 100) - self._centi_lo + 1)]
        self._timestamp = TimestampFormatter()
        self._segment_names = [s for s in SEGMENTS if segment_mix.get(s, 0) > 0]
        self._segment_cdf = list(itertools.accumulate(segment_mix[s] for s in self._segment_names))
        # SEGMENT_MIX is the standing customer base's; segments that churn more must be more of the newcomers
        # for the base to keep that mix.
        self._arrival_cdf = list(itertools.accumulate(segment_mix[s] * PROFILES[s].hazard for s in self._segment_names))
        self.dormant = 0  # users churned now
        self.partial_declines = 0  # declines that ended without churning
        self._truth: list | None = None  # changes of hidden state to hand out (truth()), once record_truth() asks
        self._calibrate(weights, segment_mix)
        self._funnels = {s: self._segment_funnel(s, 0.0) for s in SEGMENTS}
        self._heap: list[int] = []
        self.users: list[_User] = []
        # A warm start: the customers' sessions are drawn from a maximum session's length before the start (a
        # session begun earlier has ended by then) and played up to it, their events dropped; what happened in them
        # (friction, a decline planned again) stays. Those under way at the start go on from where they are, so the
        # pace from the first minute is the steady one. A cold start draws them from the start: sessions start at
        # their steady rate, but their later events lag, and the pace builds up over a maximum session's length.
        self._lead_ms = int(self._max_session_ms) + 1 if warm_start else 0
        self._populate(user_id_range, start_ms)
        if warm_start:
            self._take(math.inf, start_ms - 1)  # played, not handed out
            for user in self.users:
                # The stream starts here: a session under way is the customer's first in it; one that ended before
                # the start is not counted.
                user.first_ms = start_ms if user.plan is not None else -1
                if user.plan is None:
                    user.sessions = 0
                if user.state == ENGAGED and user.fade_start < start_ms:  # a decline drawn in the played half hour
                    user.fade_start = start_ms  # begins with the stream: its truth is not dated before the start

    # the population ------------------------------------------------------------------------------
    def _populate(self, user_id_range: tuple[int, int], start_ms: int) -> None:
        """The customers at the start, in their long-run state, and the first of the newcomers."""
        self._next_user_id = user_id_range[1] + 1
        for user_id in range(user_id_range[0], user_id_range[1] + 1):
            self._start_user(self._new_user(user_id, None, self._segment_cdf), start_ms, stationary=True)
        # New customers replace those who leave, net of those who come back, keeping the population steady.
        self.leaving_per_ms = sum(self._hazard(u) for u in self.users if u.state == ENGAGED) * FULL_CHURN
        self._schedule_arrival(start_ms)

    def _new_user(self, user_id: int, joined_ms: int | None, segment_cdf: list[float]) -> _User:
        rng = self.rng
        segment = self._segment_names[bisect.bisect_right(segment_cdf, rng.random() * segment_cdf[-1])]
        profile = PROFILES[segment]
        engagement = rng.lognormvariate(0.0, ACTIVITY_SPREAD)
        depth = (self.funnel.views - 1) * profile.depth * rng.lognormvariate(-DEPTH_SPREAD ** 2 / 2, DEPTH_SPREAD)
        hazard = BASE_HAZARD_PER_DAY / DAY_MS * profile.hazard * engagement ** -HAZARD_ENGAGEMENT
        mine = self.shard is None or user_id % self.shard[1] == self.shard[0]
        user = _User(user_id, len(self.users), segment, record_key(user_id), str(user_id), mine,
                     profile.sessions_per_month * engagement / MONTH_MS,
                     depth, hazard, joined_ms)
        self.users.append(user)
        return user

    def _start_user(self, user: _User, now: int, stationary: bool) -> None:
        """A user's state when the simulation starts (drawn from the long-run mix) or when they arrive."""
        rng = self.rng
        user.friction = 1 - self._funnels[user.segment].checkout if self.funnel.cart else 0.0
        if stationary:
            if rng.random() < DORMANT_AT_START:
                user.state = DORMANT
                self.dormant += 1
                user.episodes = [[now - int((1 + rng.expovariate(1 / DORMANT_AGE_DAYS)) * DAY_MS), None]]
                self._schedule_reactivation(user, now)
                return
            # In the long run a share of customers are part-way through a decline, or away on a break, or
            # settled lower after a decline they survived: start them so. An ongoing decline or break is
            # length-biased (a long one is more likely to be under way) and part-way through.
            if rng.random() < 1 - FULL_CHURN:
                user.rate *= rng.uniform(*PARTIAL_LEVEL)
            hazard_days = self._hazard(user) * DAY_MS * FADE_DAYS_MEDIAN * math.exp(FADE_SPREAD ** 2 / 2)
            if rng.random() < hazard_days / (1 + hazard_days):
                duration = int(rng.lognormvariate(math.log(FADE_DAYS_MEDIAN) + FADE_SPREAD ** 2, FADE_SPREAD) * DAY_MS)
                user.state = FADING
                user.fade_start = now - int(rng.random() * duration)
                user.fade_end = user.fade_start + duration
            else:
                self._plan_decline(user, now)
            away = self.breaks_per_day[user.segment] * sum(BREAK_DAYS) / 2
            if rng.random() < away / (1 + away):
                lo, hi = BREAK_DAYS
                user.break_days = math.sqrt(lo * lo + rng.random() * (hi * hi - lo * lo))
                user.break_at = now - rng.random() * user.break_days * DAY_MS
                self._schedule_session(user, now - self._lead_ms)
                return
        self._plan_break(user, now)
        if stationary:
            self._schedule_session(user, now - self._lead_ms)
        else:  # a new customer's arrival is their first visit
            self._plan_decline(user, now)
            user.action = START
            self._push(now, user.index)

    def _plan_decline(self, user: _User, now: int) -> None:
        """When an engaged user starts to disengage: the hazard as it stands (drawn again when it changes)."""
        user.fade_start = now + 1 + int(self.rng.expovariate(1.0) / self._hazard(user))

    def _fade_duration(self) -> int:
        return int(self.rng.lognormvariate(math.log(self.fade_days_median), FADE_SPREAD) * DAY_MS)

    def _hazard(self, user: _User) -> float:
        """Chance per ms that an engaged user starts to disengage."""
        return user.hazard * math.exp(self.friction_weight * (user.friction - 1 + DEFAULT_FUNNEL.checkout))

    def _calibrate(self, weights: dict[str, float] | None, segment_mix: dict[str, float]) -> None:
        """Set the average customer's funnel: the default, or one solved so that the population's mix (segments
        weighted by their sessions) is `weights`; ValueError when no funnel gives that mix."""
        if weights is None:
            self.funnel = DEFAULT_FUNNEL
            self.expected_mix = self._mix(segment_mix)
            return
        target = solve_funnel(weights)
        total = sum(weights[t] for t in FUNNEL_TYPES)
        wanted = {t: weights[t] / total for t in FUNNEL_TYPES}
        self.funnel = target
        for _ in range(60):  # segments shift the odds: move the base odds until the population hits the mix
            got = self._mix(segment_mix)
            f = self.funnel
            ratio = lambda a, b: (wanted[a] / wanted[b]) / (got[a] / got[b]) if got[a] and got[b] else 1.0  # noqa: E731
            self.funnel = replace(f, bounce=_with_odds(f.bounce, ratio("bounce", "product_view")),
                                  cart=min(1.0, f.cart * ratio("add_to_cart", "product_view")) if f.cart else 0.0,
                                  checkout=min(1.0, f.checkout * ratio("checkout", "add_to_cart"))
                                  if f.checkout else 0.0)
        self.expected_mix = got = self._mix(segment_mix)
        worst = max(FUNNEL_TYPES, key=lambda t: abs(got[t] - wanted[t]))
        if abs(got[worst] - wanted[worst]) > 0.01:
            raise ValueError(f"the shop's segments cannot reach {worst}={wanted[worst]:.3f} of events (the closest "
                             f"attainable is {got[worst]:.3f}: it needs every session of some segments to convert)")

    def _segment_funnel(self, segment: str, fade: float) -> Funnel:
        """The funnel of a segment's users; fade in [0, 1] for a disengaging user, scaled by CHURN_SIGNAL."""
        f, p, s = self.funnel, PROFILES[segment], self.signal * fade
        return Funnel(bounce=_with_odds(f.bounce, p.bounce_odds * (1 + FADE_BOUNCE * s)),
                      views=1 + (f.views - 1) * (1 - FADE_FUNNEL * s),
                      cart=_with_odds(f.cart, p.cart_odds * (1 - FADE_FUNNEL * s)) if f.cart else 0.0, items=f.items,
                      checkout=_with_odds(f.checkout, p.checkout_odds * (1 - FADE_FUNNEL * s)) if f.checkout else 0.0)

    def _mix(self, segment_mix: dict[str, float]) -> dict[str, float]:
        """Expected share of each event type, segments weighted by their share of sessions."""
        total = sum(segment_mix.get(s, 0) for s in SEGMENTS)
        mix = dict.fromkeys(FUNNEL_TYPES, 0.0)
        for segment in SEGMENTS:
            share = segment_mix.get(segment, 0) / total * PROFILES[segment].sessions_per_month
            for name, value in zip(FUNNEL_TYPES, self._per_session(segment)):
                mix[name] += share * value
        events = sum(mix.values())
        return {k: v / events for k, v in mix.items()}

    def _per_session(self, segment: str) -> tuple[float, float, float, float]:
        """Expected views, carts, checkouts and bounces per session of a segment's typical user."""
        f, p = self._segment_funnel(segment, 0.0), PROFILES[segment]
        views = 1 + (self.funnel.views - 1) * p.depth
        engaged = 1 - f.bounce
        return (engaged * views, engaged * f.cart * _capped_items(f.items, views),
                engaged * f.cart * f.checkout, f.bounce)

    def describe(self, segment_mix: str) -> str:
        return f"{len(self.users)} customers ({segment_mix})"

    def expected_events_per_second(self) -> float:
        """The population's average pace at the start (the daily cycle averaged out)."""
        away = sum(BREAK_DAYS) / 2
        per_session = {segment: sum(self._per_session(segment)) / (1 + self.breaks_per_day[segment] * away)
                       for segment in SEGMENTS}  # events per session, times the share not away
        return 1000 * sum(user.rate * per_session[user.segment] for user in self.users if user.state != DORMANT)

    def expected_events_per_second_at(self, when: int) -> float:
        """The pace at this moment's hour and weekday: the average pace times the shop's traffic cycle then."""
        return self.expected_events_per_second() * self._session_cycle(when)

    # scheduling ------------------------------------------------------------------------------------
    def _push(self, when: int, index: int) -> None:
        """Schedule a user's next action (or, with ARRIVAL, the next new customer) at `when` (ms). The per-event
        push of a session's next step in _take() writes the same entry inline."""
        heappush(self._heap, when * HEAP_SLOTS + index)

    def _cycle(self, when: int) -> float:
        """The shop's traffic at this time, relative to its weekly average (cached per hour)."""
        hour = when // HOUR_MS
        factor = self._cycle_cache.get(hour)
        if factor is None:
            from datetime import datetime

            if hour > 2_000_000:  # past the year 2200, beyond any window: a customer who will not be back
                return 1.0
            local = datetime.fromtimestamp(hour * 3600, self._timezone)
            factor = self._cycle_cache[hour] = \
                self._hourly[local.hour] * self._weekday[local.weekday()] * self._cycle_norm
        return factor

    def _schedule_session(self, user: _User, now: int) -> None:
        """Push the user's next session start: Poisson candidates at the peak rate, each kept with the
        traffic cycle's and the user's decline's share of it (thinning); or the end of their decline."""
        random, exponential, cycle, peak = self._random, self.rng.expovariate, self._session_cycle, self._session_peak
        rate = user.rate * peak
        when = now
        while True:
            when += 1 + int(exponential(rate))
            if when >= user.break_at:  # away for a few days; sessions start afresh afterwards
                back = int(user.break_at + user.break_days * DAY_MS)
                self._plan_break(user, back)
                when = back
                continue
            keep = cycle(when) / peak
            if user.state == ENGAGED and when >= user.fade_start:  # the decline began before this start
                user.state = FADING
                user.fade_end = user.fade_start + self._fade_duration()
                if self._truth is not None:  # decided now, for a moment that may be ahead: truth() waits for it
                    self._note_truth(user.fade_start, user, "decline_started", ends=self._truth_time(user.fade_end))
            if user.state == FADING:
                if when >= user.fade_end:
                    user.action = FADE_END
                    self._push(max(user.fade_end, now), user.index)  # a session may have run past the end
                    return
                # (a warm start's sessions before the start may come before a decline under way began)
                keep *= 1 - self._fade_depth * max(0, when - user.fade_start) / (user.fade_end - user.fade_start)
            if random() < keep:
                user.action = START
                self._push(when, user.index)
                return

    def _plan_break(self, user: _User, active_from: int) -> None:
        """Breaks start at random (Poisson) while the user is active."""
        per_day = self.breaks_per_day[user.segment]
        if per_day > 0:
            user.break_at = active_from + self.rng.expovariate(per_day) * DAY_MS
            user.break_days = self.rng.uniform(*BREAK_DAYS)

    def _schedule_reactivation(self, user: _User, now: int) -> None:
        user.action = REACTIVATE
        if self.reactivation_per_day > 0:  # else gone for good
            self._push(now + 1 + int(self.rng.expovariate(self.reactivation_per_day) * DAY_MS), user.index)

    def _schedule_arrival(self, now: int) -> None:
        """The next new customer: Poisson arrivals at the rate customers leave, less the rate churned ones come
        back, following the traffic cycle (thinning, as sessions)."""
        if not self.leaving_per_ms or len(self.users) >= SCENARIO:
            return
        rate, when = self.leaving_per_ms * self._cycle_max, now
        net = max(0.0, 1 - REACTIVATION_PER_DAY / DAY_MS * self.dormant / self.leaving_per_ms)
        while True:
            when += 1 + int(self.rng.expovariate(rate))
            if self._random() < self._cycle(when) / self._cycle_max * net:
                self._push(when, ARRIVAL)
                return

    # what happens between sessions ------------------------------------------------------------------
    def _begin(self, user: _User, now: int) -> list | None:
        """The user's heap entry came due outside a session: the steps of the session it starts, or None."""
        if user.action == FADE_END:
            if self._random() < self._churn_chance(user):
                user.state = DORMANT
                self.dormant += 1
                if user.episodes is None:
                    user.episodes = []
                user.episodes.append([now, None])
                self._schedule_reactivation(user, now)
                if self._truth is not None:
                    self._note_truth(now, user, "churned", episode=len(user.episodes))
            else:  # partial churn: fewer visits from now on, not none
                self.partial_declines += 1
                if self._truth is not None:
                    self._note_truth(now, user, "settled")
                user.state = ENGAGED
                user.rate *= self.rng.uniform(*PARTIAL_LEVEL)
                self._plan_decline(user, now)
                self._schedule_session(user, now)
            return None
        if user.action == REACTIVATE:  # back after churning: a visit now, and a clean slate
            user.state = ENGAGED
            self.dormant -= 1
            user.episodes[-1][1] = now
            self._plan_decline(user, now)
            self._plan_break(user, now)
            if self._truth is not None:
                self._note_truth(now, user, "returned", episode=len(user.episodes))
        return self._plan(user, now)

    def _churn_chance(self, user: _User) -> float:
        """The chance that a decline ending now ends in churn (not settling lower)."""
        return self.full_churn

    def _control(self, index: int, now: int) -> None:
        """A heap entry that is not a customer's came due: the next newcomer (ARRIVAL); a scenario's moment is a
        scenario shop's (shopsim.scenarios)."""
        self._arrive(now)

    def _arrive(self, now: int) -> None:
        user = self._new_user(self._next_user_id, now, self._arrival_cdf)
        self._next_user_id += 1
        self._start_user(user, now, stationary=False)
        self._schedule_arrival(now)
        if self._truth is not None:
            self._note_truth(now, user, "joined")

    def _plan(self, user: _User, now: int) -> list:
        """The steps of a session starting now: a single bounce, or views of products (a few in focus,
        others popular) with some added to the cart after their view and, maybe, a checkout at the end."""
        r, products, cdf, total = self._random, self._products, self._product_cdf, self._product_total
        f = self._session_funnel(user, now)
        user.sessions += 1
        user.session_start = now
        user.outcome = BROWSED
        session_id = f"{user.user_id}-{user.sessions}"
        tail = session_fields(session_id)
        # Products drawn inline (bisect on the popularity CDF): a method call per product was a tenth of the cost.
        focus = [products[bisect.bisect_right(cdf, r() * total)] for _ in range(1 + int(r() * 3))]
        if r() < f.bounce:
            user.plan = plan = [("bounce", focus[0], tail)]
            return plan
        depth = user.depth if f.views == self.funnel.views else user.depth * (f.views - 1) / (self.funnel.views - 1)
        views = 1 + int(math.log(1.0 - r()) / math.log(1 - 1 / (1 + depth))) if depth > 0 else 1
        views = max(views, self._least_views(user))
        in_focus = len(focus)
        viewed = [focus[int(r() * in_focus)] if r() < 0.6 else products[bisect.bisect_right(cdf, r() * total)]
                  for _ in range(views)]
        if not (f.cart and r() < f.cart):
            user.plan = plan = [("product_view", p, tail) for p in reversed(viewed)]
            return plan
        items = self._items(user, f)
        added = set(self.rng.sample(range(views), min(items, views)))
        plan = []
        for i, p in enumerate(viewed):
            plan.append(("product_view", p, tail))
            if i in added:
                plan.append(("add_to_cart", p, tail))
        user.outcome = ABANDONED
        if self._checks_out(user, f):
            cart = [viewed[i] for i in sorted(added)]
            value = self._order_value(cart)
            plan.append(("checkout", cart[0], session_fields(session_id, value, len(cart))))
            user.outcome = PURCHASED
        plan.reverse()  # the hot path pops steps off the end
        user.plan = plan
        return plan

    def _session_funnel(self, user: _User, now: int) -> Funnel:
        """How a session of the user's starting now goes: the shop's funnel for them (_funnel), faded as far as
        their decline has gone."""
        fade = (now - user.fade_start) / (user.fade_end - user.fade_start) if user.state == FADING else 0.0
        return self._funnel(user, fade)

    def _funnel(self, user: _User, fade: float) -> Funnel:
        """The generic shop's: the funnel of the user's segment, faded by fade in [0, 1]."""
        return self._segment_funnel(user.segment, fade) if fade else self._funnels[user.segment]

    # What a session's steps are drawn from; a twin draws its orders from the shop's own figures instead.
    def _least_views(self, user: _User) -> int:
        return 1

    def _items(self, user: _User, f: Funnel) -> int:
        return 1 + int(math.log(1.0 - self._random()) / math.log(1 - 1 / f.items)) if f.items > 1 else 1

    def _checks_out(self, user: _User, f: Funnel) -> bool:
        return self._random() < f.checkout

    def _order_value(self, cart: list[str]) -> float:
        return round(sum(self._price(p) for p in cart), 2)

    def _end_session(self, user: _User, now: int, completed: bool) -> None:
        """Friction from how the session went (and so the churn hazard); the next session."""
        outcome = user.outcome if completed or user.outcome != PURCHASED else ABANDONED
        user.plan = None
        if outcome != BROWSED:
            user.friction += ((outcome == ABANDONED) - user.friction) / FRICTION_MEMORY
            if user.state == ENGAGED:
                self._plan_decline(user, now)
        self._schedule_session(user, now)

    def _price(self, product: str) -> float:
        """A product's stable price: log-normal (median 25, most between 5 and 130), from its id alone."""
        price = self._prices.get(product)
        if price is None:
            u = ((int(product) * 2654435761 + 12345) % 2**32 + 0.5) / 2**32
            price = self._prices[product] = round(25 * math.exp(statistics.NormalDist().inv_cdf(u)), 2)
        return price

    # the events ------------------------------------------------------------------------------------
    def peek_ms(self) -> int | None:
        """Simulated time of the next thing that happens (an event, or a change a user goes through)."""
        return self._heap[0] // HEAP_SLOTS if self._heap else None

    def next_event(self) -> tuple[int, bytes, bytes]:
        """(epoch ms, key, value) of the next event in time order (see take)."""
        return self.take(1, math.inf)[0]

    def take(self, n: int, until_ms: float) -> list[tuple[int, bytes, bytes]]:
        """The next events in time order, at most n and none later than until_ms: a list of
        (epoch ms, key, value). The value is the event as compact JSON, byte-identical to
        json.dumps(event, separators=(",", ":")), built without a dict (json.loads(value) gives it).
        When simulated time passes the churn cut-off, every user's state is noted for the labels."""
        cutoff = self.cutoff_ms
        if cutoff is None or until_ms < cutoff:
            return self._take(n, until_ms)
        out = self._take(n, cutoff - 1)
        if len(out) < n and (not self._heap or self._heap[0] >= cutoff * HEAP_SLOTS):
            self._note_cutoff(cutoff)
            out += self._take(n - len(out), until_ms)
        return out

    def _take(self, n: int, until_ms: float) -> list[tuple[int, bytes, bytes]]:
        """take()'s hot path: batches, everything bound to locals, and the value's pieces made beforehand
        (per user, per session, tables) and joined by event_text rather than numbers formatted."""
        heap, users, random, gaps = self._heap, self.users, self._random, self._gaps
        minutes_text, max_session = self._minutes_text, self._max_session_ms
        timestamp, text = self._timestamp, event_text
        # Heap entries from this one on are later than until_ms: compared without dividing each.
        beyond = math.inf if until_ms == math.inf else (math.floor(until_ms) + 1) * HEAP_SLOTS
        out = []
        append = out.append
        while n > 0:
            if not heap or heap[0] >= beyond:
                break
            now, index = divmod(heappop(heap), HEAP_SLOTS)
            if index >= SCENARIO:
                self._control(index, now)
                continue
            user = users[index]
            plan = user.plan
            if plan is None:
                plan = self._begin(user, now)
                if plan is None:
                    continue
                if user.first_ms < 0:
                    user.first_ms = now
            event_type, product, fields = plan.pop()
            if user.mine:
                n -= 1
                append((now, user.key, text(user.user_text, event_type, timestamp(now), product,
                                            minutes_text[(now - user.session_start) // 600], fields).encode()))
            if plan:
                when = now + gaps[int(random() * 1024)]
                if when - user.session_start <= max_session:  # a session ends at its maximum length
                    heappush(heap, when * HEAP_SLOTS + index)
                    continue
                self._end_session(user, now, completed=False)
            else:
                self._end_session(user, now, completed=True)
        return out

    # the ground truth ------------------------------------------------------------------------------
    def _note_cutoff(self, cutoff: int) -> None:
        """At the cut-off T: who is eligible for the benchmark (active before T, not churned at T), and the
        oracle's probability that they churn within the horizon, from their latent state at T."""
        self.cutoff_ms = None
        horizon = self.horizon_ms
        fade_median = self.fade_days_median * DAY_MS
        for user in self.users:
            if user.state == DORMANT or not 0 <= user.first_ms < cutoff:
                user.at_cutoff = (False, None)
                continue
            if user.state == FADING and user.fade_start <= cutoff:
                elapsed = cutoff - user.fade_start
                done = _lognormal_cdf(elapsed, fade_median, FADE_SPREAD)
                p = (_lognormal_cdf(elapsed + horizon, fade_median, FADE_SPREAD) - done) / max(1e-12, 1 - done)
            else:
                hazard, steps = self._hazard(user), 28
                p = sum(hazard * math.exp(-hazard * (i + 0.5) * horizon / steps) * horizon / steps
                        * _lognormal_cdf(horizon - (i + 0.5) * horizon / steps, fade_median, FADE_SPREAD)
                        for i in range(steps))
            user.at_cutoff = (True, round(self.full_churn * p, 6))
        self._cutoff_noted = cutoff

    def record_truth(self) -> None:
        """From now on, note each change of a user's hidden state for truth(): `joined`, `decline_started`,
        `churned`, `returned`, `settled` (a decline that ended without churning). The customers there are now
        come first, as `present` with their state (engaged, declining or churned)."""
        self._truth, self._truth_seq, self._truth_time = [], 0, TimestampFormatter()
        now = self.start_ms  # called before the first take()
        fmt = self._truth_time
        for user in self.users:
            if user.state == DORMANT:
                self._note_truth(now, user, "present", state="churned")
            elif user.state == FADING and user.fade_start <= now:
                self._note_truth(now, user, "present", state="declining", since=fmt(user.fade_start),
                                 ends=fmt(user.fade_end))
            else:
                self._note_truth(now, user, "present", state="engaged")
                if user.state == FADING:  # a decline planned before now, when their first visit was
                    self._note_truth(user.fade_start, user, "decline_started", ends=fmt(user.fade_end))

    def _note_truth(self, when: int, user: _User, kind: str, **extra: Any) -> None:
        if user.mine:
            self._truth_seq += 1  # ties keep the order they were noted in
            heappush(self._truth, (when, self._truth_seq, user.user_id, kind, user.segment, extra))

    def truth(self, until_ms: float) -> list[tuple[int, bytes, bytes]]:
        """The changes noted (record_truth) that happened up to until_ms, in time order, as (epoch ms, key,
        JSON value): {"user_id", "kind", "time", "segment"} and, for churned and returned, "episode" (the
        churn episode's number in the labels, from 1); for present, "state"; for a decline, when it "ends" (in
        churn or settled: the hidden state knows when, not which). A decline is decided when the user's next
        visit is planned, ahead of its moment: it waits here until simulated time reaches it."""
        pending, out, fmt = self._truth, [], self._truth_time
        while pending and pending[0][0] <= until_ms:
            when, _, user_id, kind, segment, extra = heappop(pending)
            if user_id is None:  # a scenario's own row (shopsim.scenarios), keyed by its name
                row = {"kind": kind, "time": fmt(when)} | extra
                key = extra["scenario"].encode()
            else:
                row = {"user_id": user_id, "kind": kind, "time": fmt(when), "segment": segment} | extra
                key = record_key(user_id)
            out.append((when, key, json.dumps(row, separators=(",", ":")).encode()))
        return out

    def labels(self, end_ms: int) -> Iterator[dict[str, Any]]:
        """Ground truth, kept out of the events: one row per user who had joined by end_ms (a generator: a
        million rows at once would double the memory)."""
        fmt = TimestampFormatter()
        cutoff = self._cutoff_noted
        for u in self.users:
            if not u.mine or u.joined_ms is not None and u.joined_ms > end_ms:
                continue
            episodes = [(c, b if b is not None and b <= end_ms else None) for c, b in (u.episodes or ()) if c <= end_ms]
            row = {"user_id": u.user_id, "segment": u.segment,
                   "joined": fmt(u.joined_ms) if u.joined_ms is not None else None,
                   "churned": bool(episodes) and episodes[-1][1] is None,
                   "churn_time": fmt(episodes[-1][0]) if episodes else None,
                   "episodes": [[fmt(c), fmt(b) if b is not None else None] for c, b in episodes]}
            if cutoff is not None:
                eligible, oracle = u.at_cutoff or (False, None)
                complete = cutoff + self.horizon_ms <= end_ms
                row.update(cutoff=fmt(cutoff), horizon_days=self.horizon_ms / DAY_MS, eligible=eligible,
                           churned_in_horizon=(any(cutoff < c <= cutoff + self.horizon_ms for c, _ in episodes)
                                               if eligible and complete else None),
                           oracle=oracle if eligible else None)
            yield row



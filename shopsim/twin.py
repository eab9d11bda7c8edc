"""A real shop's twin: its profile (fitted by calibrate.py from an export) and the simulator that runs it.

The twin is the generic shop's simulator with the shop's fitted figures (docs/twin.md).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import random
from dataclasses import dataclass, replace
from typing import Any, Callable

from .events import TimestampFormatter, parse_time, parse_timezone, record_key
from .figures import (DAY_MS, DEFAULT_FUNNEL, DEPTH_SPREAD, FADE_BOUNCE, FADE_FUNNEL, HOUR_MS, MAX_SIMULATED_USERS,
                      SEGMENTS, WEEK_MS, Funnel)
from .sessions import ARRIVAL, PURCHASED, REACTIVATE, SCENARIO, START, SessionSimulator, _User, _with_odds

SHOP_PROFILE_VERSION = 1
TWIN_SEGMENTS = (("loyal", 0.3), ("casual", 0.7), ("at_risk", 0.9), ("churning", 1.0))  # by decline-rate quantile


@dataclass(frozen=True)
class ShopProfile:
    """A shop fitted from its export by calibrate.py (docs/twin.md documents the JSON, version 1).

    Customers arrive over the span as the export's did (a cohort, or sign-ups through the year); each has an order
    rate and a rate of starting to decline, both gamma-distributed across customers (heavy-tailed activity,
    heterogeneous retention, as in the Pareto/NBD model of Schmittlein, Morrison and Colombo 1987); a decline
    fades their visits over a few weeks and ends in churn or a lower level, as in sessions mode. Orders draw their
    items and value from the shop's own distributions, and sessions follow the shop's hourly and weekly cycle.
    """

    customers: int  # simulated: the customers of the start and the newcomers of the span (not all buy in it)
    span_start_ms: int
    span_end_ms: int
    timezone: str
    existing_customers: int  # customers at the start of the span (a standing base), the rest arrive in it
    arrival_weeks: tuple[float, ...]  # relative number of newcomers in each week of the span
    arrivals_after_per_day: float  # newcomers per day after the span, per customer of the profile
    first_visit_orders: bool  # an orders export knows a customer from their first order: that visit buys
    activity_shape: float  # orders per day of a customer: gamma(shape, scale)
    activity_scale: float
    decline_shape: float  # chance per day that an engaged customer starts to decline: gamma(shape, scale)
    decline_scale: float
    fade_days_median: float
    full_churn: float
    reactivation_per_day: float
    sessions_per_order: float
    bounce: float
    views: float
    abandoned_carts_per_order: float
    items: tuple[float, ...]  # share of orders with 1, 2, ... items; the last: that many or more
    value_quantiles: tuple[tuple[float, ...], ...]  # order value quantiles for 1, 2, ... items; the last: or more
    hourly: tuple[float, ...]
    weekday: tuple[float, ...]
    products: int | None = None
    zipf_exponent: float | None = None
    # month-of-year factors (January first) on every customer's order rate, and on the newcomers after the span;
    # None: no season (fitted from 455 days of history or more: calibrate.py fit_season)
    season: tuple[float, ...] | None = None
    arrival_season: tuple[float, ...] | None = None

    def to_json(self, **extra: Any) -> dict[str, Any]:
        fmt = TimestampFormatter()
        return {"version": SHOP_PROFILE_VERSION, **extra,
                "span": {"start": fmt(self.span_start_ms), "end": fmt(self.span_end_ms), "timezone": self.timezone},
                "customers": self.customers,
                "arrivals": {"existing_customers": self.existing_customers, "week_weights": list(self.arrival_weeks),
                             "after_span_per_customer_day": self.arrivals_after_per_day,
                             "first_visit_orders": self.first_visit_orders},
                "activity": {"orders_per_day": {"gamma_shape": self.activity_shape,
                                                "gamma_scale": self.activity_scale}},
                "retention": {"decline_per_day": {"gamma_shape": self.decline_shape,
                                                  "gamma_scale": self.decline_scale},
                              "fade_days_median": self.fade_days_median, "full_churn": self.full_churn,
                              "reactivation_per_day": self.reactivation_per_day},
                "funnel": {"sessions_per_order": self.sessions_per_order, "bounce": self.bounce,
                           "views_per_engaged_session": self.views,
                           "abandoned_carts_per_order": self.abandoned_carts_per_order},
                "orders": {"items": list(self.items), "value_quantiles": [list(q) for q in self.value_quantiles]},
                "cycle": {"hourly": list(self.hourly), "weekday": list(self.weekday)},
                "products": None if self.products is None else {"count": self.products,
                                                                 "zipf_exponent": self.zipf_exponent},
                "season": None if self.season is None else {
                    "order_rate_by_month": list(self.season),
                    "newcomers_by_month": list(self.arrival_season or (1.0,) * 12)}}

    @classmethod
    def from_json(cls, doc: Any) -> "ShopProfile":
        """The profile in a parsed JSON document; ValueError naming the first field that is wrong."""
        def get(path: str, check: Callable[[Any], bool] = lambda v: isinstance(v, (int, float)) and v >= 0,
                accepted: str = "a number >= 0") -> Any:
            value: Any = doc
            for part in path.split("."):
                if not isinstance(value, dict) or part not in value:
                    raise ValueError(f"'{path}' is missing; expected {accepted} (see docs/twin.md)")
                value = value[part]
            if isinstance(value, bool) and accepted != "true or false" or not check(value):
                raise ValueError(f"'{path}' is {json.dumps(value)[:40]}; expected {accepted}")
            return value

        def numbers(n: int | None, positive: bool = False) -> Callable[[Any], bool]:
            return lambda v: (isinstance(v, list) and bool(v) and (n is None or len(v) == n)
                              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in v)
                              and (not positive or sum(v) > 0))

        if not isinstance(doc, dict):
            raise ValueError("is not a JSON object; expected a shop profile written by calibrate.py")
        if doc.get("version") != SHOP_PROFILE_VERSION:
            raise ValueError(f"version {doc.get('version')!r} is not supported; expected version "
                             f"{SHOP_PROFILE_VERSION} (write it again with this calibrate.py)")
        positive = lambda v: isinstance(v, (int, float)) and v > 0  # noqa: E731
        share = lambda v: isinstance(v, (int, float)) and 0 <= v <= 1  # noqa: E731
        start, end = (get(f"span.{k}", lambda v: isinstance(v, str), "an ISO 8601 date-time") for k in ("start", "end"))
        try:
            start_ms, end_ms = parse_time(start), parse_time(end)
        except ValueError as exc:
            raise ValueError(f"'span': {exc}") from None
        if start_ms is None or end_ms is None or end_ms <= start_ms:
            raise ValueError("'span.end' is not after 'span.start'; expected a span of at least a day")
        timezone = get("span.timezone", lambda v: isinstance(v, str), "an IANA time zone")
        parse_timezone(timezone)
        quantiles = get("orders.value_quantiles", lambda v: isinstance(v, list) and bool(v) and all(
            numbers(None)(q) and len(q) >= 2 and q == sorted(q) for q in v), "lists of increasing quantiles")
        items = get("orders.items", numbers(None, positive=True), "shares of orders by items")
        products = doc.get("products")
        season = doc.get("season")  # optional: profiles written before seasons have none
        month_factors = numbers(12, positive=True)
        return cls(
            customers=get("customers", lambda v: isinstance(v, int) and 1 <= v <= MAX_SIMULATED_USERS,
                          f"a whole number from 1 to {MAX_SIMULATED_USERS}"),
            span_start_ms=start_ms, span_end_ms=end_ms, timezone=timezone,
            existing_customers=get("arrivals.existing_customers", lambda v: isinstance(v, int) and v >= 0,
                                   "a whole number >= 0"),
            arrival_weeks=tuple(get("arrivals.week_weights", numbers(None), "weekly weights")),
            arrivals_after_per_day=get("arrivals.after_span_per_customer_day"),
            first_visit_orders=get("arrivals.first_visit_orders", lambda v: isinstance(v, bool), "true or false"),
            activity_shape=get("activity.orders_per_day.gamma_shape", positive, "a number > 0"),
            activity_scale=get("activity.orders_per_day.gamma_scale", positive, "a number > 0"),
            decline_shape=get("retention.decline_per_day.gamma_shape", positive, "a number > 0"),
            decline_scale=get("retention.decline_per_day.gamma_scale", positive, "a number > 0"),
            fade_days_median=get("retention.fade_days_median", positive, "days > 0"),
            full_churn=get("retention.full_churn", share, "a share from 0 to 1"),
            reactivation_per_day=get("retention.reactivation_per_day"),
            sessions_per_order=get("funnel.sessions_per_order", lambda v: isinstance(v, (int, float)) and v >= 1,
                                   "a number >= 1"),
            bounce=get("funnel.bounce", lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a share below 1"),
            views=get("funnel.views_per_engaged_session", lambda v: isinstance(v, (int, float)) and v >= 1,
                      "a number >= 1"),
            abandoned_carts_per_order=get("funnel.abandoned_carts_per_order"),
            items=tuple(items), value_quantiles=tuple(tuple(q) for q in quantiles),
            hourly=tuple(get("cycle.hourly", numbers(24, positive=True), "24 relative values")),
            weekday=tuple(get("cycle.weekday", numbers(7, positive=True), "7 relative values, Monday first")),
            products=None if products is None else get("products.count", lambda v: isinstance(v, int) and v >= 1,
                                                        "a whole number >= 1"),
            zipf_exponent=None if products is None else get("products.zipf_exponent"),
            season=None if season is None else tuple(
                get("season.order_rate_by_month", month_factors, "12 factors, January first")),
            arrival_season=None if season is None else tuple(
                get("season.newcomers_by_month", month_factors, "12 factors, January first")))


def load_shop_profile(path: str) -> ShopProfile:
    """The profile in a file written by calibrate.py; ValueError in one line when it cannot be used."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read '{path}' ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"'{path}' is not JSON ({exc}); expected a shop profile written by calibrate.py") from None
    try:
        return ShopProfile.from_json(doc)
    except ValueError as exc:
        raise ValueError(f"'{path}': {exc}") from None


class TwinSimulator(SessionSimulator):
    """Sessions mode with a ShopProfile: the same customers' lives, sessions and events, with the shop's figures.

    A standing base's customers are there from the start, in the middle of their lives (an export's first sight of
    them is their first order in it); a newcomer arrives when the export first saw them (an orders export: with an
    order). Their sessions start at
    their order rate times the shop's sessions per order, each a purchase with one chance in sessions per order
    (less during a decline, as sessions mode lowers a fading user's conversion), so that orders are a Poisson
    process at the customer's order rate. A purchase draws its items and value from the shop's distributions;
    other sessions bounce, browse or abandon a cart at the shop's rates. Segments name customers by how fast
    they are likely to decline (the slowest 30% loyal, the fastest 10% churning); labels and churn episodes are
    sessions mode's.

    orders_only: each order is one checkout event with no value, other sessions nothing (calibrate.py fits a
    profile on these: the same order process as the whole stream, with a fortieth of the events).
    """

    # No friction and no breaks: the fitted decline and order rates already hold the shop's retention and quiet spells.
    friction_weight = 0.0
    breaks_per_day = dict.fromkeys(SEGMENTS, 0.0)

    def __init__(self, *, profile: ShopProfile, orders_only: bool = False, **settings: Any) -> None:
        self.profile = profile
        self.orders_only = orders_only
        self.full_churn, self.fade_days_median = profile.full_churn, profile.fade_days_median
        self.reactivation_per_day = profile.reactivation_per_day
        self._per_order = 1.0 if self.orders_only else profile.sessions_per_order
        self._buy_share = 1 / profile.sessions_per_order
        self._items_cdf = list(itertools.accumulate(profile.items))
        self._purchase = False
        self._comeback = False  # the session being planned is a churned customer's return
        self._order_items = 1
        rng = random.Random(0)  # the decline-rate quantiles that name the segments, the same for every seed
        draws = sorted(rng.gammavariate(profile.decline_shape, profile.decline_scale) for _ in range(4000))
        self._segment_bounds = [draws[int(q * 4000) - 1] for _, q in TWIN_SEGMENTS[:-1]]
        if profile.season:  # the shop's traffic with the month's factor: sessions (orders) and newcomers follow it
            self._season_cache: dict[int, float] = {}  # hour -> traffic with the season
            self._months: dict[int, int] = {}  # hour -> local month 0-11
            self._cycle = self._seasonal_traffic  # type: ignore[method-assign]
        super().__init__(hourly=profile.hourly, weekday=profile.weekday, **settings)

    def _calibrate(self, weights: dict[str, float] | None, segment_mix: dict[str, float]) -> None:
        p = self.profile
        browsing = max(p.sessions_per_order - 1, 1e-9) * (1 - p.bounce)  # engaged sessions without an order
        self.funnel = Funnel(bounce=p.bounce, views=p.views, cart=min(1.0, p.abandoned_carts_per_order / browsing),
                             items=DEFAULT_FUNNEL.items, checkout=0.0)
        self._buying = replace(self.funnel, bounce=0.0, cart=1.0, checkout=1.0)
        self.expected_mix = {}

    def _segment_funnel(self, segment: str, fade: float) -> Funnel:
        s = self.signal * fade  # every segment browses alike: the twin's segments are names, not funnels
        f = self.funnel
        return replace(f, bounce=_with_odds(f.bounce, 1 + FADE_BOUNCE * s), views=1 + (f.views - 1) * (1 - FADE_FUNNEL * s),
                       cart=f.cart * (1 - FADE_FUNNEL * s))

    # the season ----------------------------------------------------------------------------------
    def _seasonal_traffic(self, when: int) -> float:
        """The shop's traffic at this time (sessions mode's hour and weekday) times the month's factor on order
        rates: every customer's sessions, so their orders, follow it (cached per hour; one call deep: it is
        called for every candidate session start)."""
        factor = self._season_cache.get(when // HOUR_MS)
        return self._season_of_hour(when)[0] if factor is None else factor

    def _season_of_hour(self, when: int) -> tuple[float, int]:
        """(the traffic with the season, the local month 0-11) of this time's hour, cached."""
        from datetime import datetime

        hour = when // HOUR_MS
        month = datetime.fromtimestamp(min(hour, 2_000_000) * 3600, self._timezone).month - 1
        self._months[hour] = month
        factor = self._season_cache[hour] = SessionSimulator._cycle(self, when) * self.profile.season[month]
        return factor, month

    def _month(self, when: int) -> int:
        """The shop's local month (0-11) of this time."""
        month = self._months.get(when // HOUR_MS)
        return self._season_of_hour(when)[1] if month is None else month

    # the population ------------------------------------------------------------------------------
    def _populate(self, user_id_range: tuple[int, int], start_ms: int) -> None:
        """USER_ID_RANGE customers (the profile's count, or a multiple: the shop at another scale): the standing
        base's at the start, the others arriving over the span as the export's did; after it, newcomers at the
        rate of its last weeks."""
        p, r = self.profile, self._random
        self._traffic_peak = self._cycle_max  # the hour's and weekday's, for the arrivals in the span
        if p.season:  # thinning draws against the true peak: the season's times the week's
            self._cycle_max *= max(p.season)
            self._session_peak = self._cycle_max
        lo, hi = user_id_range
        existing = min(hi - lo + 1, round(p.existing_customers * (hi - lo + 1) / p.customers))
        for user_id in range(lo, lo + existing):
            user = self._new_user(user_id, None, self._segment_cdf)
            self._plan_decline(user, start_ms)
            self._schedule_session(user, start_ms)  # their next visit, as any other of their stream of visits
        self._next_user_id = lo + existing
        span = p.span_end_ms - p.span_start_ms
        cdf = list(itertools.accumulate(p.arrival_weeks))
        arrivals = []
        for _ in range(hi - lo + 1 - existing if cdf[-1] > 0 else 0):
            week = bisect.bisect_right(cdf, r() * cdf[-1])
            begin = week * WEEK_MS
            arrivals.append(self._cycled(start_ms + begin, start_ms + min(begin + WEEK_MS, span)))
        arrivals.sort(reverse=True)
        self._arrivals, self._arriving = arrivals, len(arrivals)  # the first is in the heap from now on
        self._span_end = start_ms + span
        self.leaving_per_ms = p.arrivals_after_per_day * (hi - lo + 1) / DAY_MS  # the newcomers after the span
        self._schedule_arrival(start_ms)

    def _cycled(self, begin: int, end: int) -> int:
        """A time in [begin, end) that follows the shop's daily and weekly cycle (thinning; the week's arrivals are
        the export's, so without the season)."""
        r, peak = self._random, self._traffic_peak
        cycle = functools.partial(SessionSimulator._cycle, self)
        while True:
            when = begin + int(r() * (end - begin))
            if r() * peak < cycle(when):
                return when

    def _schedule_arrival(self, now: int) -> None:
        if self._arrivals:
            self._push(self._arrivals.pop(), ARRIVAL)
        elif self.leaving_per_ms and len(self.users) < SCENARIO:
            when = max(now, self._span_end)
            newcomers = self.profile.arrival_season
            if not self.profile.season or not newcomers:
                traffic, peak = self._cycle, self._cycle_max
            else:  # their own season, not the order rates'
                peak = self._traffic_peak * max(newcomers)
                traffic = lambda t: SessionSimulator._cycle(self, t) * newcomers[self._month(t)]  # noqa: E731
            while True:
                when += 1 + int(self.rng.expovariate(self.leaving_per_ms * peak))
                if self._random() * peak < traffic(when):
                    self._push(when, ARRIVAL)
                    return

    def _new_user(self, user_id: int, joined_ms: int | None, segment_cdf: list[float]) -> _User:
        p, rng = self.profile, self.rng
        orders_per_day = max(1e-9, rng.gammavariate(p.activity_shape, p.activity_scale))
        decline_per_day = max(1e-12, rng.gammavariate(p.decline_shape, p.decline_scale))
        segment = TWIN_SEGMENTS[bisect.bisect_right(self._segment_bounds, decline_per_day)][0]
        depth = (self.funnel.views - 1) * rng.lognormvariate(-DEPTH_SPREAD ** 2 / 2, DEPTH_SPREAD)
        mine = self.shard is None or user_id % self.shard[1] == self.shard[0]
        user = _User(user_id, len(self.users), segment, record_key(user_id), str(user_id), mine,
                     orders_per_day * self._per_order / DAY_MS, depth, decline_per_day / DAY_MS, joined_ms)
        self.users.append(user)
        return user

    def _start_user(self, user: _User, now: int, stationary: bool) -> None:
        """A newcomer: their first visit now, their decline planned from their own rate."""
        self._plan_decline(user, now)
        user.action = START
        self._push(now, user.index)

    def _begin(self, user: _User, now: int) -> list | None:
        self._comeback = user.action == REACTIVATE
        return super()._begin(user, now)

    def describe(self, segment_mix: str) -> str:
        return (f"the twin of a shop (SHOP_PROFILE): {len(self.users)} customers at the start and "
                f"{self._arriving} arriving as the export's did")

    def expected_events_per_second(self) -> float:
        """The average pace over the span, from the profile's means (the customers arrive as it goes)."""
        p = self.profile
        orders = p.customers * p.activity_shape * p.activity_scale * (p.span_end_ms - p.span_start_ms) / DAY_MS / 2
        per_session = p.bounce + (1 - p.bounce) * p.views * 1.2
        return 1000 * orders * p.sessions_per_order * per_session / (p.span_end_ms - p.span_start_ms)

    # sessions --------------------------------------------------------------------------------------
    def _funnel(self, user: _User, fade: float) -> Funnel:
        """Decides whether this session buys (the first visit of an orders export's customer always does)."""
        r = self._random
        buys = (1 - FADE_FUNNEL * self.signal * fade) * (1.0 if self.orders_only else self._buy_share)
        first = user.sessions == 0 and user.joined_ms is not None
        if first or self._comeback:  # a visit on its own, not one of the stream of sessions: it buys as any one
            # session does (in orders alone too), except an orders export's newcomer's first, which buys
            buys = 1.0 if first and self.profile.first_visit_orders else self._buy_share
            self._comeback = False
        self._purchase = r() < buys
        if self._purchase:
            self._order_items = 1 + bisect.bisect_right(self._items_cdf, r() * self._items_cdf[-1])
        if not fade:
            return self._buying if self._purchase else self._funnels[user.segment]
        browsing = self._segment_funnel(user.segment, fade)
        return replace(self._buying, views=browsing.views) if self._purchase else browsing

    def _plan(self, user: _User, now: int) -> list | None:
        if not self.orders_only:
            return super()._plan(user, now)
        self._session_funnel(user, now)
        user.sessions += 1
        if not self._purchase:  # a visit without an order: nothing to show in orders alone
            self._schedule_session(user, now)
            return None
        user.session_start = now
        user.plan = plan = [("checkout", "0", "")]
        return plan

    def _least_views(self, user: _User) -> int:
        return self._order_items if self._purchase else 1

    def _items(self, user: _User, f: Funnel) -> int:
        return self._order_items if self._purchase else super()._items(user, f)

    def _checks_out(self, user: _User, f: Funnel) -> bool:
        return self._purchase

    def _order_value(self, cart: list[str]) -> float:
        """The shop's order value for this many items: its quantiles, interpolated."""
        quantiles = self.profile.value_quantiles[min(len(cart), len(self.profile.value_quantiles)) - 1]
        at = self._random() * (len(quantiles) - 1)
        i = int(at)
        low = quantiles[i]
        return round(low + (quantiles[min(i + 1, len(quantiles) - 1)] - low) * (at - i), 2)

    def _end_session(self, user: _User, now: int, completed: bool) -> None:
        if not completed and user.outcome == PURCHASED:  # at its maximum length a buying session still buys:
            user.plan = user.plan[:1]  # its checkout comes at that length (the export has every order)
            self._push(user.session_start + int(self._max_session_ms), user.index)
            return
        user.plan = None
        self._schedule_session(user, now)



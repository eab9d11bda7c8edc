"""What if…: incidents, drift and data faults, injected into the shop, with their ground truth.

A scenarios file (TOML, docs/scenarios.md) names scenarios, each with a kind, a window, whom it touches and its
strength. `load_scenarios` reads and checks it: every error is one ScenarioError line naming the scenario, the
field and what is accepted.

Two kinds of scenario, two places:
- **behaviour** (payment_outage, price_rise, competitor_launch, acquisition_campaign, seasonal_peak,
  retention_offer) change how the customers live: `scenario_shop(SimulatorClass)` is that simulator with the
  scenarios acting through its hooks (the chance of starting to decline, checkouts, the churn at a decline's end,
  the traffic, the newcomers), for the generic shop and a twin alike;
- **data faults** (tracking_outage, late_events, duplicates, bots) change the stream, not the customers:
  `StreamFaults` drops, holds back, repeats and adds records (random mode too).

Both note their truth: `scenario_started` / `scenario_ended`, `scenario_touched` when a scenario first touches a
customer, `cause` on every `decline_started` and `churned`, and per customer what a data fault did to their events.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import heapq
import json
import math
import random
import re
import statistics
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .events import TimestampFormatter, event_text, record_key, session_fields
from .figures import DAY_MS, HOUR_MS, SEGMENTS, WEEK_MS
from .sessions import ABANDONED, ENGAGED, FADING, SCENARIO, SessionSimulator, _User

__all__ = ["BEHAVIOUR", "DATA_FAULTS", "KINDS", "Scenario", "ScenarioError", "StreamFaults", "load_scenarios",
           "parse_scenarios", "scenario_shop"]

BEHAVIOUR = ("payment_outage", "price_rise", "competitor_launch", "acquisition_campaign", "seasonal_peak",
             "retention_offer")
DATA_FAULTS = ("tracking_outage", "late_events", "duplicates", "bots")
FOREVER = math.inf
_MASK64 = (1 << 64) - 1
_NORMAL = statistics.NormalDist()
_DECLINE_KINDS = ("payment_outage", "price_rise", "competitor_launch", "acquisition_campaign")


class ScenarioError(ValueError):
    """One line: the scenario, the field, what is accepted."""


# --- the file ----------------------------------------------------------------------------------------------

_UNITS = {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": DAY_MS, "w": WEEK_MS}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
DURATION_ACCEPTED = "a duration such as 90m, 36h, 3d or 2w (s, m, h, d, w)"
TIME_ACCEPTED = ("an ISO 8601 date-time (2026-03-20T00:00:00Z; no zone means UTC) or a time after the run's start "
                 "such as +3d or +90m")
ON_DEMAND = "on_demand"  # a start: when told (the producer's scenario control endpoint), until told to stop


def parse_duration(text: str) -> int:
    """'90m' -> milliseconds; ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(DURATION_ACCEPTED)
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _time(value: Any) -> tuple[str, int]:
    """A scenario's time: ("at", epoch ms) or ("after", ms after the run's start)."""
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
        return "at", int(when.timestamp() * 1000)
    if isinstance(value, dt.date):
        return "at", int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    if not isinstance(value, str):
        raise ValueError(TIME_ACCEPTED)
    text = value.strip()
    if text.startswith("+"):
        try:
            return "after", parse_duration(text[1:])
        except ValueError:
            raise ValueError(TIME_ACCEPTED) from None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(TIME_ACCEPTED) from None
    return _time(when)


def _number(lo: float, hi: float, accepted: str, integer: bool = False, above: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not (lo < value if above else lo <= value) or value > hi:
            raise ValueError(accepted)
        return value if integer else float(value)
    return check


def _duration(value: Any) -> str:
    parse_duration(value)
    return value.strip()


FACTOR = _number(0, 100, "a factor above 0 and up to 100 (1 = no change)", above=True)
RISE = _number(1, 100, "a factor from 1 to 100 (1 = no change; a scenario adds to the chance of declining)")
SHARE = _number(0, 1, "a share from 0 to 1")
COUNT = _number(1, 1_000_000, "a whole number from 1 to 1000000", integer=True)
SPREAD = _number(0, 5, "a log-normal spread (sigma) from 0 to 5")
USER_ID = _number(0, 2 ** 62, "a whole number from 0", integer=True)


@dataclass(frozen=True)
class Kind:
    what: str
    end: str  # "required", "optional" (lasts to the end of the run), "none" (a moment)
    whom: tuple[str, ...]  # which of segment, share, newcomers it takes
    params: dict[str, tuple[Any, Callable[[Any], Any]]]  # name -> (default, check)


_PEOPLE = ("segment", "share", "newcomers")
KINDS: dict[str, Kind] = {
    "payment_outage": Kind("checkouts fail; a customer who hits a failure is likelier to start declining", "required",
                           _PEOPLE, {"decline_factor": (4.0, RISE), "lasting": ("30d", _duration)}),
    "price_rise": Kind("conversion and order value change, the chance of starting to decline rises, abruptly",
                       "optional", _PEOPLE, {"decline_factor": (1.5, RISE), "conversion_factor": (0.9, FACTOR),
                                             "order_value_factor": (1.1, FACTOR)}),
    "competitor_launch": Kind("the chance of starting to decline rises gradually (a logistic ramp)", "optional",
                              _PEOPLE, {"decline_factor": (1.5, RISE), "width": ("14d", _duration)}),
    "acquisition_campaign": Kind("extra sign-ups over the window, who decline sooner", "required", (),
                                 {"customers": (2000, COUNT), "decline_factor": (2.0, RISE)}),
    "seasonal_peak": Kind("traffic and conversion up over the window (a Black Friday)", "required", (),
                          {"traffic_factor": (1.5, FACTOR), "conversion_factor": (1.2, FACTOR)}),
    "retention_offer": Kind("a share of the customers in decline get an offer that lowers their chance of churning",
                            "none", ("segment", "share"), {"offered": (0.5, SHARE), "churn_factor": (0.5, FACTOR)}),
    "tracking_outage": Kind("the touched customers' events are not emitted", "required", ("share",), {}),
    "late_events": Kind("a share of events is produced late, with their own timestamps", "required", ("share",),
                        {"events": (0.1, SHARE), "delay_median": ("10m", _duration), "delay_spread": (1.0, SPREAD)}),
    "duplicates": Kind("a share of events is sent twice, the same value and event_id header", "required", ("share",),
                       {"events": (0.02, SHARE)}),
    "bots": Kind("visitors that are not customers: many product views, no carts", "required", (),
                 {"per_hour": (20.0, _number(0, 100_000, "bot visits per hour, above 0 and up to 100000",
                                             above=True)),
                  "views": (40.0, _number(1, 10_000, "a mean number of views from 1 to 10000")),
                  "first_id": (2_000_000_000, USER_ID)}),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Scenario:
    """One scenario as declared: its times unresolved (a relative time needs the run's start)."""

    name: str
    kind: str
    start: tuple[str, int]
    end: tuple[str, int] | None
    segment: str | None = None
    share: float = 1.0
    newcomers: bool = False
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def behaviour(self) -> bool:
        return self.kind in BEHAVIOUR

    def get(self, name: str) -> Any:
        return self._values[name]

    def ms(self, name: str) -> int:
        return self._values[f"{name} ms"]

    @functools.cached_property
    def _values(self) -> dict[str, Any]:
        """The parameters by name, durations also in ms ("NAME ms"): read per event and per session."""
        values = dict(self.params)
        return values | {f"{k} ms": parse_duration(v) for k, v in values.items() if isinstance(v, str)}

    def window(self, run_start_ms: int) -> tuple[int, float]:
        """(start, end) in epoch ms; end FOREVER when it lasts to the end of the run, start for a moment; both
        FOREVER for an on_demand scenario, until it is told to start."""
        def at(t: tuple[str, int]) -> int:
            return t[1] if t[0] == "at" else run_start_ms + t[1]
        if self.start[0] == ON_DEMAND:
            return FOREVER, FOREVER  # type: ignore[return-value]
        start = at(self.start)
        return start, (at(self.end) if self.end is not None else start if KINDS[self.kind].end == "none" else FOREVER)

    def described(self) -> dict[str, Any]:
        """What the truth's scenario_started says of it: whom it touches and its strength."""
        whom = {"segment": self.segment, "share": self.share, "newcomers": self.newcomers}
        return {k: v for k, v in whom.items() if k in KINDS[self.kind].whom} | dict(self.params)


def load_scenarios(path: str) -> tuple[Scenario, ...]:
    """The scenarios of a TOML file; ScenarioError (one line) when it cannot be read or is not valid."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ScenarioError(f"cannot read {path} ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{path} is not UTF-8 text (a TOML file of [scenarios.NAME] tables)") from None
    return parse_scenarios(text)


def parse_scenarios(text: str) -> tuple[Scenario, ...]:
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML ({exc}); a scenarios file is [scenarios.NAME] tables") from None
    unknown = sorted(set(doc) - {"scenarios"})
    if unknown:
        raise ScenarioError(f"unknown top-level key '{unknown[0]}'; accepted: [scenarios.NAME] tables only")
    tables = doc.get("scenarios", {})
    if not isinstance(tables, dict):
        raise ScenarioError("'scenarios' must be tables, one per scenario: [scenarios.NAME]")
    return tuple(_scenario(name, table) for name, table in tables.items())


def _scenario(name: str, table: Any) -> Scenario:
    def fail(field_name: str, what: str) -> ScenarioError:
        return ScenarioError(f"scenario '{name}': field '{field_name}': {what}")

    if not _NAME.fullmatch(name):
        raise ScenarioError(f"scenario '{name}': a name is 1 to 64 letters, digits, '_', '.' or '-', starting with "
                            "a letter or digit")
    if not isinstance(table, dict):
        raise ScenarioError(f"scenario '{name}': expected a table ([scenarios.{name}]) with kind, start, ...")
    kind_name = table.get("kind")
    if kind_name not in KINDS:
        raise fail("kind", f"{kind_name!r} is not a kind; accepted: {', '.join(KINDS)}" if kind_name is not None
                   else f"missing; accepted: {', '.join(KINDS)}")
    kind = KINDS[kind_name]
    accepted = ["kind", "start", *(["end"] if kind.end != "none" else []), *kind.whom, *kind.params]
    for key in table:
        if key not in accepted:
            raise fail(key, f"not a field of {kind_name}; accepted: {', '.join(accepted)}")
    times = {}
    if table.get("start") == ON_DEMAND:
        if "end" in table:
            raise fail("end", "an on_demand scenario runs until it is stopped (POST /scenarios/NAME/stop) or the run "
                              "ends; accepted: no end")
        if kind_name == "acquisition_campaign":
            raise fail("start", "an acquisition_campaign spreads its sign-ups over its window; accepted: a time "
                                f"({TIME_ACCEPTED}), with an end")
        times["start"] = (ON_DEMAND, 0)
    for key in ("start", "end"):
        if key in table and key not in times:
            try:
                times[key] = _time(table[key])
            except ValueError as exc:
                raise fail(key, f"{table[key]!r} is not a time; accepted: {exc}"
                                f"{', or ' + ON_DEMAND if key == 'start' else ''}") from None
    if "start" not in times:
        raise fail("start", f"missing; accepted: {TIME_ACCEPTED}, or {ON_DEMAND}")
    end = times.get("end")
    if end is None and kind.end == "required" and times["start"][0] != ON_DEMAND:
        raise fail("end", f"missing: a {kind_name} has a window; accepted: {TIME_ACCEPTED}")
    if end is not None:
        if end[0] != times["start"][0]:
            raise fail("end", "start and end must both be date-times or both be times after the run's start "
                              "(+3d), so that the window's length does not depend on when the run starts")
        if end[1] <= times["start"][1]:
            raise fail("end", f"{table['end']!r} is not after start ({table['start']!r}); accepted: a time after "
                              "start")
    segment = table.get("segment")
    if segment is not None and segment not in SEGMENTS:
        raise fail("segment", f"{segment!r} is not a segment; accepted: {', '.join(SEGMENTS)}")
    share = table.get("share", 1.0)
    try:
        share = SHARE(share)
    except ValueError as exc:
        raise fail("share", f"{share!r}: accepted: {exc} (of the customers)") from None
    newcomers = table.get("newcomers", False)
    if not isinstance(newcomers, bool):
        raise fail("newcomers", f"{newcomers!r}: accepted: true (only customers who join in the window) or false")
    params = []
    for key, (default, check) in kind.params.items():
        value = table.get(key, default)
        try:
            params.append((key, check(value)))
        except ValueError as exc:
            raise fail(key, f"{value!r}: accepted: {exc}") from None
    return Scenario(name, kind_name, times["start"], end, segment, share, newcomers, tuple(params))


def share_of(seed: int | None, scenario: str, user_id: bytes, share: float) -> bool:
    """Whether a customer is in a scenario's share: from the seed, the scenario's name and the id alone, so that
    the same customers are touched on every run (and in every shard), whatever else happens."""
    if share >= 1.0:
        return True
    return zlib.crc32(b"%d|%s|%s" % (seed or 0, scenario.encode(), user_id)) < share * 2 ** 32


def _rng(seed: int | None, name: str) -> random.Random:
    """A scenario's own random numbers (string seeds are hashed the same way on every run)."""
    return random.Random(f"{seed}:{name}" if seed is not None else None)


def refusal(scenario: Any, action: str) -> str:
    """Why a scenario of a run (a behaviour one or a data fault) cannot start or stop on demand now, or ""."""
    if scenario is None:
        return "not part of this run"
    if action == "start":
        return "already started" if scenario.started else ""
    return "not under way" if not scenario.started or scenario.ended else ""


def _row(kind: str, when: int, fmt: TimestampFormatter, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "time": fmt(when)} | fields


# --- behaviour: the shop's customers live through them ----------------------------------------------------

@dataclass(eq=False)
class _Running:
    """A scenario in a run: its window resolved (on demand: when told), its own random numbers, where it is."""

    spec: Scenario
    start: float
    end: float
    rng: random.Random
    started: bool = False
    ended: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    def on(self, when: float) -> bool:
        return self.start <= when < self.end


@dataclass(eq=False)
class _Live(_Running):
    """A behaviour scenario in a run, and whom it touched."""

    touched: dict[int, str] = field(default_factory=dict)  # user index -> how (e.g. "failed_payment", "treated")
    since: dict[int, int] = field(default_factory=dict)  # payment_outage: user index -> first failure

    @property
    def adds_decline(self) -> bool:
        return self.spec.kind in _DECLINE_KINDS


class ScenarioEffects:
    """The behaviour scenarios, acting through a simulator's hooks (mixed in before SessionSimulator or
    TwinSimulator by scenario_shop). With none under way, every hook is the simulator's own: the stream is the
    clean run's, draw for draw, up to the first scenario's start (a seasonal_peak's traffic excepted: see
    docs/scenarios.md)."""

    users: list[_User]

    def __init__(self, *, scenarios: tuple[Scenario, ...], **settings: Any) -> None:
        start_ms, seed = settings["start_ms"], settings.get("seed")
        self._lives = [_Live(s, *s.window(start_ms), _rng(seed, s.name)) for s in scenarios if s.behaviour]
        self._seed = seed
        self._causes: dict[int, str] = {}  # user index -> the scenario behind their planned decline
        self._natural: dict[int, int] = {}  # user index -> their natural decline, when a scenario's came first
        if any(live.spec.kind == "payment_outage" for live in self._lives):
            # only then: a method of the instance, so that other runs' hot path pays no look-up (~2% of a run)
            self._begin = self._begin_cut_short  # type: ignore[method-assign]
        self._episode_causes: dict[tuple[int, int], str] = {}  # (user index, episode) -> cause of that churn
        self._treated: dict[int, float] = {}  # user index -> churn chance factor for the decline under way
        self._campaign: dict[int, _Live] = {}  # user index -> the campaign that brought them
        self._moments: dict[int, list[Callable[[int], None]]] = {}
        self._value_factor = 1.0
        self._cut_short: set[int] = set()  # sessions whose last step was a checkout that failed
        self._cause_rng = _rng(seed, "causes")  # whose doing a decline is
        self._effect_rng = _rng(seed, "effects")  # conversion changed
        self._seasons = [live for live in self._lives if live.spec.kind == "seasonal_peak"]
        self._at_checkout = [live for live in self._lives if live.spec.kind in ("payment_outage", "price_rise",
                                                                                "seasonal_peak")]
        super().__init__(**settings)
        if self._seasons:  # sessions drawn against the season's peak from the start: docs/scenarios.md says why
            self._span_seasons()
            self._session_cycle = self._seasonal_cycle
            self._session_peak = self._cycle_max * max(max(1.0, s.spec.get("traffic_factor")) for s in self._seasons)
        for live in self._lives:
            if live.start != FOREVER:
                self._at(live.start, lambda now, live=live: self._start(live, now))
            if live.end not in (FOREVER, live.start):
                self._at(int(live.end), lambda now, live=live: self._stop(live, now))

    # moments -----------------------------------------------------------------------------------------
    def _at(self, when: int, action: Callable[[int], None]) -> None:
        when = max(when, self.start_ms)
        self._moments.setdefault(when, []).append(action)
        self._push(when, SCENARIO)

    def _control(self, index: int, now: int) -> None:
        if index != SCENARIO:
            return super()._control(index, now)
        for action in self._moments.pop(now, ()):
            action(now)

    def _note_scenario(self, when: int, kind: str, live: _Live, **extra: Any) -> None:
        if self._truth is not None and (self.shard is None or self.shard[0] == 0):
            self._truth_seq += 1
            heapq.heappush(self._truth, (when, self._truth_seq, None, kind, None,
                                         {"scenario": live.name, "scenario_kind": live.spec.kind} | extra))

    def _touch(self, live: _Live, user: _User, when: int, how: str, **extra: Any) -> None:
        if user.index in live.touched:
            return
        live.touched[user.index] = how
        if self._truth is not None:
            self._note_truth(when, user, "scenario_touched", scenario=live.name, scenario_kind=live.spec.kind,
                             how=how, **extra)

    def _touches(self, live: _Live, user: _User) -> bool:
        s = live.spec
        if s.segment is not None and user.segment != s.segment:
            return False
        if s.newcomers and not (user.joined_ms is not None and live.start <= user.joined_ms < live.end):
            return False
        return share_of(self._seed, s.name, user.key, s.share)

    def on_demand(self, name: str, action: str, now: int) -> str:
        """Start or stop a behaviour scenario now (action "start" or "stop"); why not, or ""."""
        live = next((x for x in self._lives if x.name == name), None)
        why = refusal(live, action)
        if why:
            return why
        if action == "start":
            live.start = now
            self._start(live, now)
        else:
            live.end = now
            self._stop(live, now)
        if live in self._seasons:
            self._span_seasons()
        return ""

    def _start(self, live: _Live, now: int) -> None:
        if live.started:  # started on demand before its time
            return
        live.started = True
        lasts = live.end not in (FOREVER, live.start) and self._truth is not None
        self._note_scenario(now, "scenario_started", live, params=live.spec.described(),
                            **({"ends": self._truth_time(int(live.end))} if lasts else {}))
        kind = live.spec.kind
        if kind == "payment_outage":
            self._fail_pending(live, now)
        elif kind in ("price_rise", "competitor_launch"):
            self._replan(live, now)
        elif kind == "acquisition_campaign":
            self._plan_campaign(live, now)
        elif kind == "retention_offer":
            self._offer(live, now)
            self._stop(live, now)  # a moment: it ends as it starts

    def _stop(self, live: _Live, now: int) -> None:
        if live.ended or not live.started:
            return
        live.ended = True
        self._note_scenario(now, "scenario_ended", live, touched=len(live.touched))
        if live.spec.kind in ("price_rise", "competitor_launch"):  # stopped early: its pending declines undone
            for index, cause in list(self._causes.items()):
                user = self.users[index]
                if cause == live.name and user.state == ENGAGED and user.fade_start > now:
                    user.fade_start = self._natural.pop(index)
                    del self._causes[index]
                    self._add_excess(user, now)

    def _fail_pending(self, live: _Live, now: int) -> None:
        """The sessions under way whose checkout is still to come: it will fail (the cart is abandoned)."""
        for user in self.users:
            plan = user.plan
            if plan and plan[0][0] == "checkout" and self._touches(live, user):
                del plan[0]
                user.outcome = ABANDONED
                self._failed(live, user, now)
                if not plan:  # the checkout was all that was left: the session ends then, with nothing sent
                    user.plan = None
                    self._cut_short.add(user.index)

    def _begin_cut_short(self, user: _User, now: int) -> list | None:
        """_begin, where a payment outage may have left a session with nothing after its failed checkout."""
        if user.index in self._cut_short:
            self._cut_short.discard(user.index)
            self._end_session(user, now, completed=True)
            return None
        return type(self)._begin(self, user, now)

    def _failed(self, live: _Live, user: _User, now: int) -> None:
        """A payment failed: the first touches the customer and raises their chance of starting to decline."""
        if user.index not in live.since:
            live.since[user.index] = now
            self._touch(live, user, now, "failed_payment")
            if user.state == ENGAGED:
                self._add_excess(user, now)

    def _replan(self, live: _Live, now: int) -> None:
        """The chance of starting to decline changes: the touched engaged customers' extra chance drawn from now."""
        for user in self.users:
            if user.state == ENGAGED and user.fade_start > now and self._touches(live, user):
                self._add_excess(user, now)

    # the chance of starting to decline --------------------------------------------------------------
    # A scenario adds its own chance on top of the natural one (competing risks): the natural decline is drawn
    # as in the clean run, from the same numbers; each scenario draws, from its own numbers, when its extra chance
    # (decline_factor - 1 times the natural one, as it stands) would start a decline; the first of them wins, and
    # is the decline's cause. Several scenarios add up: x1.5 and x2 make x2.5.
    def _plan_decline(self, user: _User, now: int) -> None:
        super()._plan_decline(user, now)
        self._causes.pop(user.index, None)
        self._natural.pop(user.index, None)
        self._add_excess(user, now)

    def _add_excess(self, user: _User, now: int) -> None:
        for live in self._lives:
            if live.started and live.adds_decline:
                when = self._excess(live, user, now, user.fade_start)
                if when is not None:
                    self._natural.setdefault(user.index, user.fade_start)
                    user.fade_start = when
                    self._causes[user.index] = live.name

    def _excess(self, live: _Live, user: _User, now: int, before: int) -> int | None:
        """When the scenario's extra chance starts the user's decline, if before `before` (thinning: candidates at
        its highest rate, each kept with its share of it)."""
        kind, extra = live.spec.kind, live.spec.get("decline_factor") - 1
        if extra <= 0:
            return None
        if kind == "payment_outage":
            since = live.since.get(user.index)
            if since is None:
                return None
            until = since + live.spec.ms("lasting")
        elif kind == "acquisition_campaign":
            if self._campaign.get(user.index) is not live:
                return None
            until = FOREVER
        elif not self._touches(live, user):
            return None
        else:
            until = live.end
        until = min(until, before)
        rate, r = self._hazard(user) * extra, live.rng
        when = max(now, live.start)
        while True:
            when += 1 + int(r.expovariate(1.0) / rate)
            if when >= until:
                return None
            if kind != "competitor_launch" or r.random() < self._ramp(live, when):
                return when

    @staticmethod
    def _ramp(live: _Live, when: int) -> float:
        """competitor_launch: how far its ramp has gone, 0 to 1 (a logistic, its midpoint width/2 after start)."""
        width = live.spec.ms("width")
        return 1 / (1 + math.exp(-8 * (when - live.start - width / 2) / width))

    # sessions --------------------------------------------------------------------------------------
    def _seasonal_cycle(self, when: int) -> float:
        """The shop's traffic with its seasons: cached per hour, as _cycle is, for the hours a season's edge does not
        cut (those are worked out each time)."""
        hour = when // HOUR_MS
        factor = self._season_cache.get(hour)
        if factor is not None:
            return factor
        factor = self._cycle(when)
        edge = False
        for live in self._seasons:
            if live.on(when):
                factor *= live.spec.get("traffic_factor")
            edge = edge or hour * HOUR_MS < live.start < (hour + 1) * HOUR_MS or \
                hour * HOUR_MS < live.end < (hour + 1) * HOUR_MS
        if not edge:
            self._season_cache[hour] = factor
        return factor

    def _span_seasons(self) -> None:
        self._season_cache: dict[int, float] = {}  # a season started or stopped: the hours afresh

    def _checks_out(self, user: _User, f: Any) -> bool:
        buys = super()._checks_out(user, f)
        now, value, conversion = user.session_start, 1.0, 1.0
        for live in self._at_checkout:
            if not (live.started and live.on(now)):
                continue
            kind = live.spec.kind
            if kind == "payment_outage" and buys and self._touches(live, user):
                self._failed(live, user, now)
                return False
            if kind in ("price_rise", "seasonal_peak") and (kind == "seasonal_peak" or self._touches(live, user)):
                conversion *= live.spec.get("conversion_factor")
                if kind == "price_rise":
                    value *= live.spec.get("order_value_factor")
        self._value_factor = value
        if conversion < 1:
            return buys and self._effect_rng.random() < conversion
        if conversion > 1 and not buys and 0 < f.checkout < 1:
            p = f.checkout  # a checkout chance of p becomes min(1, p x conversion)
            return self._effect_rng.random() * (1 - p) < min(1.0, p * conversion) - p
        return buys

    def _order_value(self, cart: list[str]) -> float:
        value = super()._order_value(cart)
        return round(value * self._value_factor, 2) if self._value_factor != 1.0 else value

    # the newcomers of a campaign -------------------------------------------------------------------------
    def _plan_campaign(self, live: _Live, now: int) -> None:
        """Its sign-ups at times over the window that follow the shop's daily and weekly cycle."""
        r, n = live.rng.random, live.spec.get("customers")
        for _ in range(n):
            while True:
                when = live.start + int(r() * (live.end - live.start))
                if r() * self._cycle_max < self._cycle(when):
                    break
            self._at(when, lambda t, live=live: self._sign_up(live, t))

    def _sign_up(self, live: _Live, now: int) -> None:
        if len(self.users) >= SCENARIO or live.ended:  # stopped on demand: no more sign-ups
            return
        user = self._new_user(self._next_user_id, now, self._arrival_cdf)
        self._next_user_id += 1
        self._campaign[user.index] = live
        self._start_user(user, now, stationary=False)
        if self._truth is not None:
            self._note_truth(now, user, "joined")
        self._touch(live, user, now, "signed_up")

    # a retention offer -------------------------------------------------------------------------------
    def _offer(self, live: _Live, now: int) -> None:
        """The customers in decline now: a share offered (treated), the others the control group."""
        offered, factor = live.spec.get("offered"), live.spec.get("churn_factor")
        for user in self.users:
            declining = user.state == FADING or (user.state == ENGAGED and user.fade_start <= now)
            if not declining or user.fade_start > now or not self._touches(live, user):
                continue
            treated = live.rng.random() < offered
            if treated:
                self._treated[user.index] = factor
            ends = self._truth_time(user.fade_end) if self._truth is not None and user.state == FADING else None
            self._touch(live, user, now, "treated" if treated else "control",
                        group="treated" if treated else "control", **({"decline_ends": ends} if ends else {}))

    def _churn_chance(self, user: _User) -> float:
        return min(1.0, super()._churn_chance(user) * self._treated.pop(user.index, 1.0))

    # truth and labels --------------------------------------------------------------------------------
    def _note_truth(self, when: int, user: _User, kind: str, **extra: Any) -> None:
        if kind == "decline_started":
            extra["cause"] = self._causes.get(user.index, "natural")
        elif kind == "churned":
            cause = self._causes.pop(user.index, "natural")
            self._episode_causes[user.index, extra.get("episode", 0)] = cause
            extra["cause"] = cause
        elif kind == "settled":
            self._causes.pop(user.index, None)
        super()._note_truth(when, user, kind, **extra)

    def labels(self, end_ms: int) -> Iterator[dict[str, Any]]:
        """The labels, and for a customer a scenario touched: `scenarios`, {name: how}; for a churned one,
        `churn_cause` of their last churn."""
        touched: dict[int, dict[str, str]] = {}
        for live in self._lives:
            for index, how in live.touched.items():
                touched.setdefault(self.users[index].user_id, {})[live.name] = how
        by_id = {u.user_id: u for u in self.users}
        for row in super().labels(end_ms):
            user = by_id[row["user_id"]]
            if row["user_id"] in touched:
                row["scenarios"] = touched[row["user_id"]]
            if row["episodes"]:
                row["churn_cause"] = self._episode_causes.get((user.index, len(row["episodes"])), "natural")
            yield row


def scenario_shop(base: type[SessionSimulator]) -> type[SessionSimulator]:
    """The simulator class `base` (SessionSimulator, TwinSimulator) with behaviour scenarios: construct it with
    `scenarios=` and the base's own keywords."""
    return type(f"Scenario{base.__name__}", (ScenarioEffects, base), {})  # type: ignore[return-value]


# --- data faults: the stream, not the customers -------------------------------------------------------------

@dataclass(eq=False)
class _Fault(_Running):
    """A data fault in a run, and what it did to whose events."""

    counts: dict[bytes, list[int]] = field(default_factory=dict)  # key -> [events, first ms, last ms]
    next_bot: float = FOREVER
    bots: int = 0
    salt: int = 0  # its per-record numbers' (StreamFaults._draws), from the seed and its name


class StreamFaults:
    """The data faults on a stream of records (epoch ms, key, value): each record in a fault's window, of a
    customer in its share, is dropped (tracking_outage), held back and produced later with its own timestamp
    (late_events), or produced twice (duplicates); bots add visitors' records. A dropped record is neither
    delayed nor duplicated; a delayed one is not duplicated.

    `originals` maps the position of each duplicate in the stream handed out (from 1) to its original's, for the
    event_id header; `truth(until_ms)` gives the truth rows, at each fault's end one per customer it touched with
    what it did (`dropped`, `delayed` or `duplicated`, from when to when)."""

    def __init__(self, scenarios: tuple[Scenario, ...], *, start_ms: int, seed: int | None,
                 product_id_range: tuple[int, int], sessions: bool, as_dicts: bool = False,
                 shard: tuple[int, int] | None = None, end_ms: float = FOREVER) -> None:
        """end_ms: the stream's end (a window's): a late event due after it comes out at its end."""
        self._faults = [_Fault(s, *s.window(start_ms), _rng(seed, s.name),
                               salt=int.from_bytes(hashlib.blake2b(f"{seed}|{s.name}".encode(), digest_size=8).digest(),
                                                   "big"))
                        for s in scenarios if not s.behaviour]
        self._seed, self._shard, self._sessions, self._as_dicts = seed, shard, sessions, as_dicts
        self._products = product_id_range
        self._last = end_ms - 1  # the last moment of the stream
        self._held: list[tuple[int, int, tuple]] = []  # (when due, order, record): late events and bots' views
        self._order = 0
        self.emitted = 0
        self.originals: dict[int, int] = {}
        self._truth: list[tuple[int, int, bytes, dict]] = []
        self._fmt = TimestampFormatter()
        self._share_cache: dict[tuple[int, bytes], bool] = {}
        for fault in self._faults:
            if fault.spec.kind == "bots":
                fault.next_bot = fault.start + self._bot_gap(fault)
        self._first = min((f.start for f in self._faults), default=FOREVER)

    def __bool__(self) -> bool:
        return bool(self._faults)

    def _mine(self, key: bytes) -> bool:
        return self._shard is None or int(key) % self._shard[1] == self._shard[0]

    def _note(self, when: int, key: bytes | None, row: dict[str, Any]) -> None:
        if key is None and self._shard is not None and self._shard[0] != 0:
            return
        self._order += 1
        heapq.heappush(self._truth, (when, self._order, key, row))

    def _in_share(self, i: int, fault: _Fault, key: bytes) -> bool:
        if fault.spec.share >= 1.0:
            return True
        cached = self._share_cache.get((i, key))
        if cached is None:
            cached = self._share_cache[i, key] = share_of(self._seed, fault.spec.name, key, fault.spec.share)
        return cached

    def _draws(self, fault: _Fault, record: tuple) -> tuple[float, float]:
        """Two numbers in (0, 1) of this record's own: from the seed, the fault's name and the record alone, so that
        the same records are delayed or repeated in every run and every shard, whatever else the stream holds."""
        value = record[2]  # the event's text holds its user id and timestamp (a dict value: its repr)
        # crc32 of the record (C, fast), then SplitMix64's finaliser with the fault's own salt: crc32 alone is linear,
        # so two faults' numbers for one record would be tied; blake2b did the same at 4 times the cost per record
        x = (zlib.crc32(value if isinstance(value, bytes) else repr(value).encode()) + fault.salt) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
        return ((x >> 32) + 0.5) / 2 ** 32, ((x & 0xFFFFFFFF) + 0.5) / 2 ** 32

    def _count(self, fault: _Fault, key: bytes, when: int, how: str) -> None:
        c = fault.counts.get(key)
        if c is None:
            fault.counts[key] = [1, when, when]
            self._note(when, key, _row("scenario_touched", when, self._fmt, user_id=int(key),
                                       scenario=fault.spec.name, scenario_kind=fault.spec.kind, how=how))
        else:
            c[0] += 1
            c[2] = when

    def apply(self, records: list, reached_ms: float) -> list:
        """The records as the faults leave them, with what falls due up to reached_ms (simulated time the stream
        has reached): held records and bots' views come out among the records, where their time falls."""
        if reached_ms < self._first and not self._held:
            self.emitted += len(records)
            return records
        self._starts(reached_ms)
        self._bots(reached_ms)
        out: list = []
        dups: list[tuple[int, int]] = []
        faults = [(i, f) for i, f in enumerate(self._faults) if f.started and not f.ended and f.spec.kind != "bots"]
        held = self._held
        if not faults and not held:  # between windows: the records as they are
            self.emitted += len(records)
            self._ends(reached_ms)
            return records
        for record in records:
            when, key = record[0], record[1]
            while held and held[0][0] <= when:
                out.append(heapq.heappop(held)[2])
            kept = True
            for i, fault in faults:
                if not (fault.start <= when < fault.end) or not self._in_share(i, fault, key):
                    continue
                kind = fault.spec.kind
                if kind == "tracking_outage":
                    self._count(fault, key, when, "not_tracked")
                    kept = False
                    break
                if kind == "late_events":
                    chance, draw = self._draws(fault, record)
                    if chance >= fault.spec.get("events"):
                        continue
                    delay = fault.spec.ms("delay_median") * math.exp(fault.spec.get("delay_spread")
                                                                     * _NORMAL.inv_cdf(draw))
                    self._order += 1
                    heapq.heappush(self._held, (when + int(delay), self._order, record))
                    self._count(fault, key, when, "delayed")
                    kept = False
                    break
            if not kept:
                continue
            out.append(record)
            for i, fault in faults:
                if (fault.spec.kind == "duplicates" and fault.start <= when < fault.end
                        and self._in_share(i, fault, key) and self._draws(fault, record)[0] < fault.spec.get("events")):
                    dups.append((len(out), len(out) + 1))  # positions in out, from 1: the original's, the copy's
                    out.append(record)
                    self._count(fault, key, when, "duplicated")
                    break
        due = reached_ms if reached_ms < self._last else FOREVER
        while held and held[0][0] <= due:
            out.append(heapq.heappop(held)[2])
        for original, copy in dups:
            self.originals[self.emitted + copy] = self.emitted + original
        self.emitted += len(out)
        self._ends(reached_ms)
        return out

    def _ends(self, reached_ms: float) -> None:
        for fault in self._faults:  # after the batch: its records before the end were the fault's
            if fault.started and not fault.ended and fault.end <= reached_ms:
                self._end(fault, int(fault.end))

    def on_demand(self, name: str, action: str, now: int) -> str:
        """Start or stop a data fault now (action "start" or "stop"); why not, or ""."""
        fault = next((f for f in self._faults if f.spec.name == name), None)
        why = refusal(fault, action)
        if why:
            return why
        if action == "stop":
            fault.end = now
            return ""
        fault.start = now
        if fault.spec.kind == "bots":
            fault.next_bot = now + self._bot_gap(fault)
        self._first = min(self._first, now)
        self._begin(fault)  # started now, not at the next batch: a second start before it is refused
        return ""

    def peek_ms(self) -> float | None:
        """When the next record of the faults' own is due (a held one, a bot's visit), or None."""
        due = min(([self._held[0][0]] if self._held else []) +
                  [f.next_bot for f in self._faults if f.spec.kind == "bots" and f.next_bot < f.end], default=None)
        return None if due is None else min(due, self._last)

    def finish(self, end_ms: float) -> list:
        """At the end of the stream: what is still held back (late events due after it come out now), and each
        fault's end."""
        out = self.apply([], end_ms)
        rest = [heapq.heappop(self._held)[2] for _ in range(len(self._held))]
        self.emitted += len(rest)
        for fault in self._faults:
            if fault.started and not fault.ended:
                self._end(fault, int(min(fault.end, end_ms)))
        return out + rest

    def _starts(self, reached_ms: float) -> None:
        for fault in self._faults:
            if not fault.started and fault.start <= reached_ms:
                self._begin(fault)

    def _begin(self, fault: _Fault) -> None:
        fault.started = True
        start = int(fault.start)
        self._note(start, None, _row("scenario_started", start, self._fmt, scenario=fault.spec.name,
                                     scenario_kind=fault.spec.kind, params=fault.spec.described(),
                                     **({"ends": self._fmt(int(fault.end))} if fault.end != FOREVER else {})))

    def _end(self, fault: _Fault, when: int) -> None:
        fault.ended = True
        how = {"tracking_outage": "dropped", "late_events": "delayed", "duplicates": "duplicated"}.get(
            fault.spec.kind)
        if how:
            for key, (n, first, last) in fault.counts.items():
                self._note(when, key, _row("scenario_counts", when, self._fmt, user_id=int(key),
                                           scenario=fault.spec.name, scenario_kind=fault.spec.kind, **{how: n},
                                           first=self._fmt(first), last=self._fmt(last)))
        # how many customers it touched: their scenario_counts rows say (a shard sees its own customers only)
        self._note(when, None, _row("scenario_ended", when, self._fmt, scenario=fault.spec.name,
                                    scenario_kind=fault.spec.kind,
                                    **({"bots": fault.bots} if fault.spec.kind == "bots" else {})))

    # bots ------------------------------------------------------------------------------------------
    def _bot_gap(self, fault: _Fault) -> int:
        return 1 + int(fault.rng.expovariate(fault.spec.get("per_hour") / HOUR_MS))

    def _bots(self, reached_ms: float) -> None:
        """The bots that arrived up to reached_ms: each one visit of many product views a few seconds apart."""
        for fault in self._faults:
            if fault.spec.kind != "bots":
                continue
            while fault.next_bot <= reached_ms and fault.next_bot < fault.end:
                self._bot(fault, int(fault.next_bot))
                fault.next_bot += self._bot_gap(fault)

    def _bot(self, fault: _Fault, start: int) -> None:
        r = fault.rng
        bot_id = fault.spec.get("first_id") + fault.bots
        fault.bots += 1
        key = record_key(bot_id)
        views = max(1, round(r.expovariate(1 / fault.spec.get("views")))) if fault.spec.get("views") > 1 else 1
        lo, hi = self._products
        mine = self._mine(key)  # every shard draws every bot: the same bots in each
        if mine:
            self._note(start, key, _row("scenario_touched", start, self._fmt, user_id=bot_id, scenario=fault.spec.name,
                                    scenario_kind="bots", how="bot", bot=True, views=views))
        fmt, when = TimestampFormatter(), start
        tail = session_fields(f"{bot_id}-1") if self._sessions else ""
        for _ in range(views):
            product = str(lo + int(r.random() * (hi - lo + 1)))
            if mine:
                text = event_text(str(bot_id), "product_view", fmt(when), product,
                                  repr(round((when - start) / 60_000, 2)), tail)
                self._order += 1
                value = json.loads(text) if self._as_dicts else text.encode()
                heapq.heappush(self._held, (when, self._order, (when, key, value)))
            when += 500 + int(r.expovariate(1 / 2500))

    def truth(self, until_ms: float) -> list[tuple[int, bytes, bytes]]:
        """The faults' truth rows up to until_ms, in time order, as (epoch ms, key, JSON value)."""
        out = []
        while self._truth and self._truth[0][0] <= until_ms:
            when, _, key, row = heapq.heappop(self._truth)
            out.append((when, key if key is not None else row["scenario"].encode(),
                        json.dumps(row, separators=(",", ":")).encode()))
        return out


def merged(*parts: list[tuple[int, bytes, bytes]]) -> list[tuple[int, bytes, bytes]]:
    """Truth rows from several sources, in time order (each part is in order already)."""
    rows = [row for part in parts for row in part]
    if len(parts) > 1:
        rows.sort(key=lambda row: row[0])
    return rows


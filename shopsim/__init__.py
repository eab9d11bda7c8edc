"""shopsim: the simulated shop, a model of an eCommerce shop's customers (sessions mode and a real shop's twin).

A population of customers with a hidden state (engaged, declining, churned), their sessions through the funnel,
their churn as a process, and the ground truth: the labels and the truth events. Pure and seeded: plain
parameters in, events and truth out; no Kafka, no settings parsing, no logging set-up, no clock. It never imports
producer.py: the daemon (producer.py, `--mode sessions`), calibrate.py and the tests use it through this API.

    from shopsim import SessionSimulator
    shop = SessionSimulator(segment_mix={"loyal": 0.3, "casual": 0.4, "at_risk": 0.2, "churning": 0.1},
                            user_id_range=(1, 1000), product_id_range=(1, 500), session_length_range=(0.5, 30.0),
                            start_ms=1_772_409_600_000, seed=1)
    for epoch_ms, key, value in shop.take(10, until_ms=float("inf")): ...

Modules, each using only those above it:
- `events`: the events as they are written (the contract's JSON text, timestamps, record keys);
- `figures`: the generic shop's published figures (traffic cycles, funnel, segments, churn);
- `sessions`: `SessionSimulator`, the customers' lives and sessions, labels and truth events;
- `twin`: `ShopProfile` (a real shop's fitted figures, written by calibrate.py) and `TwinSimulator`;
- `scenarios`: what if… (docs/scenarios.md): a scenarios file read and checked (`load_scenarios`), the behaviour
  scenarios acting through a simulator's hooks (`scenario_shop`), the data faults on a stream (`StreamFaults`).

Stability: the names in `__all__` are the package's API; producer.py and calibrate.py use nothing else. The
simulators' constructor keywords, `take`, `peek_ms`, `record_truth`, `truth`, `labels`, `users`, `describe`
and `expected_events_per_second` are stable, and so are the scenarios file's format and its truth rows; a seeded simulator's output may change between minor versions
(said in the changelog and the notes), never within one. Names starting with `_` are internal.
"""

from .events import (FUNNEL_TYPES, TimestampFormatter, event_text, json_name, parse_time, parse_timezone,
                     record_key, session_fields)
from .figures import (DAY_MS, DEFAULT_FUNNEL, FADE_DAYS_MEDIAN, FULL_CHURN, HOUR_MS, HOURLY_TRAFFIC,
                      MAX_SIMULATED_USERS, PROFILES, REACTIVATION_PER_DAY, SEGMENTS, WEEK_MS, WEEKDAY_TRAFFIC,
                      Funnel, SegmentProfile)
from .sessions import SessionSimulator, solve_funnel
from .twin import SHOP_PROFILE_VERSION, ShopProfile, TwinSimulator, load_shop_profile
from .scenarios import (BEHAVIOUR, DATA_FAULTS, KINDS, Scenario, ScenarioError, StreamFaults, load_scenarios,
                        merged, parse_scenarios, scenario_shop)

__all__ = ["BEHAVIOUR", "DATA_FAULTS", "KINDS", "Scenario", "ScenarioError", "StreamFaults", "load_scenarios",
           "merged", "parse_scenarios", "scenario_shop", "DAY_MS", "DEFAULT_FUNNEL", "FADE_DAYS_MEDIAN", "FULL_CHURN", "FUNNEL_TYPES", "HOUR_MS", "HOURLY_TRAFFIC",
           "MAX_SIMULATED_USERS", "PROFILES", "REACTIVATION_PER_DAY", "SEGMENTS", "SHOP_PROFILE_VERSION",
           "SessionSimulator", "SegmentProfile", "ShopProfile", "TimestampFormatter", "TwinSimulator", "WEEK_MS",
           "WEEKDAY_TRAFFIC", "event_text", "Funnel", "json_name", "load_shop_profile", "parse_time",
           "parse_timezone", "record_key", "session_fields", "solve_funnel"]

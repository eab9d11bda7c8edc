"""The simulated shop's figures, with their published anchors (docs/sessions.md): traffic cycles, the funnel,
the segments and churn as a process. Plain values; the simulators read them, a twin replaces them with a real
shop's fitted ones (ShopProfile)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SEGMENTS = ("loyal", "casual", "at_risk", "churning")  # the kinds of customer of the generic shop
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
WEEK_MS = 7 * DAY_MS
MONTH_MS = 30 * DAY_MS
MAX_SIMULATED_USERS = 1_000_000  # what a simulator holds in memory at most

# Shop traffic by local hour (Compete 2011 and SaleCycle 2020: lowest at 3-5 am, climbing from 7-9 am,
# peak at 8-10 pm) and by weekday, Monday first (SaleCycle 2020: Monday and Thursday busiest, the weekend
# quietest). Relative values; normalised so that a week averages 1.
HOURLY_TRAFFIC = (0.45, 0.30, 0.21, 0.17, 0.16, 0.19, 0.28, 0.42, 0.58, 0.72, 0.81, 0.88,
                  0.93, 0.92, 0.89, 0.89, 0.92, 0.97, 1.04, 1.14, 1.24, 1.24, 1.06, 0.74)
WEEKDAY_TRAFFIC = (1.06, 1.02, 1.00, 1.05, 0.97, 0.84, 0.90)


@dataclass(frozen=True)
class Funnel:
    """How the average customer's sessions go; segments and a fading user shift these odds."""

    bounce: float  # sessions that are a single bounce event
    views: float  # product views per engaged session, mean (1 + a geometric number: a long tail)
    cart: float  # engaged sessions that add to the cart
    items: float  # add_to_cart events per cart session, mean (never more than the session's views)
    checkout: float  # cart sessions that end in a checkout


# Calibrated to the anchors in README (Sessions mode): about 3% of sessions convert, 70% of carts are
# abandoned (Baymard), about 30% of sessions bounce, product views are 90%+ of events (RetailRocket, REES46).
DEFAULT_FUNNEL = Funnel(bounce=0.32, views=6.0, cart=0.12, items=1.4, checkout=0.26)


@dataclass(frozen=True)
class SegmentProfile:
    """A kind of customer: activity, funnel odds relative to the average customer, churn propensity."""

    sessions_per_month: float  # the segment's median user, fully engaged
    bounce_odds: float
    cart_odds: float
    checkout_odds: float
    depth: float  # views per engaged session beyond the first, relative
    hazard: float  # chance to start disengaging, relative
    breaks_per_day: float  # how often a user goes quiet for BREAK_DAYS (a trip, a busy week)


PROFILES = {
    "loyal": SegmentProfile(11.0, 0.7, 1.3, 1.3, 1.2, 0.3, 0.02),
    "casual": SegmentProfile(4.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.05),
    "at_risk": SegmentProfile(3.0, 1.6, 0.8, 0.6, 0.75, 2.5, 0.08),
    "churning": SegmentProfile(3.5, 2.2, 0.9, 0.45, 0.6, 5.0, 0.03),
}
ACTIVITY_SPREAD = 0.85  # log-normal sigma of users' activity within a segment: a few users make many sessions
DEPTH_SPREAD = 0.35  # the same for how deep users browse
BREAK_DAYS = (1.0, 10.0)
GAP_MEDIAN_S, GAP_SPREAD = 40.0, 0.9  # between two events of a session: log-normal, a minute on average
# Churn as a process. An engaged user starts to disengage with a hazard that grows with friction (the share of
# their recent cart sessions that were abandoned, a moving average over about FRICTION_MEMORY of them); the
# decline (fewer, shallower sessions, more bounces) lasts a log-normal FADE_DAYS; then the user leaves
# (FULL_CHURN) or stays at a lower level. Churned users come back at REACTIVATION_PER_DAY; new customers
# arrive to keep the population steady.
BASE_HAZARD_PER_DAY = 0.003
HAZARD_ENGAGEMENT = 0.6  # within a segment, hazard x (activity / the segment's median) ^ -0.6: frequent buyers stay
FRICTION_WEIGHT, FRICTION_MEMORY = 2.0, 3.0  # hazard x e^(2 x (share abandoned - the default 70%))
FADE_DAYS_MEDIAN, FADE_SPREAD = 40.0, 0.4
# CHURN_SIGNAL s in [0, 1] sets how visible the decline is: at its end a user's session rate is down by
# FADE_DEPTH(s), bounce odds up by 1 + FADE_BOUNCE * s, cart and checkout odds and the views beyond the first
# down by FADE_FUNNEL * s.
FADE_DEPTH = lambda s: 0.2 + 0.75 * s  # noqa: E731
FADE_BOUNCE, FADE_FUNNEL = 6.0, 0.9
FULL_CHURN = 0.7
PARTIAL_LEVEL = (0.25, 0.6)
REACTIVATION_PER_DAY = math.log(1 / 0.85) / 90  # 15% come back within 90 days
DORMANT_AT_START, DORMANT_AGE_DAYS = 0.15, 90.0  # accounts that churned before the simulation starts

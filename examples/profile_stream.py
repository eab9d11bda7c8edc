#!/usr/bin/env python3
"""Profile an eCommerce event stream: does it behave like a shop? Figures next to published bands.

Reads JSON lines in the producer's schema ({"user_id", "event_type", "timestamp", "metadata"}), ours or a
real shop's exported the same way, and prints conversion, cart abandonment, bounce, session depth and
duration, sessions and orders per user per month, the hourly and weekly curves and product concentration,
each beside the band that published figures give (README, Sessions mode, names the sources).

    python producer.py --mode sessions --dry-run --user-id-range 1-10000 --seed 1 \\
        --start-time 2026-11-01T00:00:00Z --end-time 2026-12-01T00:00:00Z > month.jsonl
    python examples/profile_stream.py month.jsonl
    python examples/profile_stream.py month.jsonl --plot profile.png --timezone Europe/Paris
    python examples/profile_stream.py month.jsonl --json        # the figures as one JSON object

Sessions are the events sharing metadata.session_id; a stream without it is cut into sessions at 30
minutes of inactivity per user (the usual web-analytics rule). A bounce session is one whose only
event is a bounce. Session duration is first to last event, over sessions of two or more events.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Iterable

SESSION_TIMEOUT_S = 30 * 60
# (figure, low, high, where the band comes from); None = no bound on that side
BANDS = {
    "conversion": (0.01, 0.05, "sessions with a checkout: 1-4% typical in eCommerce"),
    "cart_abandonment": (0.60, 0.80, "Baymard Institute: about 70% of carts are abandoned"),
    "bounce": (0.20, 0.50, "bounce rate 20-50% typical"),
    "views_per_engaged_session": (3.0, 10.0, "product views per non-bounce session"),
    "views_p99": (20, None, "a long tail of deep sessions"),
    "duration_median_min": (2.0, 10.0, "session duration (2+ events), minutes"),
    "sessions_per_user_month_median": (1.0, 8.0, "a few sessions per customer per month"),
    "top10_user_session_share": (0.30, None, "heavy-tailed activity (eventsim: log-normal users)"),
    "hourly_peak_to_trough": (3.0, None, "Compete 2011, SaleCycle 2020: peak 8-10 pm, trough 3-5 am"),
    "weekend_vs_weekday": (0.10, None, "SaleCycle 2020: the weekend differs from weekdays"),
    "daily_deviation_max": (None, 0.10, "each day within 10% of its weekday's average: no warm-up"),
}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_events(paths: list[str]) -> Iterable[dict]:
    for path in paths or ["-"]:
        try:
            stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as exc:
            reason = "is a folder" if isinstance(exc, IsADirectoryError) else exc.strerror or type(exc).__name__
            raise SystemExit(f"profile_stream: {path}: cannot be read ({reason}); expected a JSON-lines file of "
                             "events") from None
        number = 0
        try:
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        raise SystemExit(f"profile_stream: {path}: line {number} is not JSON; expected one event "
                                         "per line") from None
                    if not isinstance(event, dict) or not isinstance(event.get("metadata", {}), dict):
                        raise SystemExit(f"profile_stream: {path}: line {number} is not an event (a JSON object "
                                         "with user_id, event_type, timestamp, metadata); expected one per line")
                    yield event
        except UnicodeDecodeError:
            raise SystemExit(f"profile_stream: {path}: line {number + 1} is not UTF-8 text (binary data?); expected "
                             "a JSON-lines file of events") from None
        finally:
            if stream is not sys.stdin:
                stream.close()


def profile(events: Iterable[dict], tz=timezone.utc) -> dict:
    """Every figure of the profile, from one pass over the events (any order)."""
    mix: Counter = Counter()
    per_session: dict[object, list] = defaultdict(list)  # session key -> [(seconds, type)]
    untagged: dict[int, list] = defaultdict(list)  # user -> [(seconds, type)] for streams without session_id
    products: Counter = Counter()
    hourly = [0] * 24
    daily: Counter = Counter()
    order_values = []
    users = set()
    first = last = None
    for event in events:
        when = parse_time(event["timestamp"])
        seconds = when.timestamp()
        first = seconds if first is None or seconds < first else first
        last = seconds if last is None or seconds > last else last
        kind, user, metadata = event["event_type"], event["user_id"], event.get("metadata") or {}
        users.add(user)
        mix[kind] += 1
        local = when.astimezone(tz)
        hourly[local.hour] += 1
        daily[local.date()] += 1
        if kind == "product_view" and "product_id" in metadata:
            products[metadata["product_id"]] += 1
        if kind == "checkout" and "order_value" in metadata:
            order_values.append(metadata["order_value"])
        session_id = metadata.get("session_id")
        if session_id is not None:
            per_session[(user, session_id)].append((seconds, kind))
        else:
            untagged[user].append((seconds, kind))
    for user, rows in untagged.items():
        rows.sort()
        n = 0
        for i, row in enumerate(rows):
            if i and row[0] - rows[i - 1][0] > SESSION_TIMEOUT_S:
                n += 1
            per_session[(user, f"gap-{n}")].append(row)
    if not mix:
        raise SystemExit("profile_stream: no events read")
    return _figures(mix, per_session, products, hourly, daily, order_values, users, first, last)


def _figures(mix, per_session, products, hourly, daily, order_values, users, first, last) -> dict:
    total = sum(mix.values())
    months = max((last - first) / (30 * 86400), 1 / 30)
    sessions = len(per_session)
    bounces = converted = carted = 0
    engaged_views, durations = [], []
    sessions_of: Counter = Counter()
    orders_of: Counter = Counter()
    for (user, _), rows in per_session.items():
        kinds = [k for _, k in rows]
        sessions_of[user] += 1
        if all(k == "bounce" for k in kinds):
            bounces += 1
        else:
            engaged_views.append(kinds.count("product_view"))
        if "checkout" in kinds:
            converted += 1
            orders_of[user] += kinds.count("checkout")
        if "add_to_cart" in kinds:
            carted += 1
        if len(rows) > 1:
            times = [t for t, _ in rows]
            durations.append((max(times) - min(times)) / 60)
    per_user = sorted(sessions_of.values(), reverse=True)
    top = per_user[: max(1, len(per_user) // 10)]
    # Complete local days only: the first and last may be partial.
    days = sorted(daily)[1:-1] if len(daily) > 2 else sorted(daily)
    by_weekday = defaultdict(list)
    for day in days:
        by_weekday[day.weekday()].append(daily[day])
    weekday_mean = {d: statistics.mean(v) for d, v in by_weekday.items()}
    weekend = [daily[d] for d in days if d.weekday() >= 5]
    weekdays = [daily[d] for d in days if d.weekday() < 5]
    views = sorted(products.values(), reverse=True)
    return {
        "events": total,
        "users": len(users),
        "funnel": {"sessions": sessions, "engaged": sessions - bounces, "carted": carted, "converted": converted},
        "days": round((last - first) / 86400, 2),
        "mix": {k: round(v / total, 4) for k, v in sorted(mix.items())},
        "sessions": sessions,
        "conversion": converted / sessions,
        "cart_abandonment": 1 - converted / carted if carted else None,
        "bounce": bounces / sessions,
        "views_per_engaged_session": statistics.mean(engaged_views) if engaged_views else None,
        "views_p99": _quantile(engaged_views, 0.99),
        "duration_median_min": statistics.median(durations) if durations else None,
        "duration_median_all_min": statistics.median(durations + [0.0] * (sessions - len(durations))),
        "sessions_per_user_month_median": statistics.median(per_user) / months,
        "top10_user_session_share": sum(top) / sum(per_user),
        "orders_per_user_month": sum(orders_of.values()) / len(users) / months,
        "order_value_mean": statistics.mean(order_values) if order_values else None,
        "hourly": hourly,
        "hourly_peak_to_trough": max(hourly) / max(min(hourly), 1),
        "weekday_volume": {d: round(weekday_mean[d]) for d in sorted(weekday_mean)},
        "weekend_vs_weekday": (abs(statistics.mean(weekend) / statistics.mean(weekdays) - 1)
                               if weekend and weekdays else None),
        "daily_deviation_max": (max(abs(daily[d] / weekday_mean[d.weekday()] - 1) for d in days)
                                if len(days) >= 14 else None),
        "top10_product_view_share": sum(views[: max(1, len(views) // 10)]) / sum(views) if views else None,
    }


def _quantile(values: list, q: float):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(figures: dict) -> str:
    lines = [f"{figures['events']:,} events, {figures['users']:,} users, {figures['sessions']:,} sessions over "
             f"{figures['days']:g} days",
             "mix: " + ", ".join(f"{k} {v:.1%}" for k, v in figures["mix"].items()),
             "",
             f"{'figure':<34}{'measured':>10}   {'band':<12} source"]
    for name, (low, high, source) in BANDS.items():
        value = figures.get(name)
        if value is None:
            lines.append(f"{name:<34}{'n/a':>10}")
            continue
        percent = low is not None and low < 1 and name not in ("views_per_engaged_session",) or \
            (high is not None and high < 1)
        shown = f"{value:.1%}" if percent else f"{value:.2f}" if isinstance(value, float) else str(value)
        band = _band(low, high, percent)
        ok = (low is None or value >= low) and (high is None or value <= high)
        lines.append(f"{name:<34}{shown:>10} {'ok' if ok else '--'} {band:<12} {source}")
    lines += ["",
              f"orders per user per month: {figures['orders_per_user_month']:.2f}"
              + (f"; mean order value {figures['order_value_mean']:.2f}" if figures["order_value_mean"] else ""),
              f"session duration median including bounces (as 0 min): {figures['duration_median_all_min']:.2f} min",
              f"top 10% of products: {figures['top10_product_view_share']:.1%} of product views"
              if figures["top10_product_view_share"] is not None else "no product views",
              "events by hour:    " + " ".join(f"{h:02d}" for h in range(24)),
              "(% of peak)        " + " ".join(f"{round(99 * v / max(figures['hourly'])):2d}"
                                               for v in figures["hourly"]),
              "events by weekday: " + ", ".join(f"{'Mon Tue Wed Thu Fri Sat Sun'.split()[d]} {v:,}"
                                                for d, v in figures["weekday_volume"].items())]
    return "\n".join(lines)


def _band(low, high, percent: bool) -> str:
    fmt = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:g}")
    if low is not None and high is not None:
        return f"{fmt(low)}-{fmt(high)}"
    return f">= {fmt(low)}" if low is not None else f"<= {fmt(high)}"


def plot(figures: dict, path: str, zone: str) -> None:
    """The text report at a glance: the session funnel with its bands (conversion, cart abandonment, bounce), the
    daily curve in the shop's time zone with the peak-to-trough band, the week with the weekend band."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("profile_stream: --plot needs matplotlib (make setup-dev)") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def verdict(name: str) -> str:
        low, high, _ = BANDS[name]
        value = figures[name]
        return "in band" if value is not None and (low is None or value >= low) and (high is None or value <= high) \
            else "OUT of band"

    fig, (funnel, hours, week) = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    fig.suptitle(f"Stream profile: {figures['events']:,} events, {figures['users']:,} users, "
                 f"{figures['sessions']:,} sessions over {figures['days']:g} days (shop time zone {zone})")
    # The funnel: each step's sessions, and the share that went on from the step before.
    f = figures["funnel"]
    steps = [("sessions", f["sessions"]), ("engaged (not a bounce)", f["engaged"]), ("with an add to cart", f["carted"]),
             ("with a checkout", f["converted"])]
    funnel.barh([name for name, _ in steps][::-1], [n for _, n in steps][::-1], color="#4c72b0")
    for i, (name, n) in enumerate(steps):
        share = f" ({n / steps[i - 1][1]:.0%} of the step before)" if i and steps[i - 1][1] else ""
        funnel.text(n, len(steps) - 1 - i, f" {n:,}{share}", va="center", fontsize=8)
    funnel.set_xlim(0, f["sessions"] * 1.9)
    bands = [f"bounce {figures['bounce']:.0%}: band 20-50%, {verdict('bounce')}",
             f"conversion {figures['conversion']:.1%} of sessions: band 1-5%, {verdict('conversion')}"]
    if figures["cart_abandonment"] is not None:
        bands.append(f"cart abandonment {figures['cart_abandonment']:.0%}: band 60-80% (Baymard), "
                     f"{verdict('cart_abandonment')}")
    funnel.set_title("the session funnel")
    funnel.set_xlabel("sessions\n" + "\n".join(bands), fontsize=9)
    # The day, as % of its peak hour; the band: the trough under a third of the peak.
    peak = max(figures["hourly"]) or 1
    hours.plot(range(24), [100 * v / peak for v in figures["hourly"]], marker="o", color="#4c72b0")
    hours.axhspan(0, 100 / 3, color="#55a868", alpha=0.15, label="the band: the trough under 1/3 of the peak")
    hours.set_ylim(0, 105)
    hours.set_xticks(range(0, 24, 3))
    hours.set_xlabel(f"hour of day ({zone})")
    hours.set_ylabel("events, % of the peak hour")
    hours.set_title(f"the day: peak {figures['hourly_peak_to_trough']:.1f}x the trough, "
                    f"{verdict('hourly_peak_to_trough')}\n(Compete 2011, SaleCycle 2020: trough 3-5 am, peak 8-10 pm)",
                    fontsize=10)
    hours.legend(loc="upper left", fontsize=8)
    # The week: the average day of each weekday; the band: the weekend 10% or more off the weekdays.
    days = list(figures["weekday_volume"])
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    volumes = [figures["weekday_volume"][d] for d in days]
    week.bar([names[d] for d in days], volumes, color=["#4c72b0" if d < 5 else "#dd8452" for d in days])
    workdays = [v for d, v in zip(days, volumes) if d < 5]
    if workdays:
        mean = statistics.mean(workdays)
        week.axhspan(mean * 0.9, mean * 1.1, color="#999999", alpha=0.25,
                     label="the band: the weekend outside the weekday mean +-10%")
        week.set_ylim(0, max(volumes) * 1.3)
        week.legend(loc="upper center", fontsize=8)
    week.set_ylabel("events on an average day")
    week.set_xlabel(f"weekday ({zone})")
    weekend = figures["weekend_vs_weekday"]
    week.set_title(f"the week: the weekend {weekend:.0%} off the weekdays, {verdict('weekend_vs_weekday')}\n"
                   "(SaleCycle 2020: the weekend quietest)" if weekend is not None
                   else "the week", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("files", nargs="*", help="JSON-lines files (default: standard input)")
    parser.add_argument("--timezone", default="UTC", help="the shop's time zone for the hourly/weekly curves")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--plot", metavar="PNG", help="draw the funnel and the hourly/weekly curves (matplotlib)")
    args = parser.parse_args(argv)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        parser.error(f"--timezone: unknown time zone {args.timezone!r}; expected an IANA name such as Europe/Paris")
    if args.plot and (os.path.isdir(args.plot) or not os.access(os.path.dirname(os.path.abspath(args.plot)), os.W_OK)):
        print(f"profile_stream: --plot {args.plot}: cannot be written; expected a PNG path in a writable folder",
              file=sys.stderr)
        return 2
    figures = profile(read_events(args.files), tz)
    print(json.dumps(figures, default=str) if args.json else report(figures))
    if args.plot:
        plot(figures, args.plot, args.timezone)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `| head` closed the pipe: what it wanted was printed
        sys.stderr.close()
        sys.exit(0)

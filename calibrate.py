#!/usr/bin/env python3
"""Your shop's twin: fit the simulated shop to a real export, and show how close the twin comes.

Reads a shop's export, writes a shop profile (JSON, docs/twin.md) that sessions mode loads with
`--shop-profile`, then generates the twin over the export's own span with the shop model (shopsim) as
producer.py runs it, and prints a fidelity report: each figure of the export beside the twin's, with its
distance and target.

    python calibrate.py CDNOW_master.txt --profile cdnow.json             # orders, whitespace-separated
    python calibrate.py invoices.csv --order-column InvoiceNo --quantity-column Quantity \\
        --price-column UnitPrice --customer-column CustomerID --time-column InvoiceDate --profile shop.json
    python calibrate.py events.jsonl --profile shop.json                  # events in producer.py's schema
    python calibrate.py CDNOW_master.txt --profile cdnow.json --json --plot report.png
    python producer.py --mode sessions --shop-profile cdnow.json --seed 1 \\
        --start-time 1997-01-01T00:00:00Z --end-time 1998-07-01T00:00:00Z --dry-run > twin.jsonl

Exports it reads:
- orders or invoice lines, CSV or whitespace-separated text (the delimiter is sniffed; a headerless file
  takes --no-header --columns a,b,c). Columns are named by the options below or recognised by their usual
  names. Rows with a negative quantity or value (returns, cancellations) are not orders, nor are rows with
  no customer; both are counted in the report. Lines sharing an order id (--order-column) are one order;
  line items without one are grouped by customer and time.
- events in producer.py's JSON-lines schema (views, carts, checkouts, bounces, sessions): orders are the
  checkouts, and the browse funnel is fitted too.

What is fitted, and what stays at sessions mode's published defaults, is listed in the profile ("fitted")
and in the report. Exit codes: 0 done, 2 bad input (one line naming the problem; no profile is written).
"""

from __future__ import annotations

import argparse
import calendar
import csv
import io
import itertools
import json
import math
import os
import sys
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterator

import producer
import shopsim
from shopsim import DAY_MS, DEFAULT_FUNNEL, HOURLY_TRAFFIC, ShopProfile, TimestampFormatter

EXIT_BAD_INPUT = 2
SESSION_TIMEOUT_MS = 30 * 60_000  # a stream without session ids is cut into sessions at 30 idle minutes
HORIZON_DAYS = 90.0  # the churn question: no order within 90 days after the cut-off
MAX_ITEMS = 30  # orders with more items are drawn as this many (the value keeps its own distribution)
QUANTILES = 201  # order value quantiles per item count: KS error of the interpolation under 1/200
MIN_ORDERS_PER_BUCKET = 200  # item counts with fewer orders share the value distribution of "this many or more"
FIT_CUSTOMERS = 6000  # customers simulated per evaluation of the fit (the fit's figures are shares)
FIT_EVALUATIONS = 200
# With a year of history or more, the fit also matches the orders per customer of the span's last third (what a
# forecast goes on from), within this share: CDNOW fitted on 1997 forecast 1998's first half 12% short without it,
# 3% over with it. On shorter spans it is left out: on a six-month event export it pulled orders per user per
# month 21% off (docs/twin.md)
LATE_TOLERANCE = 0.1
MIN_SPAN_DAYS = 28  # the shortest export fitted: four weeks, a cut-off in the middle with two on each side
MIN_HOLDOUT_DAYS = 7  # --holdout: a week at least to forecast
SEASON_SETTLED_DAYS = 90  # a season is measured on the orders of customers who came this long before
# A season is fitted from a year of settled customers' orders or more (every month seen; with less, a month's factor
# would be the shop's trend at that time, or the export's first weeks, not its season): 455 days of history
SEASON_DAYS = 365 + SEASON_SETTLED_DAYS
LATE_DAYS = 365  # the fit weighs the last third's orders from a year of history (LATE_TOLERANCE)
SEASON_PRIOR = 30  # orders: each month's factor is shrunk towards 1 by this many (a thin month says little)
SEASON_PASSES = 2  # the factors are refined once on the twin with the first ones (declines interact with rates)
REPORT_SEEDS = 3  # the report's figures are the median of this many seeds, none of them the fit's
FUNNEL_SLOTS = {"product_view": 1, "add_to_cart": 2, "checkout": 3, "bounce": 4}  # a session's counters

# Column names recognised when the options do not name them (compared in lower case, without _ - and spaces).
COLUMN_NAMES = {
    "customer": ("customerid", "customer", "customerno", "clientid", "userid", "user", "buyerid", "memberid",
                 "accountid", "custid", "customerkey"),
    "time": ("date", "time", "timestamp", "invoicedate", "orderdate", "datetime", "createdat", "purchasedate",
             "ordertime", "transactiondate", "eventtime", "orderpurchasetimestamp"),
    "value": ("value", "ordervalue", "amount", "total", "dollarvalue", "revenue", "sales", "ordertotal",
              "totalprice", "payment", "paymentvalue"),
    "quantity": ("quantity", "qty", "numberofcds", "items", "units", "count"),
    "price": ("unitprice", "price", "priceeach", "itemprice", "unitcost"),
    "order": ("orderid", "invoiceno", "invoice", "ordernumber", "orderno", "transactionid", "receiptid", "basketid"),
    "product": ("productid", "stockcode", "sku", "itemid", "product", "productcode", "articleid"),
}
TIME_FORMATS = ("%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
                "%m/%d/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d",
                "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y%m%d%H%M%S", "%d-%m-%Y", "%m-%d-%Y")


class BadInput(Exception):
    """One line for the user: what is wrong with the export or the options, and what is accepted."""


# --- reading an export -------------------------------------------------------------------------------

@dataclass
class Export:
    """What a shop's export says: its orders, customers and, for an event export, its sessions."""

    source: str
    kind: str  # "orders" or "events"
    tz: Any
    orders: list[tuple[str, int, float, int]]  # (customer, epoch ms, value, items), time order
    first_seen: dict[str, int]  # customer -> first order (orders export) or first event (event export), epoch ms
    time_of_day: bool  # the times carry a time of day (else dates only)
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    columns: dict[str, str] = field(default_factory=dict)
    products: Counter = field(default_factory=Counter)
    session_hours: list[int] | None = None
    funnel: dict[str, float] | None = None  # event exports: sessions per order, bounce, views, abandoned carts
    start_ms: int = 0
    end_ms: int = 0
    notes: list[str] = field(default_factory=list)  # what was read with care: compression, repeats, a cut-off end

    def __post_init__(self) -> None:
        if self.orders:
            self.orders.sort(key=lambda o: o[1])
            first = min(self.orders[0][1], min(self.first_seen.values()))
            last = max(self.orders[-1][1], max(self.first_seen.values()))
            self.start_ms = local_midnight(first, self.tz)
            self.end_ms = local_midnight(last, self.tz) + DAY_MS  # through the last day


def local_midnight(ms: int, tz) -> int:
    local = datetime.fromtimestamp(ms / 1000, tz)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


class TimeParser:
    """Text -> epoch ms: a given strptime format, else the first common layout (or ISO 8601, or epoch
    seconds) that reads the sample; naive times are in the shop's time zone."""

    def __init__(self, sample: list[str], fmt: str | None, tz, column: str) -> None:
        self.tz, self.column, self._cache = tz, column, {}
        self.time_of_day = False  # any time read so far is not a local midnight: the export has times of day
        if fmt:
            self.fmt = fmt
            return
        sample = [s for s in sample if s][:500]
        read = {}
        for candidate in ("iso", *TIME_FORMATS, "epoch"):  # the layout that reads most of the sample (the first)
            self.fmt = candidate
            read[candidate] = sum(self._parse(s) is not None for s in sample)
        self.fmt = max(read, key=read.get)
        if read[self.fmt]:
            return
        shown = sample[0] if sample else ""
        raise BadInput(f"--time-column {column}: cannot read the time {shown!r}; expected ISO 8601, a common "
                       "layout such as 2011-12-09 12:50 or 12/9/2011 12:50 or 19970101, or --time-format "
                       "(strptime, e.g. %d/%m/%Y %H:%M)")

    def _parse(self, text: str) -> int | None:
        try:
            if self.fmt == "iso":
                if len(text) < 10 or text[4] != "-":
                    return None
                when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            elif self.fmt == "epoch":
                seconds = float(text)
                seconds = seconds / 1000 if seconds > 1e11 else seconds
                return int(seconds * 1000) if 0 <= seconds < 7.3e9 else None
            else:
                when = datetime.strptime(text, self.fmt)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.tz)
        if not 1970 <= when.year <= 2200:
            return None
        return int(when.timestamp() * 1000)

    def __call__(self, text: str, row: int) -> int:
        ms = self._cache.get(text)
        if ms is None:
            ms = self._parse(text.strip())
            if ms is None:
                shown = self.fmt if self.fmt not in ("iso", "epoch") else "ISO 8601" if self.fmt == "iso" else "epoch"
                raise BadInput(f"--time-column {self.column}: row {row}: the time {text!r} does not read as {shown} "
                               "(as the rows before it); expected one layout for the whole column, or --time-format")
            self._cache[text] = ms
            # Asked of the data, not the layout: ISO 8601 and epoch times may be dates at midnight.
            self.time_of_day = self.time_of_day or ms != local_midnight(ms, self.tz)
        return ms


def _number(text: str, column: str, row: int) -> float:
    try:
        value = float(text.replace(",", "") if text.count(",") and "." in text else text.replace(",", "."))
    except ValueError:
        raise BadInput(f"--{column}-column: row {row}: {text!r} is not a number; expected numbers in that column")\
            from None
    if not math.isfinite(value):
        raise BadInput(f"--{column}-column: row {row}: {text!r} is not a finite number")
    return value


# Compressed exports are read as they are: the format from the file's first bytes, not its name.
COMPRESSIONS = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
ACCEPTED = ("expected orders or invoice lines (CSV or whitespace-separated text), or JSON lines (orders or "
            "producer.py's events); gzip, bzip2 and xz compressed files are read too")


def _compression(path: str) -> str | None:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"PK\x03\x04"):
        raise BadInput(f"{path}: is a zip archive; unzip it first ({ACCEPTED})")
    return next((name for prefix, name in COMPRESSIONS if magic.startswith(prefix)), None)


def _open_binary(path: str):
    import bz2
    import gzip
    import lzma

    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}.get(_compression(path), open)
    return opener(path, "rb")


def read_export(path: str, args: argparse.Namespace, tz) -> Export:
    """The export at `path` (orders, invoice lines or events, maybe compressed), or BadInput naming what is wrong."""
    import lzma
    import zlib

    compression = None
    try:
        compression = _compression(path)
        with _open_binary(path) as f:
            head = f.read(65536)
    except BadInput:
        raise
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        if compression is not None:  # the file opened: its compressed data is what is wrong
            raise BadInput(f"{path}: the {compression} data is damaged or cut short ({exc}); expected the whole "
                           "file") from None
        raise BadInput(f"{path}: cannot be read ({producer.os_reason(exc) if isinstance(exc, OSError) else exc}); "
                       f"{ACCEPTED}") from None
    if not head.strip():
        raise BadInput(f"{path}: is empty; {ACCEPTED}")
    text = head.decode("utf-8", errors="replace")
    if b"\x00" in head or text.count("\ufffd") > len(text) / 100:
        raise BadInput(f"{path}: is not UTF-8 text (binary data{', once uncompressed' if compression else ''}); "
                       f"{ACCEPTED}")
    try:
        if head.lstrip()[:1] == b"{" and _is_event(head, path):
            export = read_events(path, tz)
        else:
            export = read_orders(path, head, args, tz)
    except (EOFError, lzma.LZMAError, zlib.error, OSError) as exc:  # a compressed file damaged or cut short
        raise BadInput(f"{path}: the {compression or 'file'} data is damaged or cut short ({exc}); expected the "
                       "whole file") from None
    if compression:
        export.notes.insert(0, f"read as {compression}")
    if not compression and _ends_mid_line(path):
        export.notes.append("the file does not end with a line break: its last line may be cut off (a partial "
                            "copy?); it was read as it is")
    return export


def _is_event(head: bytes, path: str) -> bool:
    """A JSON-lines export: producer.py's events (an event_type on the first line), or orders (anything else)."""
    first = head.lstrip().split(b"\n", 1)[0]
    try:
        record = json.loads(first)
    except ValueError:
        raise BadInput(f"{path}: line 1 starts like JSON and is not a JSON object; {ACCEPTED}") from None
    return isinstance(record, dict) and "event_type" in record


def _ends_mid_line(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) not in (b"\n", b"\r")


def _open_text(path: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", errors="replace", newline="")


def _json_rows(path: str) -> tuple[list[str], Iterator[list[str]]]:
    """A JSON-lines orders export as columns and rows: the columns are the keys of its first lines' objects."""
    def records() -> Iterator[tuple[int, dict]]:
        with _open_text(path) as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise BadInput(f"{path}: line {number} is not JSON; expected one JSON object per line") from None
                if not isinstance(record, dict):
                    raise BadInput(f"{path}: line {number} is not a JSON object; expected one per line")
                yield number, record

    first = list(itertools.islice(records(), 50))
    names = list(dict.fromkeys(key for _, record in first for key in record))

    def cell(value: Any) -> str:
        return "" if value is None else value if isinstance(value, str) else json.dumps(value)

    return names, ([cell(record.get(name)) for name in names] for _, record in records())


def _rows(path: str, head: bytes, args: argparse.Namespace) -> tuple[list[str], Iterator[list[str]]]:
    """The column names and the rows: JSON lines, a sniffed delimiter, or runs of white space."""
    if head.lstrip()[:1] == b"{":
        names, rows = _json_rows(path)
        return ([c.strip() for c in args.columns.split(",")] if args.columns else names), rows
    text = head.decode("utf-8-sig", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()][:50]
    delimiter = None
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=",;\t|").delimiter
    except csv.Error:
        pass
    if delimiter is None or not all(delimiter in line for line in lines[:20]):
        delimiter = None  # whitespace-separated, like CDNOW_master.txt

    def split(stream) -> Iterator[list[str]]:
        if delimiter is None:
            return (line.split() for line in stream if line.strip())
        return (row for row in csv.reader(stream, delimiter=delimiter) if any(c.strip() for c in row))

    stream = _open_text(path)
    rows = split(stream)
    if args.no_header:
        if not args.columns:
            raise BadInput("--no-header: needs --columns a,b,c naming the file's columns in order")
        names = [c.strip() for c in args.columns.split(",")]
    else:
        names = [c.strip() for c in next(rows)]
        if args.columns:
            names = [c.strip() for c in args.columns.split(",")]
        elif all(_looks_numeric(c) for c in names if c):
            raise BadInput(f"{path}: the first line looks like data, not a header ({','.join(names)[:60]}); "
                           "expected a header line, or --no-header --columns a,b,c")
    return names, rows


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _column(names: list[str], given: str | None, role: str, required: bool) -> int | None:
    keys = [_key(n) for n in names]
    if given:
        if given in names:
            return names.index(given)
        if _key(given) in keys:
            return keys.index(_key(given))
        raise BadInput(f"--{role}-column {given}: no such column; expected one of {', '.join(names)}")
    for candidate in COLUMN_NAMES[role]:
        if candidate in keys:
            return keys.index(candidate)
    if required:
        raise BadInput(f"--{role}-column: no column is named like a {role} "
                       f"({', '.join(COLUMN_NAMES[role][:4])}, ...) among {', '.join(names)}; expected "
                       f"--{role}-column NAME")
    return None


def read_orders(path: str, head: bytes, args: argparse.Namespace, tz) -> Export:
    names, rows = _rows(path, head, args)
    customer = _column(names, args.customer_column, "customer", True)
    when = _column(names, args.time_column, "time", True)
    value = _column(names, args.value_column, "value", False) if not args.price_column else None
    quantity = _column(names, args.quantity_column, "quantity", False)
    price = _column(names, args.price_column, "price", False) if value is None else None
    order = _column(names, args.order_column, "order", False)
    product = _column(names, args.product_column, "product", False)
    if value is None and (price is None or quantity is None):
        raise BadInput("--value-column: no order value column (value, amount, total, ...), and not both "
                       f"--quantity-column and --price-column, among {', '.join(names)}; expected --value-column, "
                       "or --quantity-column and --price-column for line items")
    used = {"customer": customer, "time": when, "value": value, "quantity": quantity, "price": price,
            "order": order, "product": product}
    columns = {role: names[i] for role, i in used.items() if i is not None}
    width = max(i for i in used.values() if i is not None) + 1
    buffered: list[list[str]] = []
    for row in rows:  # the first rows, to learn the time layout
        buffered.append(row)
        if len(buffered) >= 500:
            break
    if not buffered:
        raise BadInput(f"{path}: has a header and no rows; expected orders or invoice lines")
    # A row that repeats another exactly: with an order id, a line of an order repeated (an export's fault: added
    # in, it would double the order's value), dropped; without one, two orders alike (CDNOW has 255 such rows:
    # one customer, one day, one amount), kept. --duplicates says otherwise.
    drop_repeats = args.duplicates == "drop" or args.duplicates == "auto" and order is not None
    seen_rows: set[int] = set()
    repeats = 0
    parse_time = TimeParser([r[when].strip() for r in buffered if len(r) > when], args.time_format, tz,
                            names[when])
    skipped: Counter = Counter()
    lines: dict[Any, list] = {}  # order key -> [customer, ms, value, items]
    products: Counter = Counter()
    count = 0
    for count, row in enumerate(itertools.chain(buffered, rows), start=1):
        if len(row) < width:
            skipped["short rows"] += 1
            continue
        fingerprint = hash(tuple(row))
        if fingerprint in seen_rows:
            repeats += 1
            if drop_repeats:
                skipped["exact repeats of a row"] += 1
                continue
        else:
            seen_rows.add(fingerprint)
        who = row[customer].strip()
        if not who or who.lower() in ("nan", "null", "none"):
            skipped["rows without a customer"] += 1
            continue
        qty = _number(row[quantity], "quantity", count) if quantity is not None else 1.0
        amount = _number(row[value], "value", count) if value is not None else qty * _number(row[price], "price",
                                                                                           count)
        if qty < 0 or amount < 0 or order is not None and row[order].strip()[:1] in ("C", "c"):
            skipped["returns and cancellations"] += 1
            continue
        ms = parse_time(row[when], count)
        if product is not None:
            products[row[product].strip()] += 1
        key = (who, row[order].strip()) if order is not None else (who, ms) if value is None else count
        entry = lines.get(key)
        if entry is None:
            lines[key] = [who, ms, amount, qty]
        else:
            entry[1] = min(entry[1], ms)
            entry[2] += amount
            entry[3] += qty
    if count == 0:
        raise BadInput(f"{path}: has a header and no rows; expected orders or invoice lines")
    if not lines:
        reasons = ", ".join(f"{n:,} {why}" for why, n in skipped.items())
        raise BadInput(f"{path}: no orders are left ({reasons}); expected rows with a customer and a "
                       "non-negative quantity and value")
    orders = [(who, ms, round(amount, 2), max(1, int(round(qty)))) for who, ms, amount, qty in lines.values()]
    first: dict[str, int] = {}
    for who, ms, _, _ in orders:
        if who not in first or ms < first[who]:
            first[who] = ms
    export = Export(path, "orders", tz, orders, first, parse_time.time_of_day, rows=count, skipped=skipped,
                    columns=columns, products=products)
    if repeats:
        export.notes.append(
            f"{repeats:,} rows ({repeats / count:.1%}) repeat another exactly: " +
            ("dropped (the same line of the same order twice)" if drop_repeats and order is not None else
             "dropped (--duplicates drop)" if drop_repeats else
             "kept as orders of their own: no order id tells a repeat from a second order alike"
             + ("; that many suggests a faulty export: --duplicates drop" if repeats > count / 50 else "")))
    return export


def read_events(path: str, tz) -> Export:
    """An event export in producer.py's schema: orders are its checkouts, sessions its session ids (or 30 idle
    minutes), and the funnel its sessions'."""
    sessions: dict[tuple, list] = {}  # (user, session) -> [start ms, views, carts, checkouts, bounces]
    untagged: dict[str, list] = defaultdict(list)
    orders, first, products = [], {}, Counter()
    count = 0
    skipped: Counter = Counter()
    with _open_text(path) as stream:
        for count, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                user, kind, stamp = str(event["user_id"]), event["event_type"], event["timestamp"]
                ms = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
                metadata = event.get("metadata") or {}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise BadInput(f"{path}: line {count} is not an event in producer.py's schema (user_id, event_type, "
                               "timestamp, metadata); expected one JSON event per line") from None
            if user not in first or ms < first[user]:
                first[user] = ms
            if kind == "product_view" and "product_id" in metadata:
                products[str(metadata["product_id"])] += 1
            if kind == "checkout":
                value = metadata.get("order_value", 0.0)
                if not isinstance(value, (int, float)) or value < 0:
                    skipped["returns and cancellations"] += 1
                else:
                    orders.append((user, ms, float(value), int(metadata.get("items") or 1)))
            session = metadata.get("session_id")
            if session is None:
                untagged[user].append((ms, kind))
                continue
            entry = sessions.get((user, session))
            if entry is None:
                entry = sessions[(user, session)] = [ms, 0, 0, 0, 0]
            entry[0] = min(entry[0], ms)
            if kind in FUNNEL_SLOTS:
                entry[FUNNEL_SLOTS[kind]] += 1
    for user, rows in untagged.items():
        rows.sort()
        n = 0
        for i, (ms, kind) in enumerate(rows):
            if i and ms - rows[i - 1][0] > SESSION_TIMEOUT_MS:
                n += 1
            entry = sessions.setdefault((user, f"gap-{n}"), [ms, 0, 0, 0, 0])
            if kind in FUNNEL_SLOTS:
                entry[FUNNEL_SLOTS[kind]] += 1
    if not first:
        raise BadInput(f"{path}: has no events; expected one JSON event per line")
    if not orders:
        raise BadInput(f"{path}: has no checkouts, so no orders to fit; expected an export with orders")
    total = len(sessions)
    bounced = sum(1 for s in sessions.values() if s[4] and not s[1] and not s[2] and not s[3])
    engaged = [s for s in sessions.values() if s[1] or s[2] or s[3]]
    carted = sum(1 for s in engaged if s[2])
    bought = sum(1 for s in engaged if s[3])
    per_order = max(1.0, total / len(orders))
    funnel = {"sessions_per_order": per_order,
              # the bounce share of the sessions without an order: the twin's buying sessions never bounce
              "bounce": min(0.95, bounced / max(1, total - bought)),
              "views": max(1.0, sum(s[1] for s in engaged) / max(1, len(engaged))),
              "abandoned_carts_per_order": max(0, carted - bought) / len(orders)}
    tz_hours = [datetime.fromtimestamp(s[0] / 1000, tz).hour for s in sessions.values()]
    return Export(path, "events", tz, orders, first, True, rows=count, skipped=skipped,
                  columns={"user_id": "customer", "timestamp": "time", "metadata.order_value": "value",
                           "metadata.items": "items"}, products=products, session_hours=tz_hours, funnel=funnel)


# --- the figures of a shop's orders, the export's and the twin's alike ------------------------------------

@dataclass
class Window:
    """The span the figures are measured over (local days in the shop's time zone) and the churn question."""

    start_ms: int
    end_ms: int
    tz: Any
    cutoff_ms: int
    horizon_ms: int
    day_resolution: bool  # the export has dates only: the twin is read at that resolution too
    month_of_day: Any  # local day index -> month index
    weekday_of_day: Any
    months: list[str]

    @property
    def days(self) -> int:
        return int(math.ceil((self.end_ms - self.start_ms) / DAY_MS))

    @property
    def weeks(self) -> int:
        return int(math.ceil(self.days / 7))


def make_window(start_ms: int, end_ms: int, tz, cutoff: str | None, horizon_days: float | None,
                day_resolution: bool) -> Window:
    import numpy as np

    days = int(math.ceil((end_ms - start_ms) / DAY_MS))
    if days < MIN_SPAN_DAYS:
        raise BadInput(f"the export spans {days} day{'s' if days != 1 else ''}; the twin is fitted to how customers "
                       f"come back, before and after a cut-off: expected an export of {MIN_SPAN_DAYS} days or more")
    if cutoff:
        try:
            cutoff_ms = shopsim.parse_time(cutoff)
        except ValueError as exc:
            raise BadInput(f"--cutoff {cutoff}: {exc}") from None
        if cutoff_ms is None or not start_ms < cutoff_ms < end_ms:
            raise BadInput(f"--cutoff {cutoff}: expected a date-time inside the export's span")
    else:  # the middle of the span, in whole weeks (CDNOW: week 39 of 78)
        cutoff_ms = start_ms + max(1, days // 14) * 7 * DAY_MS
    horizon = horizon_days if horizon_days else min(HORIZON_DAYS, (end_ms - cutoff_ms) / DAY_MS)
    labels, month_of_day, weekday_of_day = [], [], []
    for d in range(days):
        local = datetime.fromtimestamp((start_ms + d * DAY_MS + 12 * 3_600_000) / 1000, tz)  # noon: clear of DST
        label = f"{local.year}-{local.month:02d}"
        if not labels or labels[-1] != label:
            labels.append(label)
        month_of_day.append(len(labels) - 1)
        weekday_of_day.append(local.weekday())
    return Window(start_ms, end_ms, tz, cutoff_ms, int(horizon * DAY_MS), day_resolution,
                  np.array(month_of_day), np.array(weekday_of_day), labels)


def order_figures(customer, ms, window: Window, value=None) -> dict[str, Any]:
    """The figures of a list of orders (numpy arrays: customer code, epoch ms; order value), over the window."""
    import numpy as np

    w = window
    inside = (ms >= w.start_ms) & (ms < w.end_ms)
    customer, ms = customer[inside], ms[inside]
    value = value[inside] if value is not None else None
    order = np.lexsort((ms, customer))
    customer, ms = customer[order], ms[order]
    day = (ms - w.start_ms) // DAY_MS
    t = day.astype(float) if w.day_resolution else (ms - w.start_ms) / DAY_MS
    new = np.r_[True, customer[1:] != customer[:-1]] if len(customer) else np.zeros(0, bool)
    cid = np.cumsum(new) - 1
    counts = np.bincount(cid) if len(cid) else np.zeros(0, int)
    n = max(1, len(counts))
    cut = (w.cutoff_ms - w.start_ms) / DAY_MS
    cut_day = math.ceil(cut) if w.day_resolution else cut
    before = t < cut_day
    after = (t >= cut_day) & (t < cut_day + w.horizon_ms / DAY_MS)
    n_before = np.bincount(cid, weights=before, minlength=len(counts))
    n_after = np.bincount(cid, weights=after, minlength=len(counts))
    eligible = n_before > 0
    figures = {
        "customers": int(len(counts)),
        "orders": int(len(ms)),
        "orders_per_customer": np.bincount(np.minimum(counts, 10), minlength=11)[1:] / n,
        "gaps": np.diff(t)[~new[1:]] if len(t) > 1 else np.zeros(0),
        "first_week": np.bincount((t[new] // 7).astype(int), minlength=w.weeks)[:w.weeks] / n,
        "month": np.bincount(w.month_of_day[day], minlength=len(w.months)) / max(1, len(ms)),
        "weekday": np.bincount(w.weekday_of_day[day], minlength=7) / max(1, len(ms)),
        # the orders of the span's last third (what a forecast goes on from), per customer
        "late": float(np.sum(t >= (w.end_ms - w.start_ms) / DAY_MS * 2 / 3)) / n,
        "eligible": int(eligible.sum()),
        "churn": float(np.mean(n_after[eligible] == 0)) if eligible.any() else 0.0,
        "repeat": float(np.mean(n_before[eligible] >= 2)) if eligible.any() else 0.0,
        # for the churn models: per customer with an order before the cut-off
        "_cid": cid, "_t": t, "_before": before, "_n_before": n_before, "_n_after": n_after, "_cut": cut_day,
    }
    if value is not None:
        figures["values"] = value[order]
    return figures


def tv(p, q) -> float:
    """Total variation distance of two histograms (shares)."""
    import numpy as np

    size = max(len(p), len(q))
    p, q = np.pad(np.asarray(p, float), (0, size - len(p))), np.pad(np.asarray(q, float), (0, size - len(q)))
    return float(0.5 * np.abs(p / max(p.sum(), 1e-12) - q / max(q.sum(), 1e-12)).sum())


def ks(a, b) -> float:
    """Kolmogorov-Smirnov distance of two samples (ties handled: both CDFs taken at every value)."""
    import numpy as np

    if not len(a) or not len(b):
        return 1.0 if len(a) or len(b) else 0.0
    a, b = np.sort(a), np.sort(b)
    at = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, at, side="right") / len(a)
                               - np.searchsorted(b, at, side="right") / len(b))))


def distance(real: dict, twin: dict, window: Window) -> float:
    """What the fit minimises: the figures that the arrivals and the order and retention process shape, each in
    units of its target (1: a figure at the edge of its target), squared so that no one figure is let go; with a
    year of history (LATE_DAYS), the last third's orders too (LATE_TOLERANCE)."""
    per_customer = (twin["orders"] / max(1, twin["customers"])) / (real["orders"] / max(1, real["customers"]))
    terms = [tv(real["orders_per_customer"], twin["orders_per_customer"]) / 0.05, ks(real["gaps"], twin["gaps"]) / 0.1,
             tv(real["month"], twin["month"]) / 0.08, tv(real["first_week"], twin["first_week"]) / 0.1,
             abs(real["churn"] - twin["churn"]) / 0.03, abs(real["repeat"] - twin["repeat"]) / 0.03,
             abs(math.log(max(per_customer, 1e-9))) / 0.1]
    if window.days >= LATE_DAYS:
        terms.append(abs(math.log(max(twin["late"], 1e-9) / max(real["late"], 1e-9))) / LATE_TOLERANCE)
    return sum(t * t for t in terms)


# --- the twin -------------------------------------------------------------------------------------------

def twin_settings(profile: ShopProfile, seed: int, customers: int) -> producer.Settings:
    return producer.default_settings(simulation_mode="sessions", shop_profile="(calibrate.py)", profile=profile,
                                     seed=seed, user_id_range=(1, customers), start_time=profile.span_start_ms,
                                     end_time=profile.span_end_ms, log_file="")


def simulate(profile: ShopProfile, customers: int, seed: int, orders_only: bool, progress=None,
             until_ms: int | None = None):
    """The twin's orders over the profile's span (or on until until_ms: a forecast), from the shop model as
    producer.py runs it (simulator_for): (customer, ms, value) arrays; and the number of events it generated.
    orders_only: the orders alone, valueless (for the fit)."""
    import numpy as np

    s = twin_settings(profile, seed, customers)
    if until_ms is not None:
        s = replace(s, end_time=until_ms)
    sim = producer.simulator_for(s, start_ms=profile.span_start_ms, orders_only=orders_only)
    users, times, values = [], [], []
    events = 0
    end = (until_ms or profile.span_end_ms) - 1
    take, loads = sim.take, json.loads
    while True:
        batch = take(100_000, end)
        if not batch:
            break
        events += len(batch)
        for ms, key, value in batch:
            if orders_only or b'"checkout"' in value:
                users.append(int(key))
                times.append(ms)
                values.append(0.0 if orders_only else loads(value)["metadata"]["order_value"])
        if progress:
            progress(batch[-1][0])
    return np.array(users, dtype=np.int64), np.array(times, dtype=np.int64), np.array(values), events


def base_profile(export: Export, window: Window) -> tuple[ShopProfile, dict[str, str]]:
    """Everything but the order and retention process: arrivals, items, values, cycle, funnel, products; and
    where each came from."""
    import numpy as np

    fitted: dict[str, str] = {}
    start, end = export.start_ms, export.end_ms
    first = np.array(list(export.first_seen.values()), dtype=np.int64)
    weeks = np.bincount((first - start) // shopsim.WEEK_MS, minlength=window.weeks)[:window.weeks].astype(float)
    tail_days = min(56.0, window.days / 4)
    late = int(np.sum(first >= end - tail_days * DAY_MS))
    fitted["arrivals"] = (f"customers' first {'order' if export.kind == 'orders' else 'event'} by week; after the "
                          f"span, newcomers at the rate of its last {tail_days:g} days")
    items = np.array([o[3] for o in export.orders])
    values = np.array([o[2] for o in export.orders])
    shares = np.bincount(np.minimum(items, MAX_ITEMS), minlength=MAX_ITEMS + 1)[1:].astype(float)
    shares = shares[:int(np.flatnonzero(shares)[-1]) + 1] / shares.sum()
    buckets = 1
    while buckets < 10 and np.sum(items >= buckets + 1) >= MIN_ORDERS_PER_BUCKET:
        buckets += 1
    grid = np.linspace(0, 1, QUANTILES)
    quantiles = []
    for b in range(1, buckets + 1):
        chosen = values[items == b] if b < buckets else values[items >= b]
        quantiles.append(tuple(round(float(q), 2) for q in np.quantile(chosen if len(chosen) else values, grid)))
    has_items = "quantity" in export.columns or export.kind == "events"
    if has_items:
        fitted["order_value"] = f"quantiles by items per order (1 to {buckets}{' or more' if buckets > 1 else ''})"
        fitted["items"] = "items per order"
    else:  # no item counts (lines without quantities are not items): one distribution of order values
        quantiles = [tuple(round(float(q), 2) for q in np.quantile(values, grid))]
        fitted["order_value"] = "quantiles"
    # the cycle: orders (event exports: session starts) by local weekday and hour
    day = (np.array([o[1] for o in export.orders]) - start) // DAY_MS
    weekday_orders = np.bincount(window.weekday_of_day[day], minlength=7).astype(float)
    weekday_days = np.bincount(window.weekday_of_day[:window.days], minlength=7).astype(float)
    weekday = (weekday_orders + 0.5) / np.maximum(weekday_days, 1)
    weekday = weekday / weekday.mean()
    fitted["weekday"] = "orders by weekday"
    if export.time_of_day:
        hours = export.session_hours or [datetime.fromtimestamp(o[1] / 1000, export.tz).hour for o in export.orders]
        hourly = np.bincount(hours, minlength=24).astype(float) + 0.5
        hourly = tuple(round(float(h), 4) for h in hourly / hourly.mean())
        fitted["hourly"] = "session starts by hour" if export.session_hours else "orders by hour"
    else:
        hourly = HOURLY_TRAFFIC
    if export.funnel:
        funnel = export.funnel
        fitted["funnel"] = "sessions per order, bounce, views per engaged session, abandoned carts per order"
    else:
        f = DEFAULT_FUNNEL
        funnel = {"sessions_per_order": 1 / ((1 - f.bounce) * f.cart * f.checkout), "bounce": f.bounce,
                  "views": f.views, "abandoned_carts_per_order": (1 - f.checkout) / f.checkout}
    products = zipf = None
    if export.products:
        counts = np.array(sorted(export.products.values(), reverse=True), dtype=float)
        products = len(counts)
        top = counts[:max(2, min(len(counts), 1000))]
        if len(top) >= 5:
            slope = np.polyfit(np.log(np.arange(1, len(top) + 1)), np.log(top), 1)[0]
            zipf = round(float(min(5.0, max(0.0, -slope))), 3)
            fitted["products"] = f"{products} products, Zipf exponent from their views or order lines"
        else:
            products = None
    profile = ShopProfile(
        customers=len(export.first_seen), span_start_ms=start, span_end_ms=end, timezone=str(export.tz),
        existing_customers=0, arrival_weeks=tuple(float(w) for w in weeks), arrivals_after_per_day=late / tail_days / len(first),
        first_visit_orders=export.kind == "orders", activity_shape=1.0, activity_scale=0.01, decline_shape=1.0,
        decline_scale=0.005, fade_days_median=shopsim.FADE_DAYS_MEDIAN, full_churn=shopsim.FULL_CHURN,
        reactivation_per_day=shopsim.REACTIVATION_PER_DAY, sessions_per_order=round(funnel["sessions_per_order"], 4),
        bounce=round(funnel["bounce"], 4), views=round(funnel["views"], 4),
        abandoned_carts_per_order=round(funnel["abandoned_carts_per_order"], 4),
        items=tuple(round(float(x), 6) for x in shares) if has_items else (1.0,), value_quantiles=tuple(quantiles),
        hourly=tuple(hourly), weekday=tuple(round(float(x), 4) for x in weekday), products=products,
        zipf_exponent=zipf)
    return profile, fitted


def _with_process(profile: ShopProfile, x, seen_at_start: int) -> ShopProfile:
    """The profile with the order and retention process of the fit's parameters (logs of: order-rate shape and
    mean per day, decline-rate shape and mean per day, comebacks per day; the log-odds of a decline ending in
    churn; for a standing base, the log of its customers over those of them the export saw)."""
    r, mean_rate, s, mean_decline, back = (math.exp(v) for v in x[:5])
    p = replace(profile, activity_shape=round(r, 5), activity_scale=mean_rate / r, decline_shape=round(s, 5),
                decline_scale=mean_decline / s, reactivation_per_day=back, full_churn=1 / (1 + math.exp(-x[5])))
    if seen_at_start:
        existing = int(round(seen_at_start * math.exp(x[6])))
        customers = profile.customers - seen_at_start + existing
        # the newcomers after the span are the export's per day: their rate is per customer of the profile
        p = replace(p, existing_customers=existing, customers=customers,
                    arrivals_after_per_day=profile.arrivals_after_per_day * profile.customers / customers)
    return p


def arrival_variants(profile: ShopProfile, export: Export, window: Window) -> dict[str, tuple[ShopProfile, int]]:
    """How the customers came: all new when first seen (a cohort, a young shop), or a standing base that was
    there before the span (first seen as their first order in it comes) with sign-ups at the rate of the span's
    last third. Each with the number of the export's customers it takes to be from the standing base. An event
    export's customers arrive at their first visit."""
    variants = {"newcomers": (profile, 0)}
    if export.kind == "events":  # every visit is there: a customer's first is close to when they came
        return variants
    first = sorted(export.first_seen.values())
    last_third = export.end_ms - (export.end_ms - export.start_ms) / 3
    late = sum(1 for ms in first if ms >= last_third)
    per_week = late / ((export.end_ms - last_third) / shopsim.WEEK_MS)
    signups = per_week * window.days / 7
    seen_at_start = int(round(len(first) - signups))
    if seen_at_start > 0.1 * len(first):  # more customers early than the sign-up rate explains
        weeks = [per_week * min(7.0, window.days - 7 * w) / 7 for w in range(window.weeks)]
        variants["standing base"] = (replace(profile, arrival_weeks=tuple(round(w, 4) for w in weeks)),
                                     seen_at_start)
    return variants


FIT_STEPS = (0.7, 0.7, 0.9, 0.9, 1.2, 1.0, 0.5)  # the first simplex: a step in each parameter's log


def bar(total: float, desc: str, unit: str):
    """On a terminal (and in the main process: the fit's side-by-side processes print lines), a progress bar that
    redraws in place (tqdm); else None, and the caller prints plain lines."""
    import multiprocessing

    if not sys.stderr.isatty() or multiprocessing.parent_process() is not None:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"calibrate: {desc}", unit=unit, file=sys.stderr, dynamic_ncols=True)


def nelder_mead(variant: ShopProfile, seen_at_start: int, x, budget: int, real: dict, window: Window, seed: int,
                label: str, step: float = 1.0) -> dict[str, Any]:
    """Nelder-Mead from x over the parameters of _with_process, for at most `budget` simulations of the twin's
    orders: the best point and its distance. A function of picklable arguments: the fit runs the ways customers
    may have come in processes of their own."""
    import numpy as np
    from scipy.optimize import minimize

    size = len(x) if seen_at_start else len(x) - 1
    best: dict[str, Any] = {"distance": math.inf, "x": np.asarray(x[:size]), "simulations": 0}
    meter = bar(budget, f"fitting {label}", " simulations")

    def objective(x) -> float:
        x = np.clip(x, -16, 6)
        candidate = _with_process(variant, x, seen_at_start)
        customers = min(candidate.customers, FIT_CUSTOMERS)
        customer, ms, _, _ = simulate(candidate, customers, seed, orders_only=True)
        twin = order_figures(customer, ms, window)
        shown = twin["customers"] * candidate.customers / customers  # the whole shop's, estimated
        d = distance(real, twin, window) + (math.log(max(shown, 1) / max(1, real["customers"])) / 0.1) ** 2
        best["simulations"] += 1
        if d < best["distance"]:
            best.update(distance=d, x=x)
        if meter is not None:
            meter.set_postfix_str(f"distance {best['distance']:.3f}", refresh=False)
            meter.update()
        elif best["simulations"] % 20 == 0:
            print(f"calibrate: fitting {label}: {best['simulations']}/{budget} simulations, distance "
                  f"{best['distance']:.3f}", file=sys.stderr, flush=True)
        return d

    start = np.asarray(x[:size])
    simplex = np.array([start] + [start + d for d in np.diag(FIT_STEPS[:size]) * step])
    try:
        minimize(objective, start, method="Nelder-Mead",
                 options={"maxfev": budget, "initial_simplex": simplex, "xatol": 0.01, "fatol": 0.001})
    finally:
        if meter is not None:
            meter.close()
    return best


def fit_process(profile: ShopProfile, real: dict, window: Window, export: Export, seed: int,
                evaluations: int, say, season=None) -> tuple[ShopProfile, dict[str, Any], str | None]:
    """The order and retention process: simulated orders (the twin as producer.py runs it, orders alone, a sample of
    the customers with the same random numbers every time) brought close to the export's figures by Nelder-Mead;
    for each way the customers may have come (arrival_variants, fitted side by side, one process each), the
    closer one kept and fitted further. season(profile) -> (profile, what): where it fits a season (SEASON_DAYS of
    history), the process is fitted again with it (a season moves orders between months, and so the rates and
    declines that best explain them) on a quarter of the budget, and the season once more on the result."""
    import numpy as np
    from concurrent.futures import ProcessPoolExecutor

    seen = sum((export.end_ms - ms) / DAY_MS for ms in export.first_seen.values())
    repeat_rate = max(len(export.orders) - (profile.customers if profile.first_visit_orders else 0), 1) / seen
    x0 = np.r_[np.log([0.6, 2 * repeat_rate, 1.0, 1 / 200, shopsim.REACTIVATION_PER_DAY]),
               math.log(shopsim.FULL_CHURN / (1 - shopsim.FULL_CHURN)), math.log(1.5)]
    variants = arrival_variants(profile, export, window)
    refit = evaluations // 4 if season is not None and window.days >= SEASON_DAYS else 0
    evaluations -= refit
    if len(variants) == 1:
        (name, (variant, seen_at_start)), = variants.items()
        results = {name: nelder_mead(variant, seen_at_start, x0, evaluations, real, window, seed, name)}
    else:  # each its share of the budget, on a core of its own; then the rest to the closer one
        first_budget = int(evaluations * 0.4)
        with ProcessPoolExecutor(min(len(variants), os.cpu_count() or 1)) as pool:
            jobs = {name: pool.submit(nelder_mead, v, seen, x0, first_budget, real, window, seed, name)
                    for name, (v, seen) in variants.items()}
            results = {name: job.result() for name, job in jobs.items()}
    name = min(results, key=lambda n: results[n]["distance"])
    variant, seen_at_start = variants[name]
    best = results[name]
    simulations = sum(r["simulations"] for r in results.values())
    if len(variants) > 1:  # the rest of the budget on the closer one, from where it stood
        say(f"the customers came as {name}; fitting it further")
        more = nelder_mead(variant, seen_at_start, np.r_[best["x"], x0[len(best["x"]):]], evaluations - simulations,
                           real, window, seed, name)
        simulations += more["simulations"]
        if more["distance"] < best["distance"]:
            best = more
    fitted = _with_process(variant, best["x"], seen_at_start)
    what = None
    if season is not None:
        fitted, what = season(fitted)
        if fitted.season and refit:
            say("a season in the order rates; fitting the process again with it")
            variant = replace(variant, season=fitted.season, arrival_season=fitted.arrival_season,
                              arrivals_after_per_day=fitted.arrivals_after_per_day)
            best = nelder_mead(variant, seen_at_start, np.r_[best["x"], x0[len(best["x"]):]], refit, real, window,
                               seed, f"{name} with its season",
                               step=0.3)  # near the fit without it: a smaller first simplex
            simulations += best["simulations"]
            fitted, what = season(_with_process(variant, best["x"], seen_at_start))
    return fitted, {"distance": round(best["distance"], 4), "simulations": simulations, "arrivals": name,
                    "distance_by_arrivals": {k: round(v["distance"], 4) for k, v in results.items()},
                    "customers_simulated": min(fitted.customers, FIT_CUSTOMERS)}, what


def calendar_months(ms, start_ms: int, end_ms: int, tz):
    """The shop's calendar month (0 for January) of each instant (epoch ms, numpy) in [start_ms, end_ms]."""
    import numpy as np

    first = datetime.fromtimestamp(start_ms / 1000, tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts, months = [], []
    year, month = first.year, first.month
    while True:
        begin = int(datetime(year, month, 1, tzinfo=tz).timestamp() * 1000)
        if begin > end_ms:
            break
        starts.append(begin)
        months.append(month - 1)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return np.array(months)[np.searchsorted(np.array(starts), ms, side="right") - 1]


def settled_orders(customer, ms):
    """The instants (numpy) of the orders of customers past their first SEASON_SETTLED_DAYS (from their first
    order): a season is the calendar's, not a newcomer's first weeks (a cohort that came in January buys more in
    January for being new, which the twin's declines already tell)."""
    import numpy as np

    order = np.lexsort((ms, customer))
    customers, ms = customer[order], ms[order]
    starts = np.unique(customers, return_index=True)[1]
    first = np.repeat(ms[starts], np.diff(np.r_[starts, len(ms)]))
    return ms[ms >= first + SEASON_SETTLED_DAYS * DAY_MS]


def fit_season(profile: ShopProfile, export: Export, real_codes, real_ms, seed: int) -> tuple[ShopProfile, str]:
    """A month-of-year factor on every customer's order rate, from SEASON_DAYS of history or more: each calendar
    month's orders of settled customers (settled_orders) in the export over the twin's without the factor, shrunk to
    1 by SEASON_PRIOR orders and scaled to keep the twin's total, refined once on the twin with them; and the
    newcomers' own season after the span (first orders by month, per day). With it: the profile and what was
    fitted; with less history, the profile unchanged and why."""
    import numpy as np

    days = (export.end_ms - export.start_ms) / DAY_MS
    if days < SEASON_DAYS:
        return profile, f"{days:.0f} days of history; a season needs {SEASON_DAYS} (every month seen settled)"
    tz, span = export.tz, (export.start_ms, export.end_ms)
    real = np.bincount(calendar_months(settled_orders(real_codes, real_ms), *span, tz), minlength=12).astype(float)
    factors = np.array(profile.season or (1.0,) * 12)  # refined from the factors it has, if any
    customers = min(profile.customers, FIT_CUSTOMERS)
    for _ in range(SEASON_PASSES):
        trial = replace(profile, season=tuple(float(f) for f in factors), arrival_season=(1.0,) * 12)
        customer, ms, _, _ = simulate(trial, customers, seed, orders_only=True)
        twin = np.bincount(calendar_months(settled_orders(customer, ms), *span, tz), minlength=12)
        twin = twin * profile.customers / customers
        ratio = (real + SEASON_PRIOR) / (twin + SEASON_PRIOR)
        # the season moves orders between months; the process (its refit with the season) sets their level
        factors = factors * ratio / (np.sum(ratio * twin) / max(np.sum(twin), 1))
    # newcomers by month, per day of it in the span (a standing base's are taken as steady: its first sights in
    # the export mix its old customers with new ones)
    first = np.array(sorted(export.first_seen.values()), dtype=np.int64)
    newcomers = np.ones(12)
    if profile.existing_customers == 0 and len(first):
        every_day = np.arange(export.start_ms, export.end_ms, DAY_MS) + DAY_MS // 2
        per_month_days = np.bincount(calendar_months(every_day, *span, tz), minlength=12)
        per_day = np.bincount(calendar_months(first, *span, tz), minlength=12) / np.maximum(per_month_days, 1)
        if per_day.mean() > 0:
            newcomers = per_day / per_day.mean()
    tail = calendar_months(np.arange(export.end_ms - 28 * DAY_MS, export.end_ms, DAY_MS), *span, tz)
    # the rate after the span was the tail's, season and all: the profile's is without it
    had, level = float(np.array(profile.arrival_season or (1.0,) * 12)[tail].mean()), float(newcomers[tail].mean())
    after = profile.arrivals_after_per_day * had / level if level > 0 else profile.arrivals_after_per_day
    seasonal = replace(profile, season=tuple(round(float(f), 4) for f in factors),
                       arrival_season=tuple(round(float(f), 4) for f in newcomers), arrivals_after_per_day=after)
    peak, low = int(np.argmax(factors)), int(np.argmin(factors))
    return seasonal, (f"order rates by month of the year ({days:.0f} days of history), from settled customers' "
                      f"orders: highest {calendar.month_abbr[peak + 1]} x{factors[peak]:.2f}, lowest "
                      f"{calendar.month_abbr[low + 1]} x{factors[low]:.2f}; newcomers after the span by month")


# --- the fidelity report ----------------------------------------------------------------------------------

def rfm(figures: dict, values) -> tuple[Any, Any]:
    """RFM features at the cut-off (recency, frequency, monetary value, tenure, in days and money) of every
    customer with an order before it, and whether they then churned (no order within the horizon)."""
    import numpy as np

    cid, t, before, cut = figures["_cid"], figures["_t"], figures["_before"], figures["_cut"]
    n = len(figures["_n_before"])
    last = np.full(n, -np.inf)
    np.maximum.at(last, cid[before], t[before])
    first = np.full(n, np.inf)
    np.minimum.at(first, cid[before], t[before])
    spent = np.bincount(cid[before], weights=values[before], minlength=n)
    eligible = figures["_n_before"] > 0
    frequency = figures["_n_before"][eligible]
    x = np.column_stack([cut - last[eligible], frequency, spent[eligible] / frequency, cut - first[eligible]])
    return x, (figures["_n_after"][eligible] == 0).astype(int)


def churn_models(real: dict, twin: dict, seed: int) -> dict[str, dict[str, float]]:
    """Train on the twin, score on the real customers (AUC), beside the same model trained on the real
    customers (5-fold cross-validated AUC): an RFM logistic regression and gradient boosting."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x_real, y_real = rfm(real, real["values"])
    x_twin, y_twin = rfm(twin, twin["values"])
    models = {
        "rfm_logistic_regression": lambda: make_pipeline(FunctionTransformer(lambda x: np.log1p(np.maximum(x, 0))),
                                                         StandardScaler(), LogisticRegression(max_iter=1000)),
        "gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05,
                                                                    random_state=seed),
    }
    out = {}
    for name, make in models.items():
        if len(set(y_real)) < 2 or len(set(y_twin)) < 2:
            out[name] = {"trained_on_twin": None, "trained_on_real": None, "ratio": None}
            continue
        on_twin = roc_auc_score(y_real, make().fit(x_twin, y_twin).predict_proba(x_real)[:, 1])
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        on_real = roc_auc_score(y_real, cross_val_predict(make(), x_real, y_real, cv=folds,
                                                          method="predict_proba")[:, 1])
        out[name] = {"trained_on_twin": round(float(on_twin), 4), "trained_on_real": round(float(on_real), 4),
                     "ratio": round(float(on_twin / on_real), 4)}
    return out


def hours(ms, tz) -> Any:
    import numpy as np

    return np.bincount([datetime.fromtimestamp(m / 1000, tz).hour for m in ms], minlength=24) / max(1, len(ms))


def other_cutoffs(real_orders, twin_orders, window: Window) -> list[tuple[Window, dict, dict]]:
    """The churn question asked at a third and at two thirds of the span too (whole days; the same horizon, or what
    is left of the span): (window, the export's figures, the twin's) for each. The fit looks at the middle only."""
    out = []
    for share in (1 / 3, 2 / 3):
        cut = window.start_ms + int(share * window.days) * DAY_MS
        if cut in (window.cutoff_ms, window.start_ms) or cut >= window.end_ms:
            continue
        horizon = min(window.horizon_ms, window.end_ms - cut) / DAY_MS
        w = replace(window, cutoff_ms=cut, horizon_ms=int(horizon * DAY_MS))
        out.append((w, order_figures(*real_orders, w), order_figures(*twin_orders, w)))
    return out


def fidelity(real: dict, twin: dict, window: Window, export: Export, twin_ms, models: dict,
             cutoffs: list[tuple[Window, dict, dict]] = ()) -> list[dict]:
    """The report's rows: the export's figure, the twin's, the distance and its target."""
    def row(figure, real_value, twin_value, measure, value, target, ok, note=""):
        return {"figure": figure, "export": real_value, "twin": twin_value, "measure": measure,
                "value": round(value, 4) if value is not None else None, "target": target,
                "ok": ok, **({"note": note} if note else {})}

    def within(a, b, share):
        return abs(b / a - 1) if a else math.inf

    rows = []
    for name, key in (("customers with an order", "customers"), ("orders", "orders")):
        off = within(real[key], twin[key], 0.1)
        rows.append(row(name, real[key], twin[key], "relative difference", off, "<= 0.10", off <= 0.10))
    real_values = [o[2] for o in export.orders if window.start_ms <= o[1] < window.end_ms]
    for name, measure, value, target in (
            ("orders per customer (1..9, 10+)", "TV", tv(real["orders_per_customer"], twin["orders_per_customer"]),
             0.05),
            ("days between a customer's orders", "KS", ks(real["gaps"], twin["gaps"]), 0.10),
            ("order value", "KS", ks(real_values, twin["values"]), 0.10),
            ("week of a customer's first order", "TV", tv(real["first_week"], twin["first_week"]), 0.10),
            ("orders by month", "TV", tv(real["month"], twin["month"]), 0.08),
            ("orders by weekday", "TV", tv(real["weekday"], twin["weekday"]), 0.05)):
        rows.append(row(name, None, None, measure, value, f"<= {target:.2f}", value <= target))
    if export.time_of_day:
        real_ms = [o[1] for o in export.orders if window.start_ms <= o[1] < window.end_ms]
        value = tv(hours(real_ms, window.tz), hours(twin_ms, window.tz))
        rows.append(row("orders by hour", None, None, "TV", value, "<= 0.05", value <= 0.05))
    for w, real_at, twin_at in ((window, real, twin), *cutoffs):  # the fit's cut-off first
        cutoff = TimestampFormatter()(w.cutoff_ms)[:10]
        horizon = w.horizon_ms / DAY_MS
        for name, key in ((f"churn at {cutoff} (no order in the next {horizon:g} days)", "churn"),
                          (f"repeat buyers by {cutoff}", "repeat")):
            off = abs(real_at[key] - twin_at[key])
            rows.append(row(name, round(real_at[key], 4), round(twin_at[key], 4), "difference (points)", 100 * off,
                            "<= 3", off <= 0.03))
    for name, m in models.items():
        if m["ratio"] is None:
            continue
        label = {"rfm_logistic_regression": "RFM logistic regression"}.get(name, name.replace("_", " "))
        rows.append(row(f"{label}, AUC: trained on twin / on export", m["trained_on_real"], m["trained_on_twin"],
                        "ratio", m["ratio"], ">= 0.95", m["ratio"] >= 0.95,
                        "AUC on the export's customers; trained on the export: 5-fold cross-validated"))
    return rows


def over_seeds(rows: list[dict], profile: ShopProfile, real: dict, real_orders, window: Window, export: Export,
               values, seeds: list[int]) -> list[dict]:
    """The report's rows as the median over seeds the fit did not use, with their spread (lowest, highest): each
    seed's twin with its orders alone (the same order process as the whole stream, valueless: the order value's
    row and the churn models' stay the fit seed's whole twin's, as `seed` says). Each row keeps the fit seed's
    figures under `fit_seed`."""
    import numpy as np

    per_seed = []
    for seed in seeds:
        customer, ms, _, _ = simulate(profile, profile.customers, seed, orders_only=True)
        twin = order_figures(customer, ms, window) | {"values": values}
        per_seed.append({r["figure"]: r for r in fidelity(real, twin, window, export, ms, {},
                                                          other_cutoffs(real_orders, (customer, ms), window))})
    out = []
    for r in rows:
        seen = [s[r["figure"]] for s in per_seed if r["figure"] in s and r["figure"] != "order value"]
        if not seen:
            out.append(r | {"fit_seed": {"twin": r["twin"], "value": r["value"]}, "seeds": None})
            continue
        value = float(np.median([s["value"] for s in seen]))
        twin = None if r["twin"] is None else type(r["twin"])(np.median([s["twin"] for s in seen]))
        at_least = r["target"].startswith(">=")  # the targets read ">= 0.95" or "<= 0.10"
        out.append(r | {"twin": twin, "value": round(value, 4), "ok": value >= float(r["target"][3:]) if at_least
                        else value <= float(r["target"][3:]),
                        "lowest": min(s["value"] for s in seen), "highest": max(s["value"] for s in seen),
                        "fit_seed": {"twin": r["twin"], "value": r["value"]}, "seeds": seeds})
    return out


# --- validation in time: fitted on the past, the forecast against what came (--holdout) -------------------------

def holdout_start(args: argparse.Namespace, export: Export) -> int | None:
    """--holdout DATE (local midnight in the shop's time zone) or --holdout-weeks N (the last N weeks of the
    export): where the holdout begins; BadInput when it leaves no holdout or too little history to fit."""
    first, last = local_day(export.start_ms, export.tz), local_day(export.end_ms - DAY_MS, export.tz)
    if args.holdout_weeks is not None:
        if args.holdout_weeks < 1:
            raise BadInput(f"--holdout-weeks {args.holdout_weeks}: expected 1 or more weeks")
        start, what = export.end_ms - args.holdout_weeks * shopsim.WEEK_MS, f"--holdout-weeks {args.holdout_weeks}"
    elif args.holdout:
        what = f"--holdout {args.holdout}"
        try:
            # A calendar date is the shop's own: its midnight in the shop's time zone (a date-time: its day's).
            day = datetime.strptime(args.holdout.strip(), "%Y-%m-%d")
            start = int(day.replace(tzinfo=export.tz).timestamp() * 1000)
        except ValueError:
            try:
                at = shopsim.parse_time(args.holdout)
            except ValueError as exc:
                raise BadInput(f"{what}: {exc}") from None
            if at is None:
                raise BadInput(f"{what}: expected a date such as {last}")
            start = local_midnight(at, export.tz)
        if not export.start_ms < start < export.end_ms:
            raise BadInput(f"{what}: outside the export ({first} to {last}); expected a date inside it")
    else:
        return None
    history, ahead = (start - export.start_ms) / DAY_MS, (export.end_ms - start) / DAY_MS
    if history < MIN_SPAN_DAYS:
        raise BadInput(f"{what}: leaves {max(0, history):.0f} days of history before it, too little to fit the twin "
                       f"(it learns how customers come back); expected {MIN_SPAN_DAYS} days or more before the holdout "
                       f"(the export starts {first})")
    if ahead < MIN_HOLDOUT_DAYS:
        raise BadInput(f"{what}: leaves {max(0, ahead):.0f} days to forecast; expected {MIN_HOLDOUT_DAYS} days or more "
                       f"after it (the export ends {last})")
    return start


def local_day(ms: int, tz) -> str:
    """The shop's calendar day of an instant: 2026-09-01."""
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d")


def before(export: Export, start_ms: int) -> Export:
    """The export as it stood at start_ms: its orders and customers before it (the calibration period). An event
    export's funnel and session hours stay those of the whole export (the order process is what is forecast)."""
    orders = [o for o in export.orders if o[1] < start_ms]
    first_seen = {c: ms for c, ms in export.first_seen.items() if ms < start_ms}
    past = replace(export, orders=orders, first_seen=first_seen, skipped=Counter(export.skipped),
                   notes=export.notes + [f"fitted on the orders before {local_day(start_ms, export.tz)} (--holdout)"])
    past.end_ms = start_ms
    return past


def holdout_figures(customer, ms, start_ms: int, end_ms: int, tz) -> dict[str, Any]:
    """What a forecast of [start_ms, end_ms) is judged on, from orders (customer codes, epoch ms): the repeat
    purchases of the customers known before it (customer-days, as Fader, Hardie and Lee 2005 count them) by week,
    their purchases per customer (0, 1, ... 10 or more), the share with none, the new customers, and every
    customer's purchases (customer-days) by month of the shop's calendar."""
    import numpy as np

    first = {}
    for c, t in zip(customer.tolist(), ms.tolist()):
        if t < first.get(c, t + 1):
            first[c] = t
    known = np.array([first[c] < start_ms for c in customer.tolist()], bool) if len(customer) else np.zeros(0, bool)
    inside = (ms >= start_ms) & (ms < end_ms)
    pairs = np.unique(np.stack([customer[inside & known], (ms[inside & known] - start_ms) // DAY_MS]), axis=1)
    weeks = int(math.ceil((end_ms - start_ms) / shopsim.WEEK_MS))
    base = sum(1 for t in first.values() if t < start_ms)
    bought = np.unique(pairs[0], return_counts=True)[1]  # customer-days of each customer who bought
    per_customer = np.bincount(np.minimum(bought, 10), minlength=11).astype(float)
    per_customer[0] = base - len(bought)
    every = np.unique(np.stack([customer[inside], (ms[inside] - start_ms) // DAY_MS]), axis=1)[1]
    months = Counter(datetime.fromtimestamp((start_ms + int(d) * DAY_MS + 43_200_000) / 1000, tz).strftime("%Y-%m")
                     for d in every)  # noon of the day: clear of daylight saving
    return {"weekly": np.bincount(pairs[1] // 7, minlength=weeks)[:weeks].astype(float),
            "per_customer": per_customer / max(1, base), "none": per_customer[0] / max(1, base),
            "new_customers": sum(1 for t in first.values() if start_ms <= t < end_ms), "base": base,
            "months": dict(months)}


def repeat_summary(orders, start_ms: int, end_ms: int) -> tuple[list[int], list[float], list[float]]:
    """BTYD's summary of the orders in [start_ms, end_ms) (local midnights), per customer: x, their repeat purchase
    days; t_x, the weeks from their first purchase day to their last; T, the weeks from their first to the last day
    of the period (FHL 2005's CDNOW figures: days, counted in weeks)."""
    days_of: dict[str, set[int]] = defaultdict(set)
    for customer, ms, *_ in orders:
        if start_ms <= ms < end_ms:
            days_of[customer].add((ms - start_ms) // DAY_MS)
    last_day = (end_ms - start_ms) // DAY_MS - 1
    x, t_x, big_t = [], [], []
    for days in days_of.values():
        first = min(days)
        x.append(len(days) - 1)
        t_x.append((max(days) - first) / 7)
        big_t.append((last_day - first) / 7)
    return x, t_x, big_t


def bgnbd_fit(x, t_x, big_t) -> dict[str, float]:
    """BG/NBD (Fader, Hardie and Lee 2005) by maximum likelihood: x repeat purchases, the last at t_x, of T weeks
    since the first. On FHL's CDNOW sample it gives their r, alpha, a, b (tests/pure/test_twin.py)."""
    import numpy as np
    from scipy import special

    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))

    def minus_ll(log_params) -> float:
        r, alpha, a, b = np.exp(log_params)
        ll = (special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + special.gammaln(a + b)
              + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x))
        ended = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
                         -np.inf)
        return -float(np.sum(ll + np.logaddexp(-(r + x) * np.log(alpha + big_t), ended)))
    return _most_likely(minus_ll, [0.5, max(1.0, float(big_t.mean()) / 4), 1.0, 2.0], ("r", "alpha", "a", "b"))


def _most_likely(minus_ll, start: list[float], names: tuple[str, ...]) -> dict[str, float]:
    """The parameters (all positive: searched as logarithms) that minimise minus_ll, by Nelder-Mead; each between
    1e-4 and 1e4: a history with no sign of dropout or of differences between customers drives them to infinity
    (the Poisson limit), where a forecast is no longer computable (holdout_report says so)."""
    import warnings

    import numpy as np
    from scipy import optimize

    def finite(log_params) -> float:
        value = minus_ll(log_params)
        return value if np.isfinite(value) else 1e300
    with warnings.catch_warnings():  # hyp2f1 and log at the edges of the search: answered by `finite`
        warnings.simplefilter("ignore", RuntimeWarning)
        found = optimize.minimize(finite, np.log(start), method="Nelder-Mead", bounds=[(-9.2, 9.2)] * len(start),
                                  options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 10_000})
    return {**{name: float(v) for name, v in zip(names, np.exp(found.x))}, "log_likelihood": -float(found.fun)}


def _pareto_a0(r, alpha, s, beta, x, t_x, big_t):
    """log of the Pareto/NBD likelihood's A0 term (Fader and Hardie 2005, "A note on deriving the Pareto/NBD
    model and related expressions", equations 19-20): hyp2f1 in whichever of alpha, beta is larger."""
    import numpy as np
    from scipy import special

    c = r + s + x
    if alpha >= beta:
        b, at_x, at_t, gap = s + 1, alpha + t_x, alpha + big_t, alpha - beta
    else:
        b, at_x, at_t, gap = r + x, beta + t_x, beta + big_t, beta - alpha
    first = np.log(special.hyp2f1(c, b, c + 1, gap / at_x)) - c * np.log(at_x)
    last = np.log(special.hyp2f1(c, b, c + 1, gap / at_t)) - c * np.log(at_t)
    with np.errstate(divide="ignore"):  # t_x = T: A0 is 0
        return first + np.log1p(-np.exp(np.minimum(last - first, 0.0)))


def pareto_nbd_fit(x, t_x, big_t) -> dict[str, float]:
    """Pareto/NBD (Schmittlein, Morrison and Colombo 1987) by maximum likelihood, on the same summary as BG/NBD.
    On FHL's CDNOW sample it gives Fader, Hardie and Lee's r, alpha, s, beta (tests/pure/test_twin.py)."""
    import numpy as np
    from scipy import special

    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))

    def minus_ll(log_params) -> float:
        r, alpha, s, beta = np.exp(log_params)
        stayed = -(r + x) * np.log(alpha + big_t) - s * np.log(beta + big_t)
        left = np.log(s / (r + s + x)) + _pareto_a0(r, alpha, s, beta, x, t_x, big_t)
        return -float(np.sum(special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
                             + np.logaddexp(stayed, left)))
    return _most_likely(minus_ll, [0.5, max(1.0, float(big_t.mean()) / 4), 0.5, max(1.2, float(big_t.mean()) / 3)],
                        ("r", "alpha", "s", "beta"))


def pareto_nbd_expected(p: dict[str, float], t, x, t_x, big_t):
    """Pareto/NBD's expected repeat purchases in the t weeks after the calibration period, summed over the
    customers (Fader and Hardie's note, equation 27: those of a live customer, times the chance of being alive)."""
    import numpy as np

    r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))
    if t <= 0:
        return 0.0
    live = (r + x) * (beta + big_t) / ((alpha + big_t) * (s - 1)) * (1 - ((beta + big_t) / (beta + big_t + t)) ** (s - 1))
    return float(np.sum(live * pareto_nbd_alive(p, x, t_x, big_t)))


def pareto_nbd_alive(p: dict[str, float], x, t_x, big_t):
    """Pareto/NBD's chance that each customer is alive at the end of the calibration period (Fader and Hardie's
    note: the likelihood's term for having stayed over the sum of both terms)."""
    import numpy as np

    r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))
    dead_odds = np.exp(np.log(s / (r + s + x)) + (r + x) * np.log(alpha + big_t) + s * np.log(beta + big_t)
                       + _pareto_a0(r, alpha, s, beta, x, t_x, big_t))
    return 1 / (1 + dead_odds)


def bgnbd_alive(p: dict[str, float], x, t_x, big_t):
    """BG/NBD's chance that each customer is alive at the end of the calibration period (FHL 2005, equation 11;
    one with no repeat purchase has not left: a BG/NBD customer can only leave just after a purchase)."""
    import numpy as np

    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))
    return 1 / (1 + (x > 0) * a / np.maximum(b + x - 1, 1e-12) * ((alpha + big_t) / (alpha + t_x)) ** (r + x))


def bgnbd_expected(p: dict[str, float], t, x, t_x, big_t):
    """BG/NBD's expected repeat purchases in the t weeks after the calibration period, summed over the customers
    (FHL 2005, equation 10)."""
    import numpy as np
    from scipy import special

    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))
    if t <= 0:
        return 0.0
    z = t / (alpha + big_t + t)
    head = (a + b + x - 1) / (a - 1)
    body = 1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    return float(np.sum(head * body * bgnbd_alive(p, x, t_x, big_t)))


def bgnbd_none(p: dict[str, float], t, x, t_x, big_t) -> float:
    """BG/NBD's share of the customers with no purchase in the t weeks after the calibration period: gone, or alive
    (FHL 2005, equation 11) and without a purchase, which under a purchase rate drawn from its posterior
    gamma(r + x, alpha + T) has chance ((alpha + T) / (alpha + T + t)) ** (r + x) (a BG/NBD customer can only
    leave just after a purchase)."""
    import numpy as np

    r, alpha = p["r"], p["alpha"]
    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))
    alive = bgnbd_alive(p, x, t_x, big_t)
    quiet = ((alpha + big_t) / (alpha + big_t + t)) ** (r + x)
    return float(np.mean(1 - alive + alive * quiet))


def pareto_nbd_none(p: dict[str, float], t, x, t_x, big_t) -> float:
    """Pareto/NBD's share of the customers with no purchase in the t weeks after the calibration period. Alive at
    T, a customer's purchase rate and dropout rate are independent gammas, (r + x, alpha + T) and (s, beta + T);
    the chance of a first purchase before dropping out within t is the integral over u in [0, t] of
    E[lambda e^(-lambda u)] E[e^(-mu u)], both closed forms: Gauss-Legendre on 64 points, the integrand smooth."""
    import numpy as np

    r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
    x, t_x, big_t = (np.asarray(v, float) for v in (x, t_x, big_t))
    alive = pareto_nbd_alive(p, x, t_x, big_t)
    nodes, weights = np.polynomial.legendre.leggauss(64)
    u = (nodes[:, None] + 1) * t / 2
    shape, rate, leave = r + x, alpha + big_t, beta + big_t
    density = shape / rate * (rate / (rate + u)) ** (shape + 1) * (leave / (leave + u)) ** s
    bought = (weights[:, None] * density).sum(axis=0) * t / 2
    return float(np.mean(1 - alive * bought))


def holdout_report(export: Export, past: Export, start_ms: int, profile: ShopProfile, seeds: list[int],
                   say) -> dict[str, Any]:
    """The twin (fitted on `past`) and BG/NBD forecast [start_ms, export end), each against what came: the twin's
    figures are the median over `seeds`, with their lowest and highest."""
    import numpy as np

    end_ms = export.end_ms
    codes = {c: i for i, c in enumerate(export.first_seen)}
    real = holdout_figures(np.array([codes[o[0]] for o in export.orders], dtype=np.int64),
                           np.array([o[1] for o in export.orders], dtype=np.int64), start_ms, end_ms, export.tz)
    weeks = len(real["weekly"])
    busiest = max(real["months"], key=real["months"].get) if real["months"] else None

    def judged(weekly) -> dict[str, float]:
        real_total = real["weekly"].sum()
        seen = real["weekly"] > 0
        return {"weekly_mape": float(np.mean(np.abs(weekly[seen] - real["weekly"][seen]) / real["weekly"][seen])),
                "total_error": float((weekly.sum() - real_total) / max(1.0, real_total))}

    runs = []
    for seed in seeds:
        mark = time.monotonic()
        customer, ms, _, _ = simulate(profile, profile.customers, seed, orders_only=True, until_ms=end_ms)
        twin = holdout_figures(customer, ms, start_ms, end_ms, export.tz)
        runs.append(twin | judged(twin["weekly"]) | {"per_customer_tv": tv(real["per_customer"], twin["per_customer"]),
                                                     "busiest_month_error": twin["months"].get(busiest, 0)
                                                     / real["months"][busiest] - 1 if busiest else 0.0})
        say(f"the forecast, seed {seed}: {time.monotonic() - mark:.1f} s")

    def spread(key: str) -> dict[str, float]:
        values = [float(r[key]) for r in runs]
        return {"median": float(np.median(values)), "lowest": min(values), "highest": max(values)}
    x, t_x, big_t = repeat_summary(past.orders, past.start_ms, start_ms)  # BTYD on the same split
    span_weeks = (end_ms - start_ms) / shopsim.WEEK_MS
    btyd = {}
    for name, fit_model, expected, none in (("bgnbd", bgnbd_fit, bgnbd_expected, bgnbd_none),
                                            ("pareto_nbd", pareto_nbd_fit, pareto_nbd_expected, pareto_nbd_none)):
        mark = time.monotonic()
        params = fit_model(x, t_x, big_t)
        with np.errstate(all="ignore"):
            weekly = np.diff(np.r_[0.0, [expected(params, min(k + 1, span_weeks), x, t_x, big_t)
                                         for k in range(weeks)]])
        # Customer-days: a week holds at most 7 per customer. Past that (or not finite), the fit is at the edge of
        # its parameters and hyp2f1 no longer holds there: no figure rather than a wrong one.
        sane = np.all(np.isfinite(weekly)) and np.all(weekly >= -1e-9) and np.all(weekly <= 7 * len(x))
        with np.errstate(all="ignore"):
            quiet = none(params, span_weeks, x, t_x, big_t)
        btyd[name] = {"params": params, "weekly": weekly.tolist() if sane else None,
                      **(judged(weekly) | {"none": quiet} if sane and 0 <= quiet <= 1 else
                         {"weekly_mape": None, "total_error": None, "none": None,
                          "note": "no forecast: the fit reached the edge of its parameters"})}
        say(f"{name}: fitted and forecast in {time.monotonic() - mark:.1f} s")
    twin_weekly = np.median(np.array([r["weekly"] for r in runs]), axis=0)
    return {"start": local_day(start_ms, export.tz), "end": local_day(end_ms - DAY_MS, export.tz), "weeks": weeks,
            "seeds": seeds, "customers_before": real["base"],
            "real": {"repeat_purchases": float(real["weekly"].sum()), "new_customers": real["new_customers"],
                     "none": real["none"], "busiest_month": busiest,
                     "busiest_month_purchases": real["months"].get(busiest, 0)},
            "twin": {"weekly_mape": spread("weekly_mape"), "total_error": spread("total_error"),
                     "new_customers": spread("new_customers"), "per_customer_tv": spread("per_customer_tv"),
                     "none": spread("none"), "busiest_month_error": spread("busiest_month_error")},
            **{name: {k: v for k, v in model.items() if k != "weekly"} for name, model in btyd.items()},
            "weekly": {"real": real["weekly"].tolist(), "twin": twin_weekly.tolist(),
                       **{name: model["weekly"] for name, model in btyd.items()}}}


def holdout_text(h: dict[str, Any]) -> str:
    def twin(key: str, pct: bool = True) -> str:
        v = h["twin"][key]
        f = (lambda n: f"{100 * n:+.1f}%" if key.endswith("_error") else f"{100 * n:.1f}%") if pct else \
            (lambda n: f"{n:,.0f}" if key == "new_customers" else f"{n:.3f}")
        return f"{f(v['median'])} ({f(v['lowest'])} to {f(v['highest'])})"
    def btyd(name: str, key: str, sign: str = "") -> str:
        value = h[name][key]
        return "-" if value is None else f"{value:.3f}" if key == "none" else f"{100 * value:{sign}.1f}%"

    def fitted(name: str, title: str) -> str:
        model = h[name]
        return (f"{title} fitted on the same history: " + ", ".join(f"{k} {v:.3f}" for k, v in model["params"].items()
                                                                     if k != "log_likelihood")
                + (f"; {model['note']}" if model.get("note") else ""))
    return "\n".join([
        "", f"holdout {h['start']} to {h['end']} ({h['weeks']} weeks), forecast from the {h['customers_before']:,} "
        f"customers before it; the twin: median of seeds {', '.join(map(str, h['seeds']))} (lowest to highest)",
        f"{'':<46}{'real':>12}  {'twin':<30}{'BG/NBD':>10}{'Pareto/NBD':>12}",
        f"{'repeat purchases (customer-days), total error':<46}{h['real']['repeat_purchases']:>12,.0f}  "
        f"{twin('total_error'):<30}{btyd('bgnbd', 'total_error', '+'):>10}{btyd('pareto_nbd', 'total_error', '+'):>12}",
        f"{'weekly repeat purchases, MAPE':<46}{'':>12}  {twin('weekly_mape'):<30}{btyd('bgnbd', 'weekly_mape'):>10}"
        f"{btyd('pareto_nbd', 'weekly_mape'):>12}",
        f"{'new customers':<46}{h['real']['new_customers']:>12,}  {twin('new_customers', False):<30}{'-':>10}{'-':>12}",
        f"{'purchases in the busiest month, ' + str(h['real']['busiest_month']):<46}"
        f"{h['real']['busiest_month_purchases']:>12,}  {twin('busiest_month_error'):<30}",
        f"{'share with no purchase in the holdout':<46}{h['real']['none']:>12.3f}  {twin('none', False):<30}"
        f"{btyd('bgnbd', 'none'):>10}{btyd('pareto_nbd', 'none'):>12}",
        f"{'holdout purchases per customer, TV':<46}{'':>12}  {twin('per_customer_tv', False):<30}",
        fitted("bgnbd", "BG/NBD"), fitted("pareto_nbd", "Pareto/NBD")])


def report_text(rows: list[dict], export: Export, profile: ShopProfile, fitted: dict[str, str], fit: dict,
                window: Window, timings: dict[str, float], seeds: list[int]) -> str:
    fmt = TimestampFormatter()
    skipped = ", ".join(f"{n:,} {why}" for why, n in export.skipped.items()) or "none"
    lines = [f"{export.source}: {export.rows:,} rows, {len(export.orders):,} orders of {len(export.first_seen):,} "
             f"customers, {fmt(window.start_ms)[:10]} to {fmt(window.end_ms)[:10]} ({profile.timezone}); "
             f"skipped: {skipped}",
             *[f"note: {note}" for note in export.notes],
             "columns: " + ", ".join(f"{role}={name}" for role, name in export.columns.items()),
             "fitted: " + "; ".join(f"{k} ({v})" for k, v in fitted.items()),
             "defaults (sessions mode's published figures): " + ", ".join(defaults_of(fitted)),
             f"the twin: producer.py's simulator with this profile over the same span: the median of seeds "
             f"{', '.join(map(str, seeds))} (their lowest to highest), not the fit's ({fit['seed']}: the whole twin's "
             f"order values and churn models); fit distance {fit['distance']} after {fit['simulations']} simulations",
             "",
             f"{'figure':<58}{'export':>10}{'twin':>10}  {'measure':<20}{'value':>8} {'seeds':<15} target"]
    for r in rows:
        def shown(v):
            return "" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.3f}"
        spread = f"{r['lowest']:.3f}-{r['highest']:.3f}" if r.get("seeds") else f"(seed {fit['seed']})"
        lines.append(f"{r['figure'][:58]:<58}{shown(r['export']):>10}{shown(r['twin']):>10}  {r['measure']:<20}"
                     f"{r['value']:>8.3f} {spread:<15} {r['target']} {'ok' if r['ok'] else 'MISSED'}")
    met = sum(r["ok"] for r in rows)
    lines += ["", f"{met} of {len(rows)} figures within their targets; "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())]
    return "\n".join(lines)


def defaults_of(fitted: dict[str, str]) -> list[str]:
    every = {"arrivals": "arrivals", "order_value": "order value", "items": "items per order",
             "weekday": "weekly cycle", "hourly": "daily cycle", "funnel": "browse funnel (sessions per order, "
             "bounce, views, abandoned carts)", "products": "products and their popularity",
             "process": "order and retention process",
             "season": f"no season (fitted from {SEASON_DAYS} days of history or more)"}
    return [text for key, text in every.items() if key not in fitted] + [
        "decline length (a median of 40 days) and its visibility (CHURN_SIGNAL)"]


def plot(path: str, real: dict, twin: dict, window: Window, rows: list[dict], export: Export,
         held: dict | None = None) -> None:
    """The report drawn; with a holdout, below it the weekly tracking curve: what came, the twin's forecast and
    the two BTYD models'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(3 if held else 2, 3, figsize=(17, 16 if held else 11))
    colours = {"export": "#4c72b0", "twin": "#dd8452"}
    a = axes[0][0]
    bins = np.arange(1, 11)
    a.bar(bins - 0.2, real["orders_per_customer"], 0.4, label="export", color=colours["export"])
    a.bar(bins + 0.2, twin["orders_per_customer"], 0.4, label="twin", color=colours["twin"])
    a.set_xticks(bins, [*map(str, range(1, 10)), "10+"])
    a.set_title("orders per customer")
    a.legend()
    a = axes[0][1]
    for name, f in (("export", real), ("twin", twin)):
        g = np.sort(f["gaps"])
        a.plot(g, np.arange(1, len(g) + 1) / max(1, len(g)), label=name, color=colours[name])
    a.set_xscale("symlog")
    a.set_title("days between a customer's orders (CDF)")
    a.legend()
    a = axes[0][2]
    for name, v in (("export", np.array([o[2] for o in export.orders])), ("twin", twin["values"])):
        v = np.sort(v)
        a.plot(np.maximum(v, 0.01), np.arange(1, len(v) + 1) / max(1, len(v)), label=name, color=colours[name])
    a.set_xscale("log")
    a.set_title("order value (CDF)")
    a.legend()
    a = axes[1][0]
    a.plot(real["month"], marker="o", label="export", color=colours["export"])
    a.plot(twin["month"], marker="o", label="twin", color=colours["twin"])
    step = max(1, len(window.months) // 6)
    a.set_xticks(range(0, len(window.months), step), window.months[::step])
    a.set_title("orders by month (share)")
    a.legend()
    a = axes[1][1]
    days = np.arange(7)
    a.bar(days - 0.2, real["weekday"], 0.4, label="export", color=colours["export"])
    a.bar(days + 0.2, twin["weekday"], 0.4, label="twin", color=colours["twin"])
    a.set_xticks(days, "Mon Tue Wed Thu Fri Sat Sun".split())
    a.set_title(f"orders by weekday ({window.tz})")
    # Room above the bars for the legend: it covered Saturday and Sunday.
    a.set_ylim(0, 1.25 * max(max(real["weekday"]), max(twin["weekday"])))
    a.legend(loc="upper center", ncol=2)
    a = axes[1][2]
    a.axis("off")
    # Each figure whole (wrapped, not cut), its distance, target and verdict on a line of their own.
    text = []
    for r in rows:
        text += textwrap.wrap(r["figure"], 52) or [""]
        text.append(f"    {r['value']:.3f}  {r['target']}  {'ok' if r['ok'] else 'MISSED'}")
    a.text(-0.05, 1.05, "\n".join(text), va="top", family="monospace", fontsize=9.5 if len(rows) <= 13 else 8,
           transform=a.transAxes)
    if held:
        for a in axes[2]:
            a.remove()
        a = fig.add_subplot(3, 1, 3)
        weeks = np.arange(1, held["weeks"] + 1)
        for name, label, colour in (("real", "what came", colours["export"]), ("twin", "the twin (median of seeds)",
                                                                                 colours["twin"]),
                                    ("bgnbd", "BG/NBD", "#55a868"), ("pareto_nbd", "Pareto/NBD", "#8172b2")):
            if held["weekly"].get(name) is not None:
                a.plot(weeks, held["weekly"][name], label=label, color=colour, marker="o" if name == "real" else None)
        a.set_title(f"holdout {held['start']} to {held['end']}: weekly repeat purchases (customer-days) of the "
                    f"{held['customers_before']:,} customers before it")
        a.set_xlabel("week of the holdout")
        a.legend()
    met = sum(r["ok"] for r in rows)
    fig.suptitle(f"{os.path.basename(export.source)} and its twin: {met} of {len(rows)} figures within target",
                 fontsize=14)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the command ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calibrate.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:3]))
    parser.add_argument("export", help="the shop's export: orders or invoice lines (CSV or whitespace-separated), "
                                       "or events as JSON lines")
    parser.add_argument("--profile", metavar="PATH", required=True, help="where to write the shop profile (JSON)")
    columns = parser.add_argument_group("columns (recognised by their usual names when not given)")
    for role, example in (("customer", "CustomerID"), ("time", "InvoiceDate"), ("value", "an order's value"),
                          ("quantity", "items of a line or an order"), ("price", "a line's unit price"),
                          ("order", "InvoiceNo: lines with the same id are one order"),
                          ("product", "StockCode: product popularity")):
        columns.add_argument(f"--{role}-column", metavar="NAME", help=example)
    columns.add_argument("--time-format", metavar="STRPTIME", help="e.g. %%d/%%m/%%Y %%H:%%M (default: ISO 8601 and "
                                                                   "the common layouts are recognised)")
    columns.add_argument("--no-header", action="store_true", help="the file has no header line (give --columns)")
    columns.add_argument("--columns", metavar="A,B,C", help="the column names, in order")
    columns.add_argument("--duplicates", choices=("auto", "drop", "keep"), default="auto",
                         help="rows that repeat another exactly: auto (the default) drops them when an order id "
                              "makes them the same line of one order twice, and keeps them as orders otherwise; "
                              "drop or keep all; the report says how many")
    parser.add_argument("--timezone", default="UTC", help="the shop's time zone: naive times are in it, and the "
                                                          "daily and weekly cycle is read in it (default UTC)")
    parser.add_argument("--cutoff", metavar="DATE", help="the churn question's cut-off (default: the middle of "
                                                         "the span, in whole weeks)")
    parser.add_argument("--horizon-days", type=float, help=f"no order within this many days after the cut-off is "
                                                           f"churn (default {HORIZON_DAYS:g}, or what the span "
                                                           "leaves)")
    parser.add_argument("--seed", type=int, default=1, help="the twin's seed, for the fit and the report")
    held = parser.add_mutually_exclusive_group()
    held.add_argument("--holdout", metavar="DATE", help="validation in time: fit on the export before DATE, forecast "
                      "the rest, and report the forecast against what came, beside BG/NBD's")
    held.add_argument("--holdout-weeks", metavar="N", type=int, help="the same, with the export's last N weeks held out")
    parser.add_argument("--seeds", "--holdout-seeds", metavar="N", type=int, default=REPORT_SEEDS, dest="seeds",
                        help=f"the report's figures (and --holdout's) are the median of N seeds after --seed, with "
                             f"their spread (default {REPORT_SEEDS})")
    parser.add_argument("--evaluations", type=int, default=FIT_EVALUATIONS, help="simulations the fit may run")
    parser.add_argument("--no-report", action="store_true", help="write the profile only")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--plot", metavar="PNG", help="draw the report: the export and its twin side by side")
    return parser


def missing_modules() -> str | None:
    import importlib.util

    missing = [m for m in ("numpy", "scipy", "sklearn") if importlib.util.find_spec(m) is None]
    return ", ".join(missing) if missing else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    say = (lambda text: print(f"calibrate: {text}", file=sys.stderr, flush=True))
    missing = missing_modules()
    if missing:
        say(f"needs {missing} (numpy, scipy and scikit-learn fit the profile); install them with `make setup-dev`")
        return EXIT_BAD_INPUT
    try:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(shopsim.parse_timezone(args.timezone))
    except ValueError as exc:
        say(f"--timezone {args.timezone}: {exc}")
        return EXIT_BAD_INPUT
    folder = os.path.dirname(os.path.abspath(args.profile))
    if os.path.isdir(args.profile) or not os.access(folder, os.W_OK):
        say(f"--profile {args.profile}: cannot be written; expected a file path in a writable folder")
        return EXIT_BAD_INPUT
    if args.plot and (os.path.isdir(args.plot) or not os.access(os.path.dirname(os.path.abspath(args.plot)), os.W_OK)):
        say(f"--plot {args.plot}: cannot be written; expected a PNG path in a writable folder")
        return EXIT_BAD_INPUT
    # checked before the fit, not after it: a fit takes minutes
    if args.plot and not args.plot.lower().endswith(".png"):
        say(f"--plot {args.plot}: the report is drawn as a PNG; expected a path ending in .png")
        return EXIT_BAD_INPUT
    if args.evaluations < 1:
        say(f"--evaluations {args.evaluations}: expected 1 or more simulations for the fit (default {FIT_EVALUATIONS})")
        return EXIT_BAD_INPUT
    if args.seeds < 1:
        say(f"--seeds {args.seeds}: expected 1 or more seeds (default {REPORT_SEEDS})")
        return EXIT_BAD_INPUT
    if args.horizon_days is not None and not 0 < args.horizon_days <= 3650:
        say(f"--horizon-days {args.horizon_days:g}: expected days above 0 and at most 3650")
        return EXIT_BAD_INPUT
    timings: dict[str, float] = {}
    try:
        export = whole = read_export(args.export, args, tz)
        timings["read"] = time.monotonic() - started
        held_from = holdout_start(args, export)
        if held_from is not None:
            export = before(whole, held_from)
        window = make_window(export.start_ms, export.end_ms, tz, args.cutoff, args.horizon_days,
                             not export.time_of_day)
    except BadInput as exc:
        say(str(exc))
        return EXIT_BAD_INPUT
    say(f"read {export.rows:,} rows: {len(export.orders):,} orders of {len(export.first_seen):,} customers "
        f"({timings['read']:.1f} s)")
    for note in export.notes:
        say(f"note: {note}")
    import numpy as np

    codes = {c: i for i, c in enumerate(export.first_seen)}
    real_codes, real_ms = np.array([codes[o[0]] for o in export.orders]), np.array([o[1] for o in export.orders])
    real = order_figures(real_codes, real_ms, window, np.array([o[2] for o in export.orders]))
    profile, fitted = base_profile(export, window)
    mark = time.monotonic()
    profile, fit, season = fit_process(profile, real, window, export, args.seed, args.evaluations, say,
                                       lambda p: fit_season(p, export, real_codes, real_ms, args.seed))
    fit["seed"] = args.seed
    if profile.season:
        fitted["season"] = season
    late = "the last third's orders, " if window.days >= LATE_DAYS else ""
    fitted["process"] = ("order rates and decline rates across customers (gamma), the share of declines that end in "
                         f"churn, comebacks, how the customers came ({fit['arrivals']}); fitted by simulation to "
                         f"orders per customer, days between orders, orders by month, first orders by week, {late}"
                         "churn and repeat buying at the cut-off")
    timings["fit"] = time.monotonic() - mark
    doc = profile.to_json(kind="ecommerce-shop-profile", source={
        "file": os.path.basename(args.export), "kind": export.kind, "rows": export.rows,
        "orders": len(export.orders), "customers": len(export.first_seen), "skipped": dict(export.skipped),
        "notes": export.notes,
        "columns": export.columns}, fitted=fitted, defaults=defaults_of(fitted), fit=fit)
    temporary = f"{args.profile}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    os.replace(temporary, args.profile)
    say(f"wrote {args.profile} ({timings['fit']:.1f} s of fitting)")
    if args.no_report:
        return 0
    mark = time.monotonic()
    span = profile.span_end_ms - profile.span_start_ms
    last_said = [time.monotonic()]
    shown = bar(100, "the twin", "%")

    def progress(ms: int) -> None:
        done = (ms - profile.span_start_ms) / span
        if shown is not None:
            shown.n = round(100 * done)
            shown.set_postfix_str(f"{TimestampFormatter()(ms)[:10]} reached")
        elif time.monotonic() - last_said[0] >= 10:
            last_said[0] = time.monotonic()
            rate = done / (last_said[0] - mark)
            say(f"the twin: {TimestampFormatter()(ms)[:10]} reached, {done:.0%} of the span, about "
                f"{(1 - done) / max(rate, 1e-9):.0f} s left")

    try:
        customer, ms, values, events = simulate(profile, profile.customers, args.seed, orders_only=False,
                                                progress=progress)
    finally:
        if shown is not None:
            shown.close()
    timings["twin"] = time.monotonic() - mark
    twin = order_figures(customer, ms, window, values)
    models = churn_models(real, twin, args.seed)
    rows = fidelity(real, twin, window, export, ms, models, other_cutoffs((real_codes, real_ms), (customer, ms), window))
    seeds = [args.seed + i for i in range(1, args.seeds + 1)]
    mark = time.monotonic()
    rows = over_seeds(rows, profile, real, (real_codes, real_ms), window, export, twin["values"], seeds)
    timings["seeds"] = time.monotonic() - mark
    held = None
    if held_from is not None:
        mark = time.monotonic()
        held = holdout_report(whole, export, held_from, profile,
                              seeds, say)
        timings["holdout"] = time.monotonic() - mark
    timings["total"] = time.monotonic() - started
    fit["twin_events"] = events
    if args.json:
        print(json.dumps({"profile": args.profile, "export": doc["source"], "span": doc["span"], "fitted": fitted,
                          "defaults": doc["defaults"], "fit": fit, "figures": rows, "models": models,
                          **({"holdout": held} if held else {}),
                          "timings_s": {k: round(v, 2) for k, v in timings.items()}}, indent=1))
    else:
        print(report_text(rows, export, profile, fitted, fit, window, timings, seeds)
              + (holdout_text(held) if held else ""))
    if args.plot:
        plot(args.plot, real, twin, window, rows, export, held)
        say(f"drew {args.plot}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C during a fit: a profile is written whole or not at all (os.replace)
        print("calibrate: interrupted", file=sys.stderr)
        sys.exit(130)

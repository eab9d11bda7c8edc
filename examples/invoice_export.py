#!/usr/bin/env python3
"""Turn a sessions-mode stream into a wholesaler's invoice lines: a shop export of another shape to try
calibrate.py on (and what its tests and benchmark do).

The columns are UCI Online Retail's (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
CustomerID, Country), with local times of day in month/day/year layout. Every checkout becomes an invoice
whose lines are the products its session added to the cart, each bought by the case (6 to 48 units, drawn
from the invoice and product ids, so the same stream gives the same file). Like a real export it also holds
cancellations (a 'C' invoice with negative quantities) and lines without a customer.

    python producer.py --mode sessions --dry-run --user-id-range 1-5000 --seed 3 --timezone America/New_York \\
        --start-time 2025-01-01T00:00:00Z --end-time 2026-01-01T00:00:00Z | \\
        python examples/invoice_export.py --timezone America/New_York > invoices.csv
    python calibrate.py invoices.csv --timezone America/New_York --profile wholesaler.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import zlib
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def units(*keys: object) -> int:
    """Case sizes, stable for the same invoice and product."""
    return 6 * (1 + zlib.crc32(repr(keys).encode()) % 8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timezone", default="UTC", help="the shop's time zone, for the local InvoiceDate")
    parser.add_argument("--cancel-every", type=int, default=50, help="one invoice in this many is cancelled later")
    parser.add_argument("--anonymous-every", type=int, default=40, help="one invoice in this many has no customer")
    parser.add_argument("--lines", type=int, default=1, help="at least this many lines an invoice: after the cart's "
                                                             "products, others of the range (wholesale orders run long)")
    args = parser.parse_args(argv)
    for option, value in (("--cancel-every", args.cancel_every), ("--anonymous-every", args.anonymous_every),
                          ("--lines", args.lines)):
        if value < 1:
            parser.error(f"{option} {value}: expected 1 or more")
    try:
        tz = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        parser.error(f"--timezone: unknown time zone {args.timezone!r}; expected an IANA name such as Europe/London")
    try:
        return export(sys.stdin, sys.stdout, args, tz)
    except BadInput as exc:
        print(f"invoice_export: {exc}", file=sys.stderr)
        return 2


class BadInput(Exception):
    """One line for the user: which input line, what is wrong with it, what is expected."""


def export(lines, stream, args: argparse.Namespace, tz) -> int:
    carts: dict[str, list[str]] = defaultdict(list)
    out = csv.writer(stream, lineterminator="\n")
    out.writerow(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                  "Country"])
    invoices = number = 0
    try:
        for number, line in enumerate(lines, start=1):
            invoices = _invoice(line, number, carts, out, args, tz, invoices)
    except UnicodeDecodeError:
        raise BadInput(f"standard input: line {number + 1} is not UTF-8 text (binary data?); expected producer.py's "
                       "sessions-mode events, one JSON object a line") from None
    return 0


def _invoice(line: str, number: int, carts: dict, out, args: argparse.Namespace, tz, invoices: int) -> int:
    """One event read: a cart's product noted, or a checkout written as its invoice lines. The invoices so far."""
    if not line.strip():
        return invoices
    try:
        event = json.loads(line)
        metadata, kind = event["metadata"], event["event_type"]
        session = metadata.get("session_id")
        if kind == "checkout":
            when = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).astimezone(tz)
            value, user = float(metadata["order_value"]), int(event["user_id"])
        product_id = metadata["product_id"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadInput(f"standard input: line {number} is not a sessions-mode event (user_id, event_type, timestamp, "
                       "metadata with product_id, session_id, and order_value on a checkout); expected producer.py "
                       "--mode sessions output") from None
    if kind == "add_to_cart":
        carts[session].append(str(product_id))
        return invoices
    if kind != "checkout":
        return invoices
    products = carts.pop(session, None) or [str(product_id)]
    products += [str(1 + zlib.crc32(f"{session}-{i}".encode()) % 500) for i in range(args.lines - len(products))]
    invoices += 1
    stamp = f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"
    price = round(value / len(products), 2)
    customer = "" if invoices % args.anonymous_every == 0 else str(12000 + user)
    invoice = 500000 + invoices
    for product in products:
        out.writerow([invoice, product, f"ITEM {product}", units(invoice, product), stamp, price, customer,
                      "United Kingdom"])
    if invoices % args.cancel_every == 0:
        for product in products:
            out.writerow([f"C{invoice}", product, f"ITEM {product}", -units(invoice, product), stamp, price,
                          customer, "United Kingdom"])
    return invoices


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `| head` closed the pipe: what it wanted was written
        sys.stderr.close()
        sys.exit(0)

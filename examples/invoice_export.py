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
from zoneinfo import ZoneInfo


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
    tz = ZoneInfo(args.timezone)
    carts: dict[str, list[str]] = defaultdict(list)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                  "Country"])
    invoices = 0
    for line in sys.stdin:
        event = json.loads(line)
        metadata = event["metadata"]
        session = metadata.get("session_id")
        if event["event_type"] == "add_to_cart":
            carts[session].append(str(metadata["product_id"]))
            continue
        if event["event_type"] != "checkout":
            continue
        products = carts.pop(session, None) or [str(metadata["product_id"])]
        products += [str(1 + zlib.crc32(f"{session}-{i}".encode()) % 500) for i in range(args.lines - len(products))]
        invoices += 1
        when = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).astimezone(tz)
        stamp = f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"
        price = round(metadata["order_value"] / len(products), 2)
        customer = "" if invoices % args.anonymous_every == 0 else str(12000 + event["user_id"])
        number = 500000 + invoices
        for product in products:
            out.writerow([number, product, f"ITEM {product}", units(number, product), stamp, price, customer,
                          "United Kingdom"])
        if invoices % args.cancel_every == 0:
            for product in products:
                out.writerow([f"C{number}", product, f"ITEM {product}", -units(number, product), stamp, price,
                              customer, "United Kingdom"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

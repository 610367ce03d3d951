"""A synthetic-transaction hook for the tests: one Pay-In or Pay-Out against RELEASE_BASE_URL; exit 0 when accepted."""

from __future__ import annotations

import os
import sys

import httpx

PATHS = {"payin": "/payins", "payout": "/payouts"}

if __name__ == "__main__":
    response = httpx.post(os.environ["RELEASE_BASE_URL"] + PATHS[os.environ["RELEASE_PRODUCT"]],
                          json={"amount": "1.00", "currency": "PKR", "synthetic": True}, timeout=5)
    if response.status_code != 201:
        print(f"synthetic {os.environ['RELEASE_PRODUCT']} answered HTTP {response.status_code}", file=sys.stderr)
        sys.exit(1)

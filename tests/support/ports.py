"""Loopback ports for the real servers the tests start (KrakenD, Alertmanager, the registry)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

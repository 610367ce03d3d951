"""Alerting of one environment: settings, Prometheus rules, Alertmanager routing and deployment events.

Kept free of imports at package level: ``core.settings`` may import ``core.alerting.settings``, and the rules and
routing modules import ``core.settings``.
"""

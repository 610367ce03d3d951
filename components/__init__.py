"""Thin Pulumi ComponentResources that register what the pure core (``core``) computes."""

"""The release policy, checked by the program before it registers anything (seed 000 §2, §5-§7, seed 001).

Our Python language host runs no policy packs, so the rules are plain functions over the validated settings,
the stack's previous outputs and an injected clock; ``infra/release_policy.py`` feeds them and turns a violation
into the same one-line failure as bad config. ``docs/release-policy.md`` describes the rules.
"""

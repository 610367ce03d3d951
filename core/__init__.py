"""The pure core of release-infra: config models and the functions that compute the desired state.

Nothing in this package imports Pulumi, so all of it is tested directly and fast.
"""

"""The Pulumi program: reads one stack's config and builds one Environment."""

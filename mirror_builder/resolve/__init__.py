"""Resolve: talk to indexes, pin versions for a target, read the user's requests."""

"""Serving the index: the HTTP server, its auth and TLS, and the nginx recipe."""

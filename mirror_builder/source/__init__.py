"""Fetch the source to build: the archived or upstream sdist, an override's URL or git tag, or a
pre-built wheel."""

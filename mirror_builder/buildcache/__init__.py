"""The machine's (or cluster's) shared cache of built wheels, keyed by build key."""

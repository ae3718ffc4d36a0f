"""Build jobs over time: the audit log, update policy, update, the review queue."""

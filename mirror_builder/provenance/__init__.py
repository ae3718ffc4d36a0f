"""Provenance: build records, their store, rebuild numbers, stamping, verification."""

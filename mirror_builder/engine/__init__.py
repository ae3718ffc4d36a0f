"""The order of work: resolve closures, schedule builds, plan, wire a run together."""

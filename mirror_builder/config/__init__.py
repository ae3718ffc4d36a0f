"""Settings: settings.yaml, per-package overrides and plugins, and their checks."""

"""The wheels-only index: pages, publishing after smoke tests, the output lock."""

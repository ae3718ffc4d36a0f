"""mirror-builder: rebuild a Python package's whole wheel tree from source, in containers."""

from pathlib import Path

__version__ = "0.1.0"

# Files shipped with the package: the build record's schema, podman's settings.
DATA_DIR = Path(__file__).parent / "data"
# The checkout (or installed tree) the package lives in: its settings.yaml is the fallback.
PROJECT_DIR = Path(__file__).resolve().parent.parent

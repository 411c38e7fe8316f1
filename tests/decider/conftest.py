"""Decider tests: pure functions, no servers. The harness module sits next to the tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

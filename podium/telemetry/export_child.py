"""``python -m podium.telemetry.export_child``: the span export process of a service.

A module of its own so that ``-m`` runs a module nothing has imported yet;
:func:`podium.telemetry.export_process.main` is the loop.
"""

from __future__ import annotations

import sys

from podium.telemetry.export_process import main

if __name__ == "__main__":
    sys.exit(main())

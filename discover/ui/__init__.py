"""The terminal UI over a workspace's experience database (``discover ui``).

    from discover.ui import DiscoverApp
    DiscoverApp("runs").run()

It only reads: the database is opened read-only and polled for changes once a second, so it can
watch a ``discover run`` writing to the same workspace without ever holding it up.
"""

from discover.ui.app import DiscoverApp

__all__ = ["DiscoverApp"]

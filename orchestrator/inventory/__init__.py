"""The fleet: inventory files loaded, merged and located, and host selection by ring or name.

Pure: reads files only through a `ProjectSource`; never imports the CLI, pyinfra or paramiko.
"""

from __future__ import annotations

from orchestrator.inventory.loader import collect_inventory, load_inventory
from orchestrator.inventory.selection import select_hosts

__all__ = ["collect_inventory", "load_inventory", "select_hosts"]

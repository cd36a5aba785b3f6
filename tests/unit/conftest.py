"""Make `ansible_collections.deckhouse.platform` importable when pytest runs outside ansible-test."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".local" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "deckhouse" / "platform"
if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    LINK.symlink_to(ROOT)
if "ansible_collections" not in sys.modules and str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

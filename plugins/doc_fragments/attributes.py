# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/deckhouse.platform.dkp) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - deckhouse.platform.dkp
"""

    CHECK_MODE_WRITE = r"""
options: {}
attributes:
  check_mode:
    description: Sends the write as a server-side dry run, so admission runs and nothing is stored.
    support: full
  diff_mode:
    description: Shows spec, labels and annotations before and after; secrets are redacted.
    support: full
"""

    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    description: Read-only; runs unchanged in check mode.
    support: full
  diff_mode:
    description: Read-only; returns no diff.
    support: none
"""

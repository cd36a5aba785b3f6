# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type


class ModuleDocFragment:
    # The options of dkp_wait.WAIT_ARG_SPEC. Each module says in its own docs what it waits for and
    # which evidence of Deckhouse having processed the change it requires.
    DOCUMENTATION = r"""
options:
  wait:
    description:
      - Wait until Deckhouse has processed the change (see the module's description for what that means).
      - The wait watches the object, so it reacts within a second; it rides through dropped watches, an API
        server restart and Deckhouse restarting (HTTP 5xx, failed webhooks, refused connections) within
        O(wait_timeout).
      - Only states that are evidence of the change count; a state that predates the change is not accepted.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait. Must be greater than 0.
      - On timeout the task fails with the last state it saw, the last transient error and the last API problem.
    type: int
    default: 600
  wait_grace:
    description:
      - Seconds a transient error that Deckhouse may clear by itself (a module hook error, C(phase=Error) with
        C(HookError)) may persist before the wait fails. The timer restarts when the error clears.
      - C(0) fails at the first such error. Must be 0 or more.
    type: int
    default: 60
"""

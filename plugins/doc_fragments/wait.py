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

    # The wait_for of readers whose kind has no status worth waiting for (ModuleConfig seen from outside,
    # ModuleUpdatePolicy): dkp_base.InfoModule.wait_presence.
    PRESENCE = r"""
options:
  wait_for:
    description:
      - V(present) - first wait (watching, not polling) until the object O(name) exists, for example one that
        another pipeline creates. V(absent) - until it is gone, for example while a finalizer still holds it
        after a delete.
      - On timeout the task fails saying whether it exists. Needs O(name).
    type: str
    choices: [present, absent]
    version_added: 0.2.0
  wait_timeout:
    description: Seconds O(wait_for) waits before failing. Must be greater than 0.
    type: int
    default: 300
    version_added: 0.2.0
"""

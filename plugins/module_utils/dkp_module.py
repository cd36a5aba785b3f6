# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deprecated name of dkp_base (kept until every module imports dkp_base)."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import (  # noqa: F401
    DkpModule,
    ResourceModule,
)

__all__ = ["DkpModule", "ResourceModule"]

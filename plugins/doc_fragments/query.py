# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type


class ModuleDocFragment:
    # The `query` option of readers (modules) and lookups; see plugins/module_utils/dkp_query.py.
    DOCUMENTATION = r"""
options:
  query:
    description:
      - A JMESPath expression applied to what the plugin returns (for a reader module, to the list it returns;
        for a lookup, to the value of each term), for example
        V([?enabled && !ready].name) for the enabled Modules that are not Ready.
      - Needs the Python package C(jmespath) where the plugin runs. An invalid expression fails before any request.
    type: str
    version_added: 0.2.0
"""

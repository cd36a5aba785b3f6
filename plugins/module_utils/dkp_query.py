# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JMESPath filtering of what readers and lookups return (the `query` option).

One helper for every reader: a module adds `QUERY_ARG_SPEC` to its argument spec and returns
`apply_query(items, params["query"])` as `query_result`; lookups get the same through the lookup base.
The expression is compiled before any request, so a typo fails at once and names the option.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import traceback

try:
    import jmespath
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - jmespath is in requirements.txt
    jmespath = None
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError

QUERY_ARG_SPEC = dict(query=dict(type="str"))


def compile_query(expression, option="query"):
    """The compiled expression (None when unset); DkpError naming the option when it cannot be used."""
    if expression is None or expression == "":
        return None
    if not HAS_JMESPATH:
        raise DkpError("`%s` needs the Python package jmespath on the host that runs the task "
                       "(pip install jmespath)" % option, exception=JMESPATH_IMPORT_ERROR)
    if not isinstance(expression, str):
        raise DkpError("`%s` must be a JMESPath expression string, got %s" % (option, type(expression).__name__))
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as e:
        raise DkpError("`%s` is not a valid JMESPath expression: %s" % (option, e))


def apply_query(data, expression, option="query"):
    """`data` filtered by the JMESPath `expression` (a string or a compiled one); `data` itself when unset."""
    compiled = compile_query(expression, option) if isinstance(expression, (str, type(None))) else expression
    if compiled is None:
        return data
    try:
        return compiled.search(data)
    except jmespath.exceptions.JMESPathError as e:
        raise DkpError("`%s` failed on the data: %s" % (option, e))

# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared base of the collection's lookup plugins (controller side)."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    CONNECTION_ARG_SPEC,
    DkpClient,
    DkpError,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import apply_query, compile_query

_MISSING = object()


def connection_params(get_option):
    """Connection options of a lookup with the same K8S_AUTH_* fallbacks as the modules."""
    params = {}
    for name, spec in CONNECTION_ARG_SPEC.items():
        value = get_option(name)
        if value is None and "fallback" in spec:
            for var in spec["fallback"][1]:
                if var in os.environ:
                    value = os.environ[var]
                    break
            if isinstance(value, str) and spec.get("type") == "bool":
                value = value.lower() in ("1", "true", "yes", "on")
            if isinstance(value, str) and spec.get("type") == "list":
                value = [v.strip() for v in value.split(",") if v.strip()]
        params[name] = value if value is not None else spec.get("default")
    return params


class DkpLookupBase(LookupBase):
    """run() resolves options, builds one client for all terms and turns DkpError into a lookup error.

    A lookup whose DOCUMENTATION includes the `deckhouse.platform.query` fragment gets the `query` option:
    the JMESPath expression is compiled before any request and applied to the value found for each term
    (a term that finds nothing still gives `default`).
    """

    def lookup_term(self, client, term):
        raise NotImplementedError

    def option(self, name, default=None):
        """An option's value, or `default` for a lookup that does not declare it."""
        return self.get_option(name) if self.has_option(name) else default

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        default = self.option("default")
        try:
            query = compile_query(self.option("query"))
            client = DkpClient(connection_params(self.get_option))
            results = []
            for term in terms or [None]:
                value = self.lookup_term(client, term)
                if value is not None and query is not None:
                    value = apply_query(value, query)
                results.append(value if value is not None else (default if default is not None else {}))
            return results
        except DkpError as e:
            raise AnsibleLookupError(e.msg)

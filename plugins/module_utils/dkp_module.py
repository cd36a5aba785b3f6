# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The base every deckhouse.platform module is built on."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import copy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    CONNECTION_ARG_SPEC,
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    DkpClient,
    DkpError,
    kubeconfig_secret_values,
)


class DkpModule:
    """AnsibleModule plus the connection options, a lazily built client and error translation.

    Usage:
        module = DkpModule(argument_spec=dict(...), supports_check_mode=True)
        module.run(lambda: do_work(module))   # do_work returns the result dict
    """

    def __init__(self, argument_spec, **kwargs):
        spec = copy.deepcopy(CONNECTION_ARG_SPEC)
        spec.update(argument_spec)
        self.ansible = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.ansible.params
        # Secret leaves of an in-memory kubeconfig must never be echoed back.
        for value in kubeconfig_secret_values(self.params.get("kubeconfig")):
            self.ansible.no_log_values.add(value)
        if not HAS_KUBERNETES:
            self.ansible.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
        self._client = None

    @property
    def check_mode(self):
        return self.ansible.check_mode

    @property
    def diff_mode(self):
        return self.ansible._diff

    @property
    def client(self):
        if self._client is None:
            self._client = DkpClient(self.params)
        return self._client

    def fail(self, msg, **details):
        self.ansible.fail_json(msg=msg, **details)

    def warn(self, msg):
        self.ansible.warn(msg)

    def run(self, work):
        """Call `work()` and exit with its result dict; DkpError becomes a clean failure."""
        try:
            result = work()
        except DkpError as e:
            self.ansible.fail_json(msg=e.msg, **e.details)
        result.setdefault("changed", False)
        self.ansible.exit_json(**result)

# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Ansible base every deckhouse.platform module is built on.

`DkpModule` wraps AnsibleModule: connection options, a lazily built client, numeric options checked
before any request, secrets found inside structured options registered as no_log values before anything
is printed, a partial result that survives a failure, and typed errors turned into clean failures.
`ResourceModule` adds the present/absent/wait skeleton of a module that manages one object.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import copy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib, remove_values

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    CONNECTION_ARG_SPEC,
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    DkpClient,
    DkpError,
    check_positive,
    kubeconfig_secret_values,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import secret_values

# Numeric options refused when <= 0 (or < 0), wherever a module declares them.
POSITIVE_OPTIONS = ("request_timeout", "retry_timeout", "wait_timeout")
NON_NEGATIVE_OPTIONS = ("wait_grace",)


class _AnsibleModule(AnsibleModule):
    """AnsibleModule that registers secrets found in structured options before it logs or returns.

    AnsibleModule logs the invocation (syslog/journal) at the end of __init__ and puts the masked
    module_args into every result: both read `no_log_values`, so the values are added right before."""

    def __init__(self, *args, **kwargs):
        self._dkp_register = kwargs.pop("_dkp_register")
        super().__init__(*args, **kwargs)

    def _log_invocation(self):
        self._dkp_register(self)
        return super()._log_invocation()

    def exit_json(self, **kwargs):
        self._dkp_register(self)
        return super().exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        self._dkp_register(self)
        return super().fail_json(msg, **kwargs)


class DkpModule:
    """AnsibleModule plus the connection options, a lazily built client and error translation.

    Usage:
        module = DkpModule(argument_spec=dict(...), supports_check_mode=True)
        module.run(lambda: do_work(module))   # do_work returns the result dict

    `secret_params`: option names whose values are scanned for secrets (SECRET_KEY_RULE of dkp_resource,
    plus the module's `redact_keys` option when it has one); every dict, list or raw option is scanned
    anyway, these add options of other types. `positive_params` / `non_negative_params`: numeric options
    to refuse before any request, besides POSITIVE_OPTIONS and NON_NEGATIVE_OPTIONS.
    `module.result` collects what the task did so far; a failure returns it too (changed: true after a
    write whose wait failed).
    """

    def __init__(self, argument_spec, secret_params=(), positive_params=(), non_negative_params=(), **kwargs):
        spec = copy.deepcopy(CONNECTION_ARG_SPEC)
        spec.update(argument_spec)
        self._spec = spec
        self._secret_params = tuple(secret_params or ())
        self._extra_secrets = []
        self.result = {}
        self.ansible = _AnsibleModule(argument_spec=spec, _dkp_register=self._register_secrets, **kwargs)
        self.params = self.ansible.params
        if not HAS_KUBERNETES:
            self.ansible.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
        self._client = None
        try:
            check_positive(self.params, [n for n in POSITIVE_OPTIONS + tuple(positive_params)
                                         if n in spec and n not in non_negative_params])
            check_positive(self.params, [n for n in NON_NEGATIVE_OPTIONS + tuple(non_negative_params) if n in spec],
                           allow_zero=NON_NEGATIVE_OPTIONS + tuple(non_negative_params))
        except DkpError as e:
            self.ansible.fail_json(msg=e.msg, **e.details)

    # -- secrets -----------------------------------------------------------------------------------

    def _register_secrets(self, ansible):
        params = getattr(ansible, "params", None) or {}
        values = list(kubeconfig_secret_values(params.get("kubeconfig")))
        extra = params.get("redact_keys") if isinstance(params.get("redact_keys"), (list, tuple)) else ()
        for name, value in params.items():
            if name == "kubeconfig" or value is None:
                continue
            option = self._spec.get(name) or {}
            if name in self._secret_params or option.get("type") in ("dict", "list", "raw") \
                    or isinstance(value, (dict, list)):
                values.extend(secret_values(value, extra))
        values.extend(self._extra_secrets)
        for value in values:
            if value:
                ansible.no_log_values.add(value)

    def no_log(self, value):
        """Never print `value` (a secret string, or a structure scanned by SECRET_KEY_RULE) from now on:
        results, failures, warnings and the logged invocation mask it."""
        if isinstance(value, (dict, list)):
            found = secret_values(value, self.params.get("redact_keys") or ())
        elif value in (None, "") or isinstance(value, bool):
            found = []
        else:
            found = [str(value)]
        for item in found:
            self._extra_secrets.append(item)
            self.ansible.no_log_values.add(item)
        return value

    # -- the AnsibleModule surface ------------------------------------------------------------------

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
        """Fail the task with the partial result (module.result) and `details`."""
        result = dict(self.result)
        result.update(details)
        result.pop("msg", None)
        self.ansible.fail_json(msg=msg, **result)

    def warn(self, msg):
        # ansible-core 2.19 keeps warnings apart from the result, where no_log masking does not reach them
        self._register_secrets(self.ansible)
        self.ansible.warn(remove_values(msg, self.ansible.no_log_values))

    def run(self, work):
        """Call `work()` and exit with its result dict merged over module.result; a DkpError (any typed
        error of dkp_client/dkp_wait) becomes a clean failure that still carries module.result."""
        try:
            result = work()
        except DkpError as e:
            self.fail(e.msg, **e.details)
        merged = dict(self.result)
        merged.update(result or {})
        merged.setdefault("changed", False)
        self.ansible.exit_json(**merged)


class ResourceModule(DkpModule):
    """The skeleton of a module that manages one object of `kind` (state present/absent, wait).

    Subclasses (or instances given callables) provide:
      - desired(live) -> the full desired object (see dkp_resource.ensure); required for present;
      - validate() -> None, raising DkpError for bad input: runs before any read or write;
      - create_body(wanted) -> the body for a create (default: wanted);
      - wait_present(res) / wait_absent(res) -> a dict merged into the result (default: nothing);
      - present_result(res) -> dict (default: {result_key: the object after, redacted}).
    `module.result` holds changed/diff/the object before any wait starts, so a failed wait still says
    that the task changed the object. `secret_paths` (dotted) and the `redact_keys` option extend the
    redaction of diffs and results.
    """

    kind = None
    result_key = "object"
    secret_paths = ()

    def __init__(self, argument_spec, kind=None, result_key=None, secret_paths=None, **kwargs):
        super().__init__(argument_spec, **kwargs)
        self.kind = kind or self.kind
        self.result_key = result_key or self.result_key
        if secret_paths is not None:
            self.secret_paths = tuple(secret_paths)

    # -- hooks ---------------------------------------------------------------------------------------

    def identity(self):
        """(name, namespace) of the object."""
        return self.params.get("name"), self.params.get("namespace")

    def validate(self):
        return None

    def desired(self, live):
        raise NotImplementedError("%s must implement desired(live)" % type(self).__name__)

    def create_body(self, wanted):
        return wanted

    def wait_present(self, res):
        return None

    def wait_absent(self, res):
        return None

    def redact(self, obj):
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
            redact,
            strip_server_fields,
        )

        return redact(strip_server_fields(obj), self._redact_keys()) if obj else obj

    def _redact_keys(self):
        return tuple(self.secret_paths) + tuple(self.params.get("redact_keys") or ())

    def present_result(self, res):
        return {self.result_key: self.redact(res.after)}

    # -- the flow -------------------------------------------------------------------------------------

    def execute(self):
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
            diff_view,
            ensure,
            ensure_absent,
        )

        self.validate()
        name, namespace = self.identity()
        state = self.params.get("state") or "present"
        if state == "absent":
            res = ensure_absent(self.client, self.kind, name, namespace=namespace, check_mode=self.check_mode)
            self.result.update(changed=res.changed, method=res.method)
            if self.diff_mode:
                self.result["diff"] = diff_view(res.before, None, extra_keys=self._redact_keys())
            if res.changed and not self.check_mode:
                self.result.update(self.wait_absent(res) or {})
            return dict(self.result)
        res = ensure(self.client, self.kind, name, self.desired, namespace=namespace, check_mode=self.check_mode,
                     create_body=self.create_body)
        self.result.update(changed=res.changed, method=res.method)
        self.result.update(self.present_result(res))
        if self.diff_mode:
            self.result["diff"] = diff_view(res.before, res.after, extra_keys=self._redact_keys())
        if not self.check_mode:
            self.result.update(self.wait_present(res) or {})
        return dict(self.result)

    def main(self):
        self.run(self.execute)

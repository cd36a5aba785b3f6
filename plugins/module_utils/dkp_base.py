# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Ansible base every deckhouse.platform module is built on.

`DkpModule` wraps AnsibleModule: connection options, a lazily built client, numeric options checked
before any request, secrets found inside structured options registered as no_log values before anything
is printed, a partial result that survives a failure, and typed errors turned into clean failures.
`ResourceModule` adds the present/absent/wait skeleton of a module that manages one object; `InfoModule` the
read/wait/summarise/query skeleton of a reader (`*_info`) of one kind.
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
      - validate() -> None, raising DkpError for bad input: runs before any read or write;
      - prepare() -> None, or a result dict that ends the task without writing (nothing to act on); runs after
        validate, before the write: reads what the kind's rules need and raises their refusals;
      - desired(live) -> the full desired object (see dkp_resource.ensure); required for present;
      - create_body(wanted) -> the body for a create (default: wanted); refusals that only a create needs;
      - before_delete(live) -> raise a refusal, or return an overlay merged into the live object just before it
        is deleted (an annotation or field DKP reads on deletion); None: delete as it is;
      - wait_present(res) / wait_absent(res) -> a dict merged into the result (default: nothing);
      - present_result(res) -> dict (default: {result_key: the object after, redacted}).
    `creates = False` is for a kind the task only acts on and never creates (a ModuleRelease): a missing object
    fails with missing(name) instead of being created.
    `module.result` holds changed/diff/the object before any wait starts, so a failed wait still says
    that the task changed the object. `secret_paths` (dotted) and the `redact_keys` option extend the
    redaction of diffs and results. Check mode sends every write as a server-side dry run and never waits.
    """

    kind = None
    result_key = "object"
    secret_paths = ()
    creates = True

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

    def prepare(self):
        return None

    def desired(self, live):
        raise NotImplementedError("%s must implement desired(live)" % type(self).__name__)

    def create_body(self, wanted):
        return wanted

    def missing(self, name):
        """The failure when an object of a kind that is never created (creates = False) is not there."""
        return "%s %s does not exist" % (self.kind, name)

    def before_delete(self, live):
        return None

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

    def _desired(self, name, live):
        if live is None and not self.creates:
            raise DkpError(self.missing(name))
        return self.desired(live)

    def _record(self, res, after):
        """changed/method/diff into module.result, before any wait (a failed wait keeps them)."""
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import diff_view

        self.result.update(changed=res.changed, method=res.method)
        if self.diff_mode and res.changed:
            self.result["diff"] = diff_view(res.before, after, extra_keys=self._redact_keys())

    def _delete(self, name, namespace):
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
            deep_merge,
            ensure,
            ensure_absent,
        )

        live = self.client.get(self.kind, name, namespace)
        overlay = self.before_delete(live)
        if live is not None and overlay:
            def marked(obj):
                if obj is None:
                    raise DkpError("%s %s was deleted while the task ran" % (self.kind, name))
                return deep_merge(obj, overlay)
            ensure(self.client, self.kind, name, marked, namespace=namespace, check_mode=self.check_mode)
        res = ensure_absent(self.client, self.kind, name, namespace=namespace, check_mode=self.check_mode)
        self._record(res, None)
        if res.changed and not self.check_mode:
            self.result.update(self.wait_absent(res) or {})
        return dict(self.result)

    def execute(self):
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import ensure

        self.validate()
        done = self.prepare()
        if done is not None:
            return done
        name, namespace = self.identity()
        if (self.params.get("state") or "present") == "absent":
            return self._delete(name, namespace)
        res = ensure(self.client, self.kind, name, lambda live: self._desired(name, live), namespace=namespace,
                     check_mode=self.check_mode, create_body=self.create_body)
        self.result.update(self.present_result(res))
        self._record(res, res.after)
        if not self.check_mode:
            self.result.update(self.wait_present(res) or {})
        return dict(self.result)

    def main(self):
        self.run(self.execute)


def _object_name(obj):
    return ((obj or {}).get("metadata") or {}).get("name") or ""


class InfoModule(DkpModule):
    """The skeleton of a reader (`*_info`) of one kind: the object `name` names or all of them, or the one object
    once its `wait_for` state holds; one summary per object with the objects' secrets registered as no_log
    first; `query` (JMESPath, dkp_query) over the list. Reading never writes, so check mode changes nothing.

    Subclasses set `kind`, `list_key` (the list in the result), `item_key` (the one object when `name` is given;
    None: no such key) and `wait_noun` (what the wait_for-needs-a-name message calls one object), and provide:
      - summary(obj) -> dict (required; secrets redacted);
      - name_error(name) -> a message when `name` cannot be a name of the kind, else None;
      - wait(name) -> the object once the `wait_for` state holds (None: the state is "gone");
      - validate() -> None, raising DkpError (default: the name, and wait_for needs a name);
      - read() -> the objects (default: the one of `name`, the waited one, or all matching label_selector());
      - secrets(obj) -> secret strings of an object; keep(summary) -> listed or not (default: all);
      - order(objs) -> the objects in result order (default: by name); extra(objs) -> more result keys.
    """

    kind = None
    list_key = None
    item_key = None
    wait_noun = "object"

    # -- hooks ---------------------------------------------------------------------------------------

    def name_error(self, name):
        return None

    def validate(self):
        name = self.params.get("name")
        error = self.name_error(name) if name is not None else None
        if error:
            raise DkpError(error)
        if self.params.get("wait_for") and not name:
            raise DkpError("wait_for waits on one %s: set name" % self.wait_noun)

    def label_selector(self):
        return None

    def wait(self, name):
        raise NotImplementedError("%s must implement wait(name)" % type(self).__name__)

    def wait_presence(self, name):
        """`wait_for` present / absent, for kinds without a status worth waiting for (ModuleConfig seen from
        outside, ModuleUpdatePolicy): created by another pipeline, or gone after its finalizer ran."""
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for

        want = self.params["wait_for"] == "present"
        return wait_for(self.client, self.kind, name, lambda obj: (obj is not None) == want,
                        self.params["wait_timeout"],
                        describe=lambda obj: "%s %s %s" % (self.kind, name, "exists" if obj is not None
                                                           else "does not exist"))

    def read(self):
        name = self.params.get("name")
        if self.params.get("wait_for"):
            found = self.wait(name)
        elif name:
            found = self.client.get(self.kind, name)
        else:
            items, _rv = self.client.list(self.kind, label_selector=self.label_selector())
            return items
        return [found] if found else []

    def secrets(self, obj):
        return ()

    def summary(self, obj):
        raise NotImplementedError("%s must implement summary(obj)" % type(self).__name__)

    def keep(self, summary):
        return True

    def order(self, objs):
        return sorted(objs, key=_object_name)

    def extra(self, objs):
        return {}

    # -- the flow -------------------------------------------------------------------------------------

    def execute(self):
        # Lazy: only readers load jmespath.
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import apply_query, compile_query

        self.validate()
        query = compile_query(self.params.get("query"))  # a typo fails before any request
        objs = self.read()
        for obj in objs:  # masked wherever they might surface
            for secret in self.secrets(obj):
                self.no_log(secret)
        summaries = [s for s in (self.summary(o) for o in self.order(objs)) if self.keep(s)]
        result = {self.list_key: summaries}
        if self.item_key and self.params.get("name"):
            result[self.item_key] = summaries[0] if summaries else None
        result.update(self.extra(objs))
        if query is not None:
            result["query_result"] = apply_query(summaries, query)
        return result

    def main(self):
        self.run(self.execute)

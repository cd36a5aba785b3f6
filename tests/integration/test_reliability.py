"""Reliability suite of issue 10, the parts no other test file covers (see docs/reliability.md for the map of every
promise to its test):

* secrets: one ansible-playbook run at -vvv with --diff, ANSIBLE_LOG_PATH and the set_stats printed, through
  module_config, module_source (password and dockerCfg), registry_mode (password, settings), registry_state_info,
  the registry_state lookup, a ServiceAccount token (as api_key and in a kubeconfig) and a registry_switch role run
  with a license; every secret and its base64 forms are grepped in the output, the log, the results and the report;
* racing runs: pairs of ansible-playbook processes writing ModuleConfig settings keys at the same time (no lost
  write), and two registry_switch role runs at once (exactly one writes);
* faults: an apiserver restart of 30 s in the middle of a module_release wait; dropped connections (and new ones
  refused) in the middle of module_config and registry_mode waits, the simulator paused and resumed mid-switch;
* bad inputs of the roles (AWX survey strings) and of modules not covered elsewhere, batched in two playbook runs,
  each case asserted failed with its message, and zero writes in the audit log.

Each test records its figure in .local/reliability-figures.json (tried / refused, survived, lost, found).
"""
from __future__ import annotations

import base64
import concurrent.futures
import datetime
import json
import pathlib
import threading
import time

import yaml

from ansible_run import ROOT, run_playbook, run_tasks
from awx_runner import secret_forms, service_account_credential
from dkp_audit import our_writes
from harness import cluster as harness_cluster
from registry_support import FAKE_STATE_SECRET, LICENSE, PLAYBOOK, REPO, Cluster, inventory, report, switch_vars
from test_module_config import delete_mc, get_mc, mc_task
from test_module_release import (  # noqa: F401 - hello, pending: fixtures  pylint: disable=unused-import
    APPROVED, MODULE, annotations, hello, pending, release)
from test_registry_faults import wait_for_our_switch

HERE = pathlib.Path(__file__).resolve().parent
FIGURES = ROOT / ".local" / "reliability-figures.json"
LOCK = "deckhouse-platform-runbook"


def figure(key, **values):
    """Record a figure of this suite (read by docs/reliability.md's author and the lead)."""
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    values["at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    data[key] = values
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True))
    print("FIGURE %s: %s" % (key, values))


def status_of(run, title):
    found = [r for r in run.records if r["task"] == title]
    assert found, "task %r not run:\n%s" % (title, run.output[-4000:])
    return found[-1]["status"]


def clear_lock(kube):
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    try:
        client.CoordinationV1Api(kube).delete_namespaced_lease(LOCK, "d8-system")
    except ApiException as e:
        if e.status != 404:
            raise


class InBackground:
    def __init__(self, fn):
        self.value = None
        self.thread = threading.Thread(target=self._go, args=(fn,), daemon=True)
        self.thread.start()

    def _go(self, fn):
        self.value = fn()

    def join(self, timeout=600):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the playbook did not end"
        return self.value


def eventually(check, what, timeout=90):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


# -- secrets ----------------------------------------------------------------------------------------------------

MC_LICENSE = "MC-LICENSE-rel-31a7-must-never-be-printed"
MC_PASSWORD = "MC-PASSWORD-rel-92bc-must-never-be-printed"
MS_PASSWORD = "MS-PASSWORD-rel-5e0d-must-never-be-printed"
DC_PASSWORD = "DC-PASSWORD-rel-77f1-must-never-be-printed"
REG_PASSWORD = "REG-PASSWORD-rel-0a4e-must-never-be-printed"


def b64(text):
    return base64.b64encode(text.encode()).decode()


def token_kubeconfig(kc, token, path):
    conf = json.loads(pathlib.Path(kc).read_text()) if pathlib.Path(kc).read_text().lstrip().startswith("{") \
        else yaml.safe_load(pathlib.Path(kc).read_text())
    conf["users"] = [{"name": "rel-token", "user": {"token": token}}]
    for ctx in conf["contexts"]:
        ctx["context"]["user"] = "rel-token"
    path.write_text(json.dumps(conf))
    return conf


def client_key_forms(kc):
    """The kubeconfig's client key as it stands in the file (base64) and each line of its PEM body."""
    text = pathlib.Path(kc).read_text()
    conf = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    out = []
    for user in conf["users"]:
        data = user["user"].get("client-key-data")
        if data:
            out.append(data)
            pem = base64.b64decode(data).decode()
            out += [line for line in pem.splitlines() if line and not line.startswith("-----") and len(line) >= 16]
    return out


def test_no_secret_in_verbose_output_diff_log_results_report_or_stats(
        kc, kube, api, dkp_cluster, fresh_simulator, tmp_path):
    registry = Cluster(kube)
    registry.enable_registry()
    clear_lock(kube)
    for name in ("rel-pw", "rel-dc"):
        try:
            api.delete_cluster_custom_object("deckhouse.io", "v1alpha1", "modulesources", name)
        except Exception:  # noqa: BLE001 (absent)
            pass
    delete_mc(api, "prometheus")
    token = service_account_credential(kube, pathlib.Path(kc), tmp_path / "ca.crt")["K8S_AUTH_API_KEY"]
    token_kc = tmp_path / "token.kubeconfig"
    token_kubeconfig(kc, token, token_kc)
    dc_auth = b64("puller:" + DC_PASSWORD)
    docker_config = b64(json.dumps({"auths": {"registry.example.com": {"auth": dc_auth}}}))
    log = tmp_path / "ansible.log"
    extra = switch_vars(tmp_path, mode="Direct", images_repo=REPO, license=LICENSE, confirm_restart=True)
    extra.update(rel_mc_license=MC_LICENSE, rel_mc_password=MC_PASSWORD, rel_ms_password=MS_PASSWORD,
                 rel_ms_docker_config=docker_config, rel_reg_password=REG_PASSWORD, rel_token=token,
                 rel_token_kubeconfig=str(token_kc))
    inv = inventory(tmp_path, {"cluster-a": kc})
    run = run_playbook(kc, HERE / "reliability" / "secrets.yml", diff=True, verbosity=3, extra_vars=extra,
                       args=["-i", str(inv)],
                       env={"ANSIBLE_LOG_PATH": str(log), "ANSIBLE_SHOW_CUSTOM_STATS": "true"})
    assert run.rc == 0, run.output[-6000:]
    titles = ["Mc-check", "Mc-real", "Mc-info", "Ms-password-check", "Ms-password-real", "Ms-docker-config-real",
              "Ms-info", "Rm-check-password", "Rm-check-settings", "Rs-info", "Rs-lookup", "Token-api-key",
              "Token-kubeconfig"]
    assert {t: status_of(run, t) for t in titles} == {t: "ok" for t in titles}
    assert run.task("Mc-real")["changed"] is True and run.task("Ms-password-real")["changed"] is True
    assert run.task("Rm-check-password")["changed"] is True

    # the secrets were really used (not a vacuous grep): they are in the cluster
    assert get_mc(api, "prometheus")["spec"]["settings"]["licenseKey"] == MC_LICENSE
    assert registry.registry_settings()["direct"]["license"] == LICENSE and registry.complete("Direct")
    ms_cfg = api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "modulesources", "rel-pw")["spec"][
        "registry"]["dockerCfg"]
    ms_auth = json.loads(base64.b64decode(ms_cfg))["auths"]
    built_auths = [a["auth"] for a in ms_auth.values() if a.get("auth")]
    assert api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "modulesources", "rel-dc")["spec"][
        "registry"]["dockerCfg"] == docker_config
    assert "CUSTOM STATS" in run.output, "set_stats were not printed"

    secrets = {
        "license key (registry_mode, role)": [LICENSE],
        "ModuleConfig settings license": [MC_LICENSE],
        "ModuleConfig settings password": [MC_PASSWORD],
        "ModuleSource registry password": [MS_PASSWORD],
        "ModuleSource dockerCfg (built)": [ms_cfg] + built_auths,
        "ModuleSource dockerCfg (given)": [docker_config, dc_auth, DC_PASSWORD],
        "registry password (registry_mode)": [REG_PASSWORD],
        "registry-state `state`": [FAKE_STATE_SECRET],
        "ServiceAccount token": [token],
        "kubeconfig client key": client_key_forms(kc),
    }
    places = {
        "stdout/stderr -vvv --diff (incl. set_stats)": run.output,
        "recorded task results": json.dumps(run.records),
        "ANSIBLE_LOG_PATH": log.read_text() if log.exists() else "",
        "role report file": (tmp_path / "reports" / "registry-switch-cluster-a.json").read_text(),
    }
    assert places["ANSIBLE_LOG_PATH"], "the log file was not written"
    assert report(tmp_path)["outcome"] == "switched"
    found = []
    forms_total = 0
    for kind, values in secrets.items():
        for value in values:
            for form in secret_forms(value):
                forms_total += 1
                for place, text in places.items():
                    if form in text:
                        found.append("%s (%s...) in %s" % (kind, form[:10], place))
    figure("secrets", kinds=len(secrets), forms=forms_total, places=len(places), found=len(found))
    assert found == []


# -- racing runs --------------------------------------------------------------------------------------------------

def test_racing_module_config_writers_never_lose_a_settings_key(kc, api):
    name, trials, per_run = "prometheus", 3, 3
    lost = []
    delete_mc(api, name)
    eventually(lambda: get_mc(api, name) is None, "the old ModuleConfig to go")
    api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", {
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name},
        "spec": {"version": 1, "settings": {"retentionDays": 7}}})
    try:
        for trial in range(trials):  # every trial writes keys of its own, so earlier trials' keys must stay too

            def writer(side, trial=trial):
                return run_tasks(kc, [mc_task("%s-%d" % (side, i), name=name,
                                              settings={"auth": {"t%d%s%d" % (trial, side, i): i}})
                                      for i in range(per_run)])
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                runs = list(pool.map(writer, ["a", "b"]))
            for run, side in zip(runs, "ab"):
                for i in range(per_run):
                    assert status_of(run, "%s-%d" % (side, i)) == "ok", run.output[-3000:]
                    assert run.task("%s-%d" % (side, i))["changed"] is True
            settings = get_mc(api, name)["spec"]["settings"]
            want = {"t%d%s%d" % (t, side, i): i for t in range(trial + 1) for side in "ab" for i in range(per_run)}
            lost += [k for k in want if settings.get("auth", {}).get(k) != want[k] and k not in lost]
            if settings.get("retentionDays") != 7:
                lost.append("retentionDays")
    finally:
        delete_mc(api, name)
    figure("module_config_race", trials=trials, processes_per_trial=2, writes=trials * 2 * per_run,
           lost_writes=len(lost))
    assert lost == []


def test_two_registry_switch_runs_at_once_exactly_one_writes(kc, kube, dkp_cluster, fresh_simulator, tmp_path):
    """Per trial two role runs start together; the run lock lets one through: exactly one write of
    ModuleConfig deckhouse, the other run fails naming the holder (or, started after the first ended, finds
    nothing to do), and no lock is left behind."""
    registry = Cluster(kube)
    registry.enable_registry()
    clear_lock(kube)
    inv = inventory(tmp_path, {"cluster-a": kc})
    trials = [("Direct", "t0"), ("Proxy", "t1")]
    lost = refused = 0
    for mode, trial in trials:
        mark = dkp_cluster.audit_marker()

        def go(side, mode=mode, trial=trial):
            return run_playbook(kc, PLAYBOOK, args=["-i", str(inv)], extra_vars=switch_vars(
                tmp_path / trial / side, mode=mode, images_repo=REPO, license=LICENSE, confirm_restart=True))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(go, ["a", "b"]))
        writes = [w for w in our_writes(dkp_cluster, mark, resource="moduleconfigs", name="deckhouse")
                  if not w.dry_run and w.succeeded]
        assert registry.complete(mode), (mode, registry.state())
        assert len(writes) == 1, (mode, writes)
        rcs = sorted(r.rc for r in runs)
        assert rcs[0] == 0, [r.output[-3000:] for r in runs]
        if rcs[1] != 0:
            loser = [r for r in runs if r.rc != 0][0]
            assert "held by" in loser.output, loser.output[-4000:]
            refused += 1
        assert lock_free(kube), "a run left the lock behind"
        lost += 0 if registry.registry_settings()[mode.lower()]["license"] == LICENSE else 1
    figure("registry_switch_race", trials=len(trials), runs=2 * len(trials), lost_writes=lost,
           second_refused_by_lock=refused)
    assert lost == 0


def lock_free(kube):
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    try:
        lease = client.CoordinationV1Api(kube).read_namespaced_lease(LOCK, "d8-system")
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return not (lease.spec.holder_identity or "")


# -- faults -------------------------------------------------------------------------------------------------------

def test_module_release_wait_rides_through_an_apiserver_restart(kc, api, dkp_cluster, pending):
    pending.pause()  # the release cannot deploy before the apiserver goes away
    bg = InBackground(lambda: run_tasks(kc, [{"name": "act", "deckhouse.platform.module_release": dict(
        module=MODULE, version="0.2.0", action="approve", wait=True, wait_timeout=240), "register": "out"}]))
    started = time.monotonic()
    try:
        eventually(lambda: annotations(release(api, "0.2.0")).get(APPROVED) == "true", "the approval")
        time.sleep(1.0)  # the task is in its wait
        down = harness_cluster.restart_apiserver(dkp_cluster.dir, 30)
    finally:
        pending.resume()
    run = bg.join(400)
    ok = status_of(run, "act") == "ok"
    figure("fault_module_release_apiserver_restart", tried=1, survived=int(ok), down_seconds=down["down_seconds"],
           took=round(time.monotonic() - started, 1))
    assert ok, run.output[-4000:]
    assert run.task("act")["release"]["phase"] == "Deployed"
    assert down["down_seconds"] >= 30


def proxy_connections(dkp_cluster):
    import http.client
    port = harness_cluster.read_state(dkp_cluster.dir)["ports"]["apiserver_proxy_control"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/state")
        return int(json.loads(conn.getresponse().read() or b"{}").get("connections") or 0)
    finally:
        conn.close()


def drops(dkp_cluster, times=3, refuse=3.0, pause=2.0):
    """Cut the task's connections `times` times (each when one is open, up to 10 s), refusing new ones for
    `refuse` seconds each time; returns how many connections were cut."""
    dropped = 0
    for dummy in range(times):
        deadline = time.monotonic() + 10
        while proxy_connections(dkp_cluster) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        dropped += int(harness_cluster.drop_connections(dkp_cluster.dir, refuse_seconds=refuse).get("dropped") or 0)
        time.sleep(refuse + pause)
    return dropped


def test_module_config_wait_rides_through_dropped_connections(api, dkp_cluster, simulator):
    proxy_kc = dkp_cluster.dir / "kubeconfig-proxy"
    name = "ingress-nginx"
    delete_mc(api, name)
    simulator.pause()
    try:
        bg = InBackground(lambda: run_tasks(proxy_kc, [mc_task(name=name, enabled=True, wait=True,
                                                               wait_timeout=120)]))
        eventually(lambda: get_mc(api, name) is not None, "the ModuleConfig write")
        time.sleep(1.0)
        dropped = drops(dkp_cluster)
    finally:
        simulator.resume()
    try:
        run = bg.join(300)
        ok = status_of(run, "set") == "ok"
        figure("fault_module_config_dropped_connections", tried=1, survived=int(ok), connections_dropped=dropped)
        assert ok, run.output[-4000:]
        assert run.task("set")["ready"] is True and run.task("set")["processed"] is True
        assert dropped >= 1, "no connection of the waiting task was cut"
    finally:
        delete_mc(api, name)


def test_registry_mode_wait_rides_through_dropped_connections_and_a_paused_simulator(kube, dkp_cluster,
                                                                                     fresh_simulator):
    registry = Cluster(kube)
    registry.enable_registry()
    proxy_kc = dkp_cluster.dir / "kubeconfig-proxy"
    fresh_simulator.hold_condition("DeckhouseRegistrySwitchReady", "held by the test")
    bg = InBackground(lambda: run_tasks(proxy_kc, [{"name": "out", "deckhouse.platform.registry_mode": dict(
        mode="Direct", images_repo=REPO, license=LICENSE, wait=True, wait_timeout=300), "register": "out"}]))
    wait_for_our_switch(registry, "Direct")
    dropped = drops(dkp_cluster)
    fresh_simulator.pause()
    time.sleep(8)  # Deckhouse frozen mid-switch
    alive = bg.thread.is_alive()
    fresh_simulator.resume()
    fresh_simulator.release_condition()
    run = bg.join(400)
    ok = status_of(run, "out") == "ok"
    figure("fault_registry_mode_dropped_connections_paused", tried=1, survived=int(ok and alive),
           connections_dropped=dropped)
    assert alive, "the wait ended while Deckhouse was paused mid-switch"
    assert ok, run.output[-4000:]
    out = run.task("out")
    assert out["state"]["complete"] and out["state"]["mode"] == "Direct"
    assert dropped >= 1
    assert LICENSE not in run.output


# -- bad inputs: roles (AWX survey strings) and modules not covered elsewhere ---------------------------------------

ROLE_CASES = [
    # (role, vars, needle in the failure message)
    ("module_enable", {"module_enable_module": "hello-world", "module_enable_wait_timeout": "-1"},
     "module_enable_wait_timeout"),
    ("module_enable", {"module_enable_module": "hello-world", "module_enable_wait_timeout": "0"},
     "module_enable_wait_timeout"),
    ("module_enable", {"module_enable_module": "hello-world", "module_enable_wait_timeout": "abc"},
     "module_enable_wait_timeout"),
    ("module_enable", {"module_enable_module": "hello-world", "module_enable_allow_disabling": "perhaps"},
     "module_enable_allow_disabling"),
    ("module_enable", {"module_enable_module": "hello-world", "module_enable_settings": "{not: json",
                       "module_enable_settings_version": "1"}, "module_enable_settings"),
    ("module_enable", {"module_enable_module": "hello-world", "module_enable_settings": "[1, 2]",
                       "module_enable_settings_version": "1"}, "module_enable_settings"),
    ("module_enable", {"module_enable_module": "hello-world", "module_enable_settings_version": "one"},
     "module_enable_settings_version"),
    ("module_reinstall", {"module_reinstall_module": "hello-world", "module_reinstall_wait_timeout": "0"},
     "module_reinstall_wait_timeout"),
    ("module_reinstall", {"module_reinstall_module": "hello-world", "module_reinstall_force": "maybe"},
     "module_reinstall_force"),
    ("module_release_approve", {"module_release_approve_module": "hello-world",
                                "module_release_approve_wait": "sometimes"}, "module_release_approve_wait"),
    ("module_release_approve", {"module_release_approve_module": "hello-world",
                                "module_release_approve_apply_now": "2"}, "module_release_approve_apply_now"),
    ("module_release_approve", {"module_release_approve_module": "hello-world",
                                "module_release_approve_wait_timeout": "-5"}, "module_release_approve_wait_timeout"),
    ("module_dev_override", {"module_dev_override_module": "hello-world", "module_dev_override_renew": "perhaps"},
     "module_dev_override_renew"),
    ("module_dev_override", {"module_dev_override_module": "hello-world", "module_dev_override_wait_timeout": "1.5"},
     "module_dev_override_wait_timeout"),
    ("module_source_switch", {"module_source_switch_module": "hello-world", "module_source_switch_source": "example",
                              "module_source_switch_wait_timeout": "0"}, "module_source_switch_wait_timeout"),
    ("module_source_switch", {"module_source_switch_module": "hello-world", "module_source_switch_source": "example",
                              "module_source_switch_release_timeout": "x"}, "module_source_switch_release_timeout"),
    ("registry_switch", {"registry_switch_mode": "Direct", "registry_switch_images_repo": REPO,
                         "registry_switch_confirm_restart": "perhaps"}, "registry_switch_confirm_restart"),
    ("registry_switch", {"registry_switch_mode": "Direct", "registry_switch_images_repo": REPO,
                         "registry_switch_timeout": "-1"}, "registry_switch_timeout"),
    ("registry_switch", {"registry_switch_mode": "Direct", "registry_switch_images_repo": REPO,
                         "registry_switch_rollback_on_failure": "2"}, "registry_switch_rollback_on_failure"),
    ("registry_switch", {"registry_switch_mode": "Direct", "registry_switch_images_repo": REPO,
                         "registry_switch_queue_wait_timeout": "0"}, "registry_switch_queue_wait_timeout"),
    ("registry_switch", {"registry_switch_mode": "Direct", "registry_switch_images_repo": REPO,
                         "registry_switch_images_timeout": "soon"}, "registry_switch_images_timeout"),
    ("registry_switch", {"registry_switch_mode": "Dirct", "registry_switch_images_repo": REPO},
     "registry_switch_mode"),
    ("registry_migrate", {"registry_migrate_timeout": "-10"}, "registry_migrate_timeout"),
    ("registry_migrate", {"registry_migrate_confirm_restart": "perhaps"}, "registry_migrate_confirm_restart"),
    ("gitops_sync", {"gitops_sync_wait": "maybe"}, "gitops_sync_wait"),
    ("gitops_sync", {"gitops_sync_wait_timeout": "0"}, "gitops_sync_wait_timeout"),
]

# check mode: an unwritable report path must fail in check mode too, before any write
ROLE_CHECK_CASES = [
    ("module_enable", {"module_enable_module": "prometheus",
                       "module_enable_report_path": "/proc/deckhouse-platform-nope/r.json"},
     "/proc/deckhouse-platform-nope"),
    ("registry_switch", {"registry_switch_mode": "Direct", "registry_switch_images_repo": REPO,
                         "registry_switch_confirm_restart": "true",
                         "registry_switch_report_path": "/proc/deckhouse-platform-nope/r.json"},
     "/proc/deckhouse-platform-nope"),
]

MODULE_CASES = [
    # (module or None for a lookup expression, params, needle)
    ("run_lock", {"state": "taken"}, "value of state must be one of"),
    ("run_lock", {"lease_duration": -5}, "lease_duration"),
    ("run_lock", {"max_wait": -1}, "max_wait"),
    ("run_lock", {"name": "Bad_Lease"}, "name"),
    ("run_lock", {"request_timeout": 0}, "request_timeout must be greater than 0"),
    ("desired_state", {"resources": [{"kind": "ModuleConfig", "metadata": {"name": "x"}}], "workers": "many"},
     "workers"),
    ("desired_state", {"resources": [{"kind": "ModuleConfig", "metadata": {"name": "x"}}], "prune": "maybe"},
     "prune"),
    ("module_update_policy_info", {"query": "[?"}, "not a valid JMESPath expression"),
    ("module_update_policy_info", {"name": "Bad_Policy"}, "not a valid ModuleUpdatePolicy name"),
    ("deckhouse_queue_info", {"request_timeout": 0}, "request_timeout must be greater than 0"),
    ("registry_switch_preflight", {"request_timeout": -1, "checks": ["queue_empty"]},
     "request_timeout must be greater than 0"),
    ("registry_state_info", {"retry_timeout": 0}, "retry_timeout must be greater than 0"),
    (None, "{{ lookup('deckhouse.platform.module_release', 'hello-world', query='[?') }}",
     "not a valid JMESPath expression"),
    (None, "{{ lookup('deckhouse.platform.registry_state', request_timeout=0) }}", "request_timeout"),
]


def role_plays(cases, offset=0):
    plays = []
    for i, (role, role_vars, _needle) in enumerate(cases):
        host = "case%d" % (i + offset)
        # the sentinel host keeps the play alive when the case fails (a play whose hosts all failed ends the
        # playbook); it runs nothing but the marker
        plays.append({"name": host, "hosts": "%s:sentinel" % host, "gather_facts": False, "connection": "local",
                      "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                      "tasks": [{"name": "begin " + host, "ansible.builtin.debug": {"msg": role}},
                                {"name": "role " + host, "ansible.builtin.include_role": {
                                    "name": "deckhouse.platform." + role}, "vars": role_vars,
                                 "when": "inventory_hostname != 'sentinel'"}]})
    return plays


def case_failure(run, host, hosts):
    """The first failed task of one role case (the records between its `begin` marker and the next)."""
    names = [r["task"] for r in run.records]
    start = names.index("begin " + host)
    nxt = [names.index("begin " + h) for h in hosts if "begin " + h in names and names.index("begin " + h) > start]
    end = min(nxt) if nxt else len(names)
    failed = [r for r in run.records[start:end] if r["status"] == "failed"]
    return failed[0] if failed else None


def role_inventory(tmp_path, n):
    path = tmp_path / "cases.yml"
    hosts = {"case%d" % i: {"ansible_connection": "local"} for i in range(n)}
    hosts["sentinel"] = {"ansible_connection": "local"}
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def test_role_and_module_bad_inputs_are_refused_before_any_write(kc, kube, dkp_cluster, fresh_simulator, tmp_path):
    # a fresh cluster (registry Unmanaged): the check-mode cases' preflight passes, so only the report path fails
    Cluster(kube).enable_registry()
    clear_lock(kube)
    problems = []
    n = len(ROLE_CASES) + len(ROLE_CHECK_CASES)
    inv = role_inventory(tmp_path, n)
    hosts = ["case%d" % i for i in range(n)]
    mark = dkp_cluster.audit_marker()

    # run 1: role cases and module cases (real mode)
    module_play = {"name": "modules", "hosts": "localhost", "gather_facts": False, "connection": "local",
                   "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, "tasks": [
                       {"name": "m%d" % i, "ignore_errors": True,
                        **({"deckhouse.platform." + m: p} if m else {"ansible.builtin.set_fact": {"value": p}})}
                       for i, (m, p, _n) in enumerate(MODULE_CASES)]}
    run = run_playbook(kc, [module_play] + role_plays(ROLE_CASES), args=["-i", str(inv)])
    for i, (m, _p, needle) in enumerate(MODULE_CASES):
        title = "m%d" % i
        got = status_of(run, title)
        msg = str(run.task(title).get("msg", ""))
        if got != "failed" or needle not in msg or "Traceback" in msg:
            problems.append("%s %s: %s %r" % (m or "lookup", MODULE_CASES[i][1], got, msg[:300]))
    for i, (role, role_vars, needle) in enumerate(ROLE_CASES):
        rec = case_failure(run, hosts[i], hosts)
        msg = str((rec or {}).get("result", {}).get("msg", "")) if rec else ""
        if rec is None or needle not in msg:
            problems.append("role %s %s: %s" % (role, role_vars, ("not refused" if rec is None else msg[:300])))

    writes = our_writes(dkp_cluster, mark)  # none at all, not even a dry run

    # run 2: check mode, an unwritable report path (the preflight's server dry runs change nothing)
    mark = dkp_cluster.audit_marker()
    off = len(ROLE_CASES)
    check = run_playbook(kc, role_plays(ROLE_CHECK_CASES, offset=off), args=["-i", str(inv)], check=True)
    for j, (role, role_vars, needle) in enumerate(ROLE_CHECK_CASES):
        rec = case_failure(check, hosts[off + j], hosts)
        msg = json.dumps((rec or {}).get("result", {})) if rec else ""
        if rec is None or needle not in msg:
            problems.append("check-mode role %s %s: %s" % (role, role_vars, "not refused" if rec is None else msg[:300]))

    writes += [w for w in our_writes(dkp_cluster, mark) if not w.dry_run]
    tried = len(MODULE_CASES) + len(ROLE_CASES) + len(ROLE_CHECK_CASES)
    figure("bad_inputs_reliability", tried=tried, refused=tried - len(problems), writes=len(writes))
    assert problems == [] and writes == [], "\n".join(problems + ["a refused input sent a write: %s" % writes])

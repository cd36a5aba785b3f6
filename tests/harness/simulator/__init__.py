"""A Deckhouse (DKP) simulator for the local test cluster.

It reconciles ModuleConfigs, Modules, ModuleSources, ModuleReleases, ModulePullOverrides
and the registry module's ``registry-state`` Secret like Deckhouse does, serves the
ModuleConfig and update-policies admission webhooks and Deckhouse's debug queue API, restarts
"Deckhouse" after deploys like the released 1.75/1.76 do, and takes orders from tests through
``harness.simulator.control.SimulatorControl``. Layout and the DKP facts it models:
tests/harness/README.md.

Start it standalone with::

    PYTHONPATH=tests python -m harness.simulator --dir .local/cluster --kubeconfig .local/cluster/kubeconfig \
        [--dkp-version 1.75|1.76] [--restart-seconds 3]
"""

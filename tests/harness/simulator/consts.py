"""Names, annotations, reasons and messages used by Deckhouse (dkp-spec.md, corrected by the
released 1.75/1.76 facts summarised in tests/harness/README.md)."""

NS = "d8-system"
GLOBAL = "global"
DECKHOUSE = "deckhouse"
REGISTRY = "registry"
EMBEDDED = "Embedded"
DECKHOUSE_SOURCE = "deckhouse"

# ModuleConfig
MC_FINALIZER = "modules.deckhouse.io/module-registered"
MC_FINALIZER_OLD = "modules.deckhouse.io/module-config"
ANN_ALLOW_DISABLING = "modules.deckhouse.io/allow-disabling"
MSG_UNKNOWN_MODULE = "Ignored: unknown module name"

# Module conditions / reasons / messages (deckhouse-controller v1alpha1/module.go)
C_ENABLED_BY_MC = "EnabledByModuleConfig"
C_ENABLED_BY_MM = "EnabledByModuleManager"
C_LAST_RELEASE = "LastReleaseDeployed"
C_IS_READY = "IsReady"
C_IS_OVERRIDDEN = "IsOverridden"

R_BUNDLE, M_BUNDLE = "Bundle", "turned off by bundle"
R_MODULE_CONFIG, M_MODULE_CONFIG = "ModuleConfig", "turned off by module config"
R_NOT_INSTALLED, M_NOT_INSTALLED = "NotInstalled", "not installed"
R_DISABLED, M_DISABLED = "Disabled", "disabled"
R_CONFLICT, M_CONFLICT = "Conflict", "several available sources"
R_DOWNLOADING, M_DOWNLOADING = "Downloading", "downloading"
R_RECONCILING, M_RECONCILING = "Reconciling", "reconciling"
R_INSTALLING, M_INSTALLING = "Installing", "installing"
M_ON_STARTUP = "onStartup hooks done"
R_HOOK_ERROR = "HookError"
R_RELEASE_DEPLOY_TIME = "ReleaseDeployTimeCheck"
R_OVERRIDDEN = "Overridden"

# ModuleRelease (v1alpha1/module_release.go)
MR_FINALIZER = "modules.deckhouse.io/exist-on-fs"
MR_FINALIZER_METRICS = "modules.deckhouse.io/metrics-registered"  # 1.75+: on every release
M_RELEASE_POSTPONED = "ModuleRelease could not be applied, release postponed"
R_RELEASE_NOT_READY = "ReleaseDeployedIsNotReady"
R_RELEASE_REQUIREMENTS = "ReleaseRequirementsCheck"
ANN_APPROVED = "modules.deckhouse.io/approved"
ANN_IS_UPDATING = "modules.deckhouse.io/isUpdating"
ANN_NOTIFIED = "modules.deckhouse.io/notified"
ANN_APPLY_NOW = "modules.deckhouse.io/apply-now"
ANN_FORCE = "modules.deckhouse.io/force"
ANN_FORCE_OLD = "release.deckhouse.io/force"
ANN_REINSTALL = "modules.deckhouse.io/reinstall"
ANN_CHANGE_CAUSE = "modules.deckhouse.io/change-cause"
ANN_REGISTRY_SPEC_CHANGED = "modules.deckhouse.io/registry-spec-changed"
ANN_NOTIFICATION_TIME_SHIFT = "modules.deckhouse.io/notification-time-shift"
L_MODULE = "module"
L_SOURCE = "source"
L_STATUS = "status"
L_CHECKSUM = "release-checksum"
L_UPDATE_POLICY = "modules.deckhouse.io/update-policy"

# ModuleSource
MS_FINALIZER_RELEASE = "modules.deckhouse.io/release-exists"
MS_FINALIZER_MODULE = "modules.deckhouse.io/module-exists"
ANN_REGISTRY_CHECKSUM = "modules.deckhouse.io/registry-spec-checksum"
ANN_FORCE_DELETE = "modules.deckhouse.io/force-delete"
MSG_PULL_ERRORS = "Some errors occurred. Inspect status for details"
MSG_SOURCE_HAS_DEPLOYED = ("The source contains at least 1 deployed release and cannot be deleted. "
                           "Please delete target ModuleReleases manually to continue")

# ModulePullOverride
MPO_FINALIZER = "modules.deckhouse.io/mpo-finalizer"
ANN_RENEW = "renew"
ANN_DEPLOYED_ON = "modules.deckhouse.io/deployed-on"
MPO_READY = "Ready"
MPO_NOT_FOUND = "The module not found"
MPO_EMBEDDED = "The module is embedded"
MPO_DISABLED = "The module disabled"
MPO_SOURCE_NOT_FOUND = "The source not found"
MPO_NO_SOURCE = "The module does not have an active source"

# Registry (modules/038-registry/hooks/orchestrator/const.go)
RC_READY = "Ready"
RC_NODE_SERVICES = "NodeServicesReady"
RC_CLEANUP_NODE_SERVICES = "CleanupNodeServices"
RC_INCLUSTER_PROXY = "InClusterProxyReady"
RC_CLEANUP_INCLUSTER_PROXY = "CleanupInClusterProxy"
RC_PREFLIGHT = "ContainerdConfigPreflightReady"
RC_TRANSITION = "TransitionContainerdConfigReady"
RC_FINAL = "FinalContainerdConfigReady"
RC_SWITCH = "DeckhouseRegistrySwitchReady"
RC_IMAGES = "RegistryContainsRequiredImages"
RC_ERR_TRANSITION = "ErrTransitionNotSupported"
RR_READY, RR_PROCESSING, RR_ERROR = "Ready", "Processing", "Error"
REGISTRY_CONDITION_TYPES = (
    RC_READY, RC_NODE_SERVICES, RC_CLEANUP_NODE_SERVICES, RC_INCLUSTER_PROXY, RC_CLEANUP_INCLUSTER_PROXY,
    RC_PREFLIGHT, RC_TRANSITION, RC_FINAL, RC_SWITCH, RC_IMAGES, RC_ERR_TRANSITION,
)
ANN_REGISTRY_CONFIG_HASH = "registry.deckhouse.io/config-hash"

FAKE_SECRET_MARKER = "FAKE-SECRET-registry-state-DO-NOT-LEAK"

# cluster facts read by the ValidatingAdmissionPolicies of tests/harness/admission
CLUSTER_FACTS = "d8-cluster-facts"

WEBHOOK_NAME = "module-configs.deckhouse-webhook.deckhouse.io"
WEBHOOK_PATH = "/validate/v1alpha1/module-configs"
UP_WEBHOOK_NAME = "update-policies.deckhouse-webhook.deckhouse.io"
UP_WEBHOOK_PATH = "/validate/v1alpha1/update-policies"

# Secret rendered from ModuleConfig deckhouse spec.settings.registry; its generation is the
# observedGeneration of registry-state conditions.
REGISTRY_CONFIG_SECRET = "registry-config"
ANN_REGISTRY_CONFIG_GENERATION = "registry.deckhouse.io/generation"

RELEASE_CHANNELS = ("Alpha", "Beta", "EarlyAccess", "Stable", "RockSolid", "LTS")

# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type


class ModuleDocFragment:
    # Same option names, aliases and K8S_AUTH_* variables as kubernetes.core.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, several paths separated by C(:), or the kubeconfig as a dictionary.
      - Secret values of a dictionary kubeconfig (tokens, keys, passwords) are never shown in output.
      - Without it (and without O(host)), in-cluster configuration is tried, then C(~/.kube/config).
      - Can also be set with E(K8S_AUTH_KUBECONFIG).
    type: raw
  context:
    description: The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description: URL of the Kubernetes API server. Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description: Bearer token for the API server. Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  username:
    description: Username for HTTP basic authentication. Can also be set with E(K8S_AUTH_USERNAME).
    type: str
  password:
    description: Password for HTTP basic authentication. Can also be set with E(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA bundle for the API server. Can also be set with E(K8S_AUTH_SSL_CA_CERT).
      - Key material of a kubeconfig (C(certificate-authority-data), C(client-certificate-data),
        C(client-key-data)) is loaded from memory and never written to a file.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Path to a client certificate. Can also be set with E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: Path to the client certificate's key. Can also be set with E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - HTTP proxy URL for API requests. Can also be set with E(K8S_AUTH_PROXY).
      - Without it and without the kubeconfig's C(proxy-url), E(HTTPS_PROXY) (E(HTTP_PROXY) for an C(http://)
        host) is used as kubectl uses it, with E(NO_PROXY); as in kubectl, C(localhost) and loopback addresses
        never go through a proxy taken from the environment.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts that bypass O(proxy). Can also be set with E(K8S_AUTH_NO_PROXY).
      - Entries are C(*), a domain (with or without a leading dot; subdomains match), C(host:port), an IP
        address or a CIDR.
    type: str
  proxy_headers:
    description: Headers for the proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description: C(user:password) for the proxy. Can also be set with E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH).
        type: str
      basic_auth:
        description: C(user:password) basic auth. Can also be set with E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH).
        type: str
      user_agent:
        description: User agent sent to the proxy. Can also be set with E(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
        type: str
  persist_config:
    description:
      - Save refreshed tokens (for example OIDC) back into the kubeconfig file.
      - Can also be set with E(K8S_AUTH_PERSIST_CONFIG).
    type: bool
  impersonate_user:
    description: User to impersonate. Can also be set with E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description: Groups to impersonate. Can also be set with E(K8S_AUTH_IMPERSONATE_GROUPS) (comma-separated).
    type: list
    elements: str
  request_timeout:
    description:
      - Seconds to wait for one API response. Must be greater than 0.
      - Transient failures are retried for up to O(retry_timeout) seconds in total.
    type: float
    default: 30
  retry_timeout:
    description:
      - Total seconds one request is retried for when the API is temporarily unavailable (connection refused
        or reset, HTTP 429 (honouring C(Retry-After)), 500, 502, 503 (also the API server's
        "before all known HTTP paths have been installed" while it starts), 504, and an admission webhook that
        cannot be called, C(failed calling webhook), while Deckhouse restarts). Retries back off with jitter.
      - After that the task fails with a message that says Deckhouse is restarting, its webhook is down, or
        the API at O(host) is unreachable. HTTP 413 (request too large), TLS verification errors and
        permission errors are never retried.
      - Writes are safe to retry, they are merge patches guarded by C(metadata.resourceVersion), so a write
        that already landed is detected (HTTP 409) and re-read.
      - Must be greater than 0. Defaults to E(DKP_RETRY_TIMEOUT) when set, else C(120).
    type: float
requirements:
  - kubernetes >= 24.2.0 (Python library)
  - PyYAML
"""

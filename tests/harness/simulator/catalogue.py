"""The embedded modules and the fake registries, loaded from catalogue.yaml."""

from __future__ import annotations

import copy
import hashlib
import os
import threading

import yaml

from . import consts
from .semver import Version

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PATH = os.path.join(HERE, "catalogue.yaml")


class Catalogue:
    def __init__(self, path: str = DEFAULT_PATH):
        with open(path, encoding="utf-8") as f:
            self.raw = yaml.safe_load(f)
        self.lock = threading.RLock()
        self.edition = self.raw.get("edition", "ce")
        self.deckhouse_version = self.raw.get("deckhouseVersion", "v1.75.0")
        self.deckhouse_image = self.raw.get("deckhouseImage", "registry.deckhouse.io/deckhouse/ce:v1.75.0")
        self.embedded: dict[str, dict] = {m["name"]: m for m in self.raw.get("embedded", [])}
        self.global_def = self.raw.get("global", {})
        self.other_queues: list[str] = list(self.raw.get("otherQueues", []))
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.registries: dict[str, dict] = copy.deepcopy(self.raw.get("registries", {}))
            # (repo, module, tag) -> digest, for tags moved by `publish-digest`
            self.moved_tags: dict[tuple[str, str, str], str] = {}

    def tag_digest(self, repo: str, module: str, tag: str) -> str:
        """The digest `tag` of `module` points at (stable until publish_digest moves it)."""
        with self.lock:
            key = (self.norm_repo(repo), module, tag)
            return self.moved_tags.get(key) or "sha256:" + self.digest(key[0], module, tag)

    def publish_digest(self, repo: str, module: str, tag: str, salt: str) -> str:
        """Push a new image under `tag` (the tag moves to a new digest)."""
        with self.lock:
            key = (self.norm_repo(repo), module, tag)
            self.moved_tags[key] = "sha256:" + self.digest(key[0], module, tag, salt)
            return self.moved_tags[key]

    # -- modules ------------------------------------------------------------------------------
    def is_embedded(self, name: str) -> bool:
        return name in self.embedded

    def config_versions(self, name: str) -> list[int]:
        if name == consts.GLOBAL:
            return list(self.global_def.get("configVersions", [1]))
        if name in self.embedded:
            return list(self.embedded[name].get("configVersions", [1]))
        meta = self.any_registry_meta(name)
        if meta is not None:
            return list(meta.get("configVersions", [1]))
        return [1]

    def settings_schema(self, name: str) -> dict | None:
        if name == consts.GLOBAL:
            return self.global_def.get("settingsSchema")
        if name in self.embedded:
            return self.embedded[name].get("settingsSchema")
        meta = self.any_registry_meta(name)
        return (meta or {}).get("settingsSchema")

    def any_registry_meta(self, name: str) -> dict | None:
        with self.lock:
            for mods in self.registries.values():
                if name in mods.get("modules", {}):
                    return mods["modules"][name]
        return None

    # -- registries ---------------------------------------------------------------------------
    @staticmethod
    def norm_repo(repo: str) -> str:
        repo = (repo or "").strip().rstrip("/")
        for p in ("https://", "http://"):
            if repo.startswith(p):
                repo = repo[len(p):]
        return repo

    def repo_modules(self, repo: str) -> dict[str, dict] | None:
        with self.lock:
            reg = self.registries.get(self.norm_repo(repo))
            return None if reg is None else copy.deepcopy(reg.get("modules", {}))

    def channel_version(self, repo: str, module: str, channel: str) -> str | None:
        with self.lock:
            reg = self.registries.get(self.norm_repo(repo), {})
            meta = reg.get("modules", {}).get(module)
            if not meta or meta.get("error"):
                return None
            channels = meta.get("channels") or {}
            ver = channels.get(channel)
            if not ver:
                versions = sorted((Version.parse(v) for v in meta.get("versions", [])))
                ver = str(versions[-1]) if versions else None
            return str(ver) if ver else None

    def versions(self, repo: str, module: str) -> list[str]:
        with self.lock:
            reg = self.registries.get(self.norm_repo(repo), {})
            meta = reg.get("modules", {}).get(module) or {}
            return [str(v) for v in meta.get("versions", [])]

    def add_version(self, repo: str, module: str, version: str, channels: list[str] | None = None,
                    meta: dict | None = None) -> None:
        version = str(Version.parse(version))
        with self.lock:
            reg = self.registries.setdefault(self.norm_repo(repo), {"modules": {}})
            mods = reg.setdefault("modules", {})
            m = mods.setdefault(module, {"weight": 900, "stage": "General Availability", "versions": [],
                                         "channels": {}})
            if meta:
                m.update(meta)
            if version not in [str(v) for v in m.setdefault("versions", [])]:
                m["versions"].append(version)
            chans = m.setdefault("channels", {})
            for ch in channels or consts.RELEASE_CHANNELS:
                chans[ch] = version
            m.pop("error", None)

    def set_error(self, repo: str, module: str, error: str | None) -> None:
        with self.lock:
            reg = self.registries.setdefault(self.norm_repo(repo), {"modules": {}})
            m = reg.setdefault("modules", {}).setdefault(module, {"versions": []})
            if error:
                m["error"] = error
            else:
                m.pop("error", None)

    @staticmethod
    def digest(*parts: str) -> str:
        return hashlib.sha256("/".join(parts).encode()).hexdigest()

# -*- coding: utf-8 -*-
# Test-only callback: writes every task result (as Ansible shows it, no_log applied) to a JSON file.
from __future__ import annotations

DOCUMENTATION = r"""
name: record
type: aggregate
short_description: Record task results for the integration tests
description: Writes each task's result to the JSON file named by E(DKP_RECORD_FILE).
options: {}
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.records = []
        self.path = os.environ.get("DKP_RECORD_FILE")

    def _add(self, result, status):
        task = result._task
        self.records.append({"task": task.get_name(), "action": task.action, "status": status,
                             "result": result._result})
        if self.path:
            with open(self.path, "w") as f:
                json.dump(self.records, f, default=str)

    def v2_runner_on_ok(self, result):
        self._add(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._add(result, "skipped")

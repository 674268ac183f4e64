# The wasmops recap callback: ansible-playbook's own account of a run, one JSON object a line,
# written to the file $WASMOPS_ANSIBLE_EVENTS, while the terminal output stays Ansible's default.
# Loaded from the step's workspace as a callback of type `notification`, so it runs beside the
# default stdout callback.
import json
import os

from ansible.plugins.callback import CallbackBase

MAX_MESSAGE = 1000


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "wasmops_recap"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._out = open(os.environ["WASMOPS_ANSIBLE_EVENTS"], "a", encoding="utf-8")

    def _emit(self, **event):
        self._out.write(json.dumps(event) + "\n")
        self._out.flush()

    def _result(self, kind, result):
        r = result._result
        message = r.get("msg") or r.get("stderr") or r.get("reason") or ""
        self._emit(
            event=kind,
            host=result._host.get_name(),
            task=result._task.get_name(),
            changed=bool(r.get("changed")),
            msg=str(message)[:MAX_MESSAGE],
        )

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_playbook_on_stats(self, stats):
        hosts = {host: stats.summarize(host) for host in sorted(stats.processed.keys())}
        self._emit(event="stats", hosts=hosts)

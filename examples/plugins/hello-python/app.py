"""hello-python: a wasmops step plugin written in Python.

Built into a WASI 0.2 component with componentize-py (see build.sh). The class below implements
the `step` interface of the `wasmops:plugin/step-plugin@0.1.0` world; the `wit_world` package is
generated from ../../../wit by componentize-py at build time (`componentize-py bindings` writes it
to disk for your editor).

WIT conventions in Python:
  * records are dataclasses, `option<T>` is `T | None`, `list<u8>` is `bytes`;
  * a `result<T, E>` export returns T on success and *raises* `Err(E)` on failure;
  * a `result<T, E>` import returns T or raises `Err(E)` (catch it to handle the failure).
"""

import json
import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import exec as host_exec  # `exec` would shadow the Python builtin
from wit_world.imports import log
from wit_world.imports.types import (
    Decision,
    StepInfo,
    StepOutcome,
    StepOutcome_Completed,
    StepRequest,
    StepResult,
)

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "who to greet"},
        "shout": {"type": "boolean", "default": False},
    },
    "required": ["name"],
    "additionalProperties": False,
}
OUTPUTS = ["greeting", "kernel", "python"]


def info(message: str) -> None:
    log.log(log.Level.INFO, message)


def parse_config(text: str) -> tuple[dict, list[str]]:
    """The `with` block and every problem with it, one line each."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        return {}, [f"`with` is not valid JSON: {e}"]
    if not isinstance(config, dict):
        return {}, ["`with` must be a mapping like `{name: world}`"]
    problems = []
    name = config.get("name")
    if name is None:
        problems.append("missing `name`: say who to greet, e.g. `with: {name: world}`")
    elif not isinstance(name, str) or not name.strip():
        problems.append(f"`name` must be a non-empty string, got {json.dumps(name)}")
    if not isinstance(config.get("shout", False), bool):
        problems.append("`shout` must be true or false")
    for key in sorted(set(config) - set(CONFIG_SCHEMA["properties"])):
        problems.append(f"unknown key `{key}` (expected: name, shout)")
    return config, problems


def kernel_name(workspace: str) -> str:
    """`uname -s` through the host's `exec` import (granted by plugin.toml: exec = ["bash"])."""
    try:
        out = host_exec.run(
            host_exec.Command(
                program="bash",
                args=["-c", "uname -s"],
                env=[],
                cwd=None,  # the run workspace
                stdin=None,
                timeout_ms=10_000,
            )
        )
    except Err as e:  # not granted, or could not start
        raise Err(f"cannot run bash: {e.value}")
    if out.exit_code != 0:
        detail = "timed out" if out.timed_out else f"exit code {out.exit_code}"
        stderr = out.stderr.decode("utf-8", "replace").strip()
        raise Err(f"`uname -s` failed ({detail}): {stderr}")
    return out.stdout.decode("utf-8", "replace").strip()


class Step(exports.Step):
    def describe(self) -> StepInfo:
        return StepInfo(
            description="Greets someone from Python and reports the host kernel",
            config_schema=json.dumps(CONFIG_SCHEMA),
            outputs=OUTPUTS,
        )

    def validate(self, config: str) -> None:
        _, problems = parse_config(config)
        if problems:
            raise Err(problems)

    def run(self, request: StepRequest) -> StepOutcome:
        config, problems = parse_config(request.config)
        if problems:
            raise Err("invalid `with` for hello-python: " + "; ".join(problems))

        greeting = f"hello, {config['name']} from Python"
        if config.get("shout"):
            greeting = greeting.upper()
        info(f"greeting {config['name']} (step {request.step_path}, attempt {request.attempt})")
        kernel = kernel_name(request.workspace)
        python = "{}.{}.{}".format(*sys.version_info[:3])

        outputs = {"greeting": greeting, "kernel": kernel, "python": python}
        return StepOutcome_Completed(StepResult(summary=greeting, outputs=json.dumps(outputs)))

    def resume(self, request: StepRequest, state: str, decision: Decision) -> StepOutcome:
        # Only steps that return `waiting` are ever resumed; this one never does.
        raise Err("hello-python never waits, so there is nothing to resume")

"""hello-python: a wasmops step plugin written in Python.

Built into a WASI 0.2 component with componentize-py (see build.sh). The `Step` class below
implements the `step` interface of the `wasmops:plugin/step-plugin@0.1.0` world; the `wit_world`
package it imports is generated from ../../../wit by componentize-py at build time
(`./build.sh bindings` writes a copy to disk for your editor and tests).

WIT conventions in Python:
  * records are dataclasses, `option<T>` is `T | None`, `list<u8>` is `bytes`, enums are `Enum`s;
  * an exported function returning `result<T, E>` returns T, and fails by *raising* `Err(E)`;
  * an imported function returning `result<T, E>` returns T, or raises `Err(E)`.
"""

import functools
import json
import sys
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import exec as host_exec  # as `exec` it would shadow the builtin
from wit_world.imports import log
from wit_world.imports.types import (
    Decision,
    StepInfo,
    StepOutcome,
    StepOutcome_Completed,
    StepRequest,
    StepResult,
)

PLUGIN = "hello-python"  # as in plugin.toml, for messages
CONFIG_KEYS = {
    "name": {"type": "string", "minLength": 1, "description": "who to greet"},
    "shout": {"type": "boolean", "default": False, "description": "greet in capitals"},
}
CONFIG_SCHEMA = {
    "type": "object",
    "properties": CONFIG_KEYS,
    "required": ["name"],
    "additionalProperties": False,
}
OUTPUTS = ["greeting", "kernel", "python"]


def info(message: str) -> None:
    log.log(log.Level.INFO, message)


def step_errors(method):
    """Turns a bug (any exception but `Err`) into a failed step instead of a trap.

    An exception escaping an export traps the instance, and the traceback would go to the
    component's stderr, which the host does not keep. Log it and fail with its last line instead.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Err:
            raise
        except Exception as e:
            log.log(log.Level.ERROR, traceback.format_exc())
            raise Err(f"{PLUGIN} failed: {type(e).__name__}: {e}")

    return wrapper


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
    for key in sorted(set(config) - set(CONFIG_KEYS)):
        problems.append(f"unknown key `{key}` (expected: {', '.join(CONFIG_KEYS)})")
    return config, problems


def kernel_name() -> str:
    """`uname -s` through the host's `exec` import; plugin.toml grants `exec = ["bash"]`."""
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
        why = "timed out" if out.timed_out else f"exit code {out.exit_code}"
        stderr = out.stderr.decode("utf-8", "replace").strip()
        raise Err(f"`uname -s` failed ({why}): {stderr}")
    # The host already streamed stdout/stderr into the step log; no need to log them again.
    return out.stdout.decode("utf-8", "replace").strip()


class Step(exports.Step):
    @step_errors
    def describe(self) -> StepInfo:
        return StepInfo(
            description="Greets someone from Python and reports the host kernel",
            config_schema=json.dumps(CONFIG_SCHEMA),
            outputs=OUTPUTS,
        )

    @step_errors
    def validate(self, config: str) -> None:
        _, problems = parse_config(config)
        if problems:
            raise Err(problems)

    @step_errors
    def run(self, request: StepRequest) -> StepOutcome:
        config, problems = parse_config(request.config)
        if problems:
            raise Err(f"invalid `with` for {PLUGIN}: " + "; ".join(problems))

        name = config["name"]
        greeting = f"hello, {name} from Python"
        if config.get("shout"):
            greeting = greeting.upper()
        info(f"greeting {name} (step {request.step_path}, attempt {request.attempt})")

        outputs = {
            "greeting": greeting,
            "kernel": kernel_name(),
            "python": "{}.{}.{}".format(*sys.version_info[:3]),
        }
        return StepOutcome_Completed(StepResult(summary=greeting, outputs=json.dumps(outputs)))

    @step_errors
    def resume(self, request: StepRequest, state: str, decision: Decision) -> StepOutcome:
        # Only a step that returned `waiting` is ever resumed, and this one never does.
        raise Err(f"{PLUGIN} never waits, so there is nothing to resume")

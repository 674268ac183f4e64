#!/usr/bin/env bash
# Builds hello_python.wasm next to plugin.toml with componentize-py
# (pip install componentize-py==0.25.1).
#   ./build.sh            the component
#   ./build.sh bindings   also write the generated Python bindings here, for editors and tests
#
# componentize-py reads the whole WIT directory (plugin.wit and any WASI packages under wit/deps/),
# so nothing here changes when the world imports more interfaces.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="${WASMOPS_WIT:-$here/../../../wit}"
world="wasmops:plugin/step-plugin@0.1.0"
if [ ! -f "$wit/plugin.wit" ]; then
    echo "no WIT at $wit: set WASMOPS_WIT to the wasmops wit/ directory" >&2
    exit 1
fi

if command -v componentize-py >/dev/null 2>&1; then
    cpy=(componentize-py)
elif python3 -c 'import componentize_py' 2>/dev/null; then
    # Installed without its script on PATH (pip --user, a venv not activated); the package has no
    # __main__, so call its entry point.
    cpy=(python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())')
else
    echo "componentize-py not found: pip install componentize-py==0.25.1" >&2
    exit 1
fi

# `wasmops:plugin/types` stays `wit_world.imports.types` even when the world also imports another
# `types` interface (wasi:http/types), which would otherwise rename both.
args=(-d "$wit" -w "$world" --import-interface-name "wasmops:plugin/types@0.1.0=types")

cd "$here"
if [ "${1:-}" = bindings ]; then
    "${cpy[@]}" "${args[@]}" bindings .
fi
"${cpy[@]}" "${args[@]}" componentize app -o hello_python.wasm
echo "built $here/hello_python.wasm ($(wc -c <hello_python.wasm) bytes)"

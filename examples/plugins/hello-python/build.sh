#!/usr/bin/env bash
# Builds hello_python.wasm next to plugin.toml with componentize-py
# (pip install componentize-py==0.25.1).
#
# componentize-py reads the whole WIT directory (wit/ and any wit/deps/), so WASI packages the
# world imports resolve without changes here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="${WASMOPS_WIT:-$here/../../../wit}"
world="wasmops:plugin/step-plugin@0.1.0"

if command -v componentize-py >/dev/null 2>&1; then
    cpy=(componentize-py)
elif python3 -c 'import componentize_py' 2>/dev/null; then
    cpy=(python3 -m componentize_py)
else
    echo "componentize-py not found: pip install componentize-py==0.25.1" >&2
    exit 1
fi

cd "$here"
"${cpy[@]}" -d "$wit" -w "$world" componentize app -o hello_python.wasm
echo "built $here/hello_python.wasm ($(wc -c <hello_python.wasm) bytes)"

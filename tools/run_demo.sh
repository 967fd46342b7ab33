#!/usr/bin/env bash
# Set up (fast when nothing changed), then bring the chat node up with the default model
# (SmolLM2-135M-Instruct) and chat with it. Arguments pass through to the demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/tools/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/env.sh"
cd "$ROOT"
exec python -m br_chat_lifecycle.demo "$@"

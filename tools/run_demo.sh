#!/usr/bin/env bash
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
# Set up (fast when nothing changed), then bring the chat node up with the default model
# (SmolLM2-135M-Instruct) and chat with it. Arguments pass through to the demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/tools/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/env.sh"
cd "$ROOT"
exec python -m br_chat_lifecycle.demo "$@"

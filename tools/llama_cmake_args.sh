#!/usr/bin/env bash
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
# Print the CMAKE_ARGS that tools/setup.sh uses to build llama-cpp-python on this machine.
#
#     tools/llama_cmake_args.sh      # one line of CMake arguments on stdout, the reasons on stderr
#
# The arguments have two parts (see docs/setup.md):
#
#   trim  Skip what the node never uses. The node only needs libllama and the ggml CPU backend,
#         which the llama_cpp package loads through ctypes.
#           -DLLAVA_BUILD=OFF                   no libmtmd (multimodal). llama_cpp imports its
#                                               bindings only inside the multimodal chat handlers
#           -DCMAKE_PROJECT_llama.cpp_INCLUDE=  tools/llama_cpp_no_common.cmake: no llama.cpp
#                                               "common" library (and no cpp-httplib)
#         llama.cpp's tools, examples, tests and server are already off when it is built as a
#         subproject, and CURL is forced off by llama-cpp-python.
#   cpu   Portable CPU flags. GGML_NATIVE=OFF everywhere: -march=native can select code paths
#         that crash on some CPUs (e.g. the AMX path on some Xeons).
#           x86_64   AVX, AVX2, FMA, F16C (x86-64-v3, Haswell and later). A CPU whose
#                    /proc/cpuinfo lacks one of them gets the SSE4.2 baseline instead.
#           aarch64  -march=armv8.2-a+dotprod+fp16 when /proc/cpuinfo lists asimddp and asimdhp
#                    (Cortex-A55/A76/A78, Neoverse N1: Raspberry Pi 5, RK3588, Jetson Orin) and
#                    the compiler accepts it; else the compiler's armv8-a NEON baseline (Cortex-A53/
#                    A57/A72: Raspberry Pi 3/4, Jetson Nano). No SVE or i8mm: not every board has them.
#           riscv64  RVV 1.0 (-DGGML_RVV=ON, -march=rv64gcv) only when the compiler builds RVV
#                    intrinsics with -march=rv64gcv AND /proc/cpuinfo's isa has the V extension;
#                    else -DGGML_RVV=OFF (rv64gc). The optional zfh, zvfh, zicbop and zihintpause
#                    extensions (on by default in llama.cpp) are turned off: older compilers reject
#                    them and not every core has zfh/zvfh.
#           other    llama.cpp's defaults (nothing added).
#
# Inputs (each can be overridden, which test/test_setup_flags.py does):
#   LLAMA_ARGS_ARCH     the machine (default: uname -m)
#   LLAMA_ARGS_CPUINFO  the CPU description (default: /proc/cpuinfo)
#   CC                  the C compiler to probe (default: cc, else gcc), as CMake picks it
set -euo pipefail

TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ARCH="${LLAMA_ARGS_ARCH:-$(uname -m)}"
CPUINFO="${LLAMA_ARGS_CPUINFO:-/proc/cpuinfo}"
if [[ -n "${CC:-}" ]]; then
    read -r -a CC_CMD <<<"$CC"
elif command -v cc >/dev/null 2>&1; then
    CC_CMD=(cc)
else
    CC_CMD=(gcc)
fi

note() { printf '[llama_cmake_args] %s\n' "$*" >&2; }

# cpu_field NAME: the words of the first "NAME : ..." line of $CPUINFO (empty if unreadable).
cpu_field() {
    [[ -r "$CPUINFO" ]] || return 0
    sed -n "s/^$1[[:space:]]*:[[:space:]]*//p" "$CPUINFO" | head -n 1
}

# has_words "LIST" WORD...: true when every WORD is a word of LIST.
has_words() {
    local list=" $1 " w
    shift
    for w in "$@"; do [[ "$list" == *" $w "* ]] || return 1; done
}

# cc_compiles SOURCE FLAGS...: true when the compiler compiles the C SOURCE with FLAGS.
cc_compiles() {
    local src=$1
    shift
    printf '%s\n' "$src" | "${CC_CMD[@]}" "$@" -x c -c -o /dev/null - >/dev/null 2>&1
}

args=(-DLLAVA_BUILD=OFF "-DCMAKE_PROJECT_llama.cpp_INCLUDE=$TOOLS/llama_cpp_no_common.cmake")

case "$ARCH" in
    x86_64 | amd64)
        flags=$(cpu_field flags)
        if [[ -n "$flags" ]] && ! has_words "$flags" avx avx2 fma f16c; then
            note "x86_64: /proc/cpuinfo lacks one of avx avx2 fma f16c: SSE4.2 baseline"
            args+=(-DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF
                   -DGGML_BMI2=OFF)
        else
            args+=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
        fi
        ;;
    aarch64 | arm64)
        arm_arch=armv8.2-a+dotprod+fp16
        dot_src='#include <arm_neon.h>
int32x4_t f(int32x4_t a, int8x16_t b, int8x16_t c) { return vdotq_s32(a, b, c); }'
        if ! has_words "$(cpu_field Features)" asimddp asimdhp; then
            note "aarch64: no dotprod+fp16 (asimddp asimdhp) in $CPUINFO: armv8-a baseline"
            args+=(-DGGML_NATIVE=OFF)
        elif ! cc_compiles "$dot_src" "-march=$arm_arch"; then
            note "aarch64: ${CC_CMD[*]} does not build dotprod code with -march=$arm_arch: armv8-a baseline"
            args+=(-DGGML_NATIVE=OFF)
        else
            args+=(-DGGML_NATIVE=OFF "-DGGML_CPU_ARM_ARCH=$arm_arch")
        fi
        ;;
    riscv64)
        rvv_src='#include <stddef.h>
#include <riscv_vector.h>
size_t f(size_t n) { return __riscv_vsetvl_e8m1(n); }'
        isa=$(cpu_field isa)
        base=${isa%%_*}          # rv64imafdcv_zicbom_... -> rv64imafdcv
        base=${base#rv64}
        rvv=OFF
        if [[ "$base" != *v* ]]; then
            note "riscv64: no V extension in $CPUINFO (isa '${isa:-?}'): -DGGML_RVV=OFF"
        elif ! cc_compiles "$rvv_src" -march=rv64gcv -mabi=lp64d; then
            note "riscv64: ${CC_CMD[*]} does not build RVV intrinsics with -march=rv64gcv: -DGGML_RVV=OFF"
        else
            rvv=ON
        fi
        args+=(-DGGML_NATIVE=OFF "-DGGML_RVV=$rvv" -DGGML_RV_ZFH=OFF -DGGML_RV_ZVFH=OFF
               -DGGML_RV_ZICBOP=OFF -DGGML_RV_ZIHINTPAUSE=OFF)
        ;;
    *)
        note "$ARCH: no portable CPU flags known, llama.cpp's defaults apply"
        ;;
esac

# Quoted for the shlex.split that scikit-build-core applies to CMAKE_ARGS (a path may hold spaces).
out=()
for a in "${args[@]}"; do out+=("$(printf '%q' "$a")"); done
printf '%s\n' "${out[*]}"

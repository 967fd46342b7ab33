# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The llama.cpp build flags tools/setup.sh chooses per CPU architecture.

tools/llama_cmake_args.sh is run for each architecture with a fake ``uname -m``
(LLAMA_ARGS_ARCH), a fake /proc/cpuinfo (LLAMA_ARGS_CPUINFO) and a fake compiler (CC) that logs
what it was asked to compile and accepts or rejects it. Nothing of llama.cpp is compiled. One
test probes the real host compiler for RISC-V vector support, which an x86/ARM compiler lacks.
"""
import os
from pathlib import Path
import shlex
import shutil
import subprocess

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARGS_SCRIPT = REPO_ROOT / 'tools' / 'llama_cmake_args.sh'
NO_COMMON = REPO_ROOT / 'tools' / 'llama_cpp_no_common.cmake'

X86_PORTABLE = ['-DGGML_NATIVE=OFF', '-DGGML_AVX=ON', '-DGGML_AVX2=ON', '-DGGML_FMA=ON',
                '-DGGML_F16C=ON']
RV_PORTABLE_EXTS = ['-DGGML_RV_ZFH=OFF', '-DGGML_RV_ZVFH=OFF', '-DGGML_RV_ZICBOP=OFF',
                    '-DGGML_RV_ZIHINTPAUSE=OFF']

# First lines of real /proc/cpuinfo files (shortened flag lists, real field layout).
CPUINFO = {
    'x86_haswell': 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc '
                   'msr pae mce cx8 apic sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes '
                   'xsave avx f16c rdrand hypervisor lahf_lm abm fsgsbase bmi1 avx2 smep bmi2\n',
    'x86_sandybridge': 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 cx16 '
                       'sse4_1 sse4_2 popcnt aes xsave avx hypervisor lahf_lm\n',
    'arm_a76': 'processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 '
               'sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n'
               'CPU implementer\t: 0x41\nCPU part\t: 0xd0b\n',
    'arm_a72': 'processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n'
               'CPU implementer\t: 0x41\nCPU part\t: 0xd08\n',
    'rv_k1': 'processor\t: 0\nhart\t\t: 0\nmodel name\t: Spacemit(R) X60\nisa\t\t: '
             'rv64imafdcv_zicbom_zicboz_zicntr_zicond_zicsr_zifencei_zihintpause_zihpm_zfh_'
             'zfhmin_zca_zcd_zba_zbb_zbc_zbs_zkt_zve32f_zve32x_zve64d_zve64f_zve64x_zvfh_zvfhmin\n'
             'mmu\t\t: sv39\n',
    'rv_jh7110': 'processor\t: 0\nhart\t\t: 1\nisa\t\t: rv64imafdc_zicntr_zicsr_zifencei_zihpm_'
                 'zba_zbb\nmmu\t\t: sv39\nuarch\t\t: sifive,u74-mc\n',
}


@pytest.fixture
def fake_cc(tmp_path):
    """Return make(accept): a fake C compiler; ``calls`` lists (argv, source) it was given."""
    log = tmp_path / 'cc.log'
    calls = []

    def make(accept):
        cc = tmp_path / ('cc_yes' if accept else 'cc_no')
        cc.write_text('#!/bin/sh\n'
                      f'{{ echo "ARGS $*"; cat; echo "END"; }} >> "{log}"\n'
                      f'exit {0 if accept else 1}\n')
        cc.chmod(0o755)
        return str(cc)

    def read_calls():
        calls.clear()
        if log.exists():
            for block in log.read_text().split('END\n'):
                if block.startswith('ARGS '):
                    argv, _, src = block.partition('\n')
                    calls.append((argv[5:].split(), src))
        return calls

    make.calls = read_calls
    return make


def cmake_args(tmp_path, arch, cpuinfo=None, cc=None, script=ARGS_SCRIPT):
    """Run the flag selection as tools/setup.sh does; return (args as CMake sees them, stderr)."""
    env = dict(os.environ, LLAMA_ARGS_ARCH=arch)
    if cpuinfo is None:
        env['LLAMA_ARGS_CPUINFO'] = str(tmp_path / 'no-such-cpuinfo')
    else:
        path = tmp_path / f'cpuinfo-{arch}'
        path.write_text(CPUINFO[cpuinfo])
        env['LLAMA_ARGS_CPUINFO'] = str(path)
    if cc is not None:
        env['CC'] = cc
    proc = subprocess.run(['bash', str(script)], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f'expected one line of CMake arguments, got {proc.stdout!r}'
    # scikit-build-core splits CMAKE_ARGS with shlex.split.
    return shlex.split(lines[0]), proc.stderr


def split_trim(args, tools_dir=REPO_ROOT / 'tools'):
    """Check the trim arguments lead the list; return the CPU part."""
    assert args[:2] == ['-DLLAVA_BUILD=OFF',
                        f'-DCMAKE_PROJECT_llama.cpp_INCLUDE={tools_dir}/llama_cpp_no_common.cmake']
    return args[2:]


def test_x86_64_gets_the_portable_avx2_set(tmp_path, fake_cc):
    cc = fake_cc(accept=True)
    args, _ = cmake_args(tmp_path, 'x86_64', 'x86_haswell', cc)
    assert split_trim(args) == X86_PORTABLE
    assert not fake_cc.calls(), 'x86_64 needs no compiler probe'


def test_x86_64_without_cpuinfo_keeps_the_portable_avx2_set(tmp_path):
    args, _ = cmake_args(tmp_path, 'x86_64', cpuinfo=None)
    assert split_trim(args) == X86_PORTABLE


def test_x86_64_cpu_without_avx2_falls_back_to_sse42(tmp_path):
    args, err = cmake_args(tmp_path, 'x86_64', 'x86_sandybridge')
    assert split_trim(args) == ['-DGGML_NATIVE=OFF', '-DGGML_AVX=OFF', '-DGGML_AVX2=OFF',
                                '-DGGML_FMA=OFF', '-DGGML_F16C=OFF', '-DGGML_BMI2=OFF']
    assert 'SSE4.2' in err


def test_aarch64_with_dotprod_cpu_and_compiler(tmp_path, fake_cc):
    args, _ = cmake_args(tmp_path, 'aarch64', 'arm_a76', fake_cc(accept=True))
    assert split_trim(args) == ['-DGGML_NATIVE=OFF',
                                '-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16']
    (argv, src), = fake_cc.calls()
    assert '-march=armv8.2-a+dotprod+fp16' in argv
    assert 'vdotq_s32' in src


def test_aarch64_compiler_without_dotprod_gets_baseline(tmp_path, fake_cc):
    args, err = cmake_args(tmp_path, 'aarch64', 'arm_a76', fake_cc(accept=False))
    assert split_trim(args) == ['-DGGML_NATIVE=OFF']
    assert 'armv8-a baseline' in err
    assert len(fake_cc.calls()) == 1


def test_aarch64_cpu_without_dotprod_gets_baseline(tmp_path, fake_cc):
    args, err = cmake_args(tmp_path, 'aarch64', 'arm_a72', fake_cc(accept=True))
    assert split_trim(args) == ['-DGGML_NATIVE=OFF']
    assert 'asimddp' in err


def test_riscv64_with_rvv_cpu_and_compiler(tmp_path, fake_cc):
    args, _ = cmake_args(tmp_path, 'riscv64', 'rv_k1', fake_cc(accept=True))
    assert split_trim(args) == ['-DGGML_NATIVE=OFF', '-DGGML_RVV=ON'] + RV_PORTABLE_EXTS
    (argv, src), = fake_cc.calls()
    assert '-march=rv64gcv' in argv and '-mabi=lp64d' in argv
    assert '#include <riscv_vector.h>' in src and '__riscv_vsetvl_e8m1' in src


def test_riscv64_compiler_without_rvv(tmp_path, fake_cc):
    args, err = cmake_args(tmp_path, 'riscv64', 'rv_k1', fake_cc(accept=False))
    assert split_trim(args) == ['-DGGML_NATIVE=OFF', '-DGGML_RVV=OFF'] + RV_PORTABLE_EXTS
    assert 'rv64gcv' in err
    assert len(fake_cc.calls()) == 1


def test_riscv64_cpu_without_vector_extension(tmp_path, fake_cc):
    args, err = cmake_args(tmp_path, 'riscv64', 'rv_jh7110', fake_cc(accept=True))
    assert split_trim(args) == ['-DGGML_NATIVE=OFF', '-DGGML_RVV=OFF'] + RV_PORTABLE_EXTS
    assert 'no V extension' in err


def test_riscv64_probe_with_a_real_non_riscv_compiler(tmp_path):
    cc = shutil.which('cc') or shutil.which('gcc')
    if cc is None:
        pytest.skip('no C compiler on this machine')
    probe = subprocess.run([cc, '-dumpmachine'], capture_output=True, text=True, timeout=60)
    if probe.stdout.startswith('riscv64'):
        pytest.skip('the host compiler targets riscv64')
    args, err = cmake_args(tmp_path, 'riscv64', 'rv_k1', cc)
    assert split_trim(args) == ['-DGGML_NATIVE=OFF', '-DGGML_RVV=OFF'] + RV_PORTABLE_EXTS
    assert 'does not build RVV intrinsics' in err


def test_unknown_architecture_only_trims(tmp_path):
    args, err = cmake_args(tmp_path, 'ppc64le')
    assert split_trim(args) == []
    assert "llama.cpp's defaults" in err


def test_tools_path_with_spaces_survives_cmake_args_splitting(tmp_path):
    tools = tmp_path / 'a clone' / 'tools'
    tools.mkdir(parents=True)
    shutil.copy(ARGS_SCRIPT, tools)
    shutil.copy(NO_COMMON, tools)
    args, _ = cmake_args(tmp_path, 'x86_64', 'x86_haswell', script=tools / ARGS_SCRIPT.name)
    assert split_trim(args, tools) == X86_PORTABLE


def test_no_common_include_overrides_the_forced_llama_build_common(tmp_path):
    """The same layout as llama-cpp-python: FORCE ON at the top, llama.cpp as a subproject."""
    cmake = shutil.which('cmake')
    if cmake is None:
        pytest.skip('cmake not installed')
    src = tmp_path / 'src'
    (src / 'vendor' / 'llama.cpp').mkdir(parents=True)
    (src / 'CMakeLists.txt').write_text(
        'cmake_minimum_required(VERSION 3.21)\nproject(llama_cpp NONE)\n'
        'option(LLAVA_BUILD "" ON)\n'
        'set(LLAMA_BUILD_COMMON ON CACHE BOOL "Build llama.cpp common library" FORCE)\n'
        'add_subdirectory(vendor/llama.cpp)\n'
        'message(STATUS "LLAVA_BUILD=${LLAVA_BUILD}")\n')
    (src / 'vendor' / 'llama.cpp' / 'CMakeLists.txt').write_text(
        'project("llama.cpp" NONE)\n'
        'option(LLAMA_BUILD_COMMON "llama: build common utils library" OFF)\n'
        'message(STATUS "LLAMA_BUILD_COMMON=${LLAMA_BUILD_COMMON}")\n')

    def configure(name, args):
        proc = subprocess.run([cmake, '-S', str(src), '-B', str(tmp_path / name), *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    plain = configure('plain', ['-DLLAMA_BUILD_COMMON=OFF'])
    assert 'LLAMA_BUILD_COMMON=ON' in plain, 'the top-level FORCE wins over a plain -D'
    args, _ = cmake_args(tmp_path, 'x86_64', 'x86_haswell')
    trimmed = configure('trimmed', args)
    assert 'LLAMA_BUILD_COMMON=OFF' in trimmed
    assert 'LLAVA_BUILD=OFF' in trimmed


def host_has_x86_64_v3():
    """Return True on an x86_64 host whose CPU has AVX, AVX2, FMA and F16C."""
    if os.uname().machine != 'x86_64':
        return False
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return False
    flags = next((line.split(':', 1)[1].split() for line in text.splitlines()
                  if line.startswith('flags')), [])
    return {'avx', 'avx2', 'fma', 'f16c'} <= set(flags)


def test_installed_llama_cpp_is_the_trimmed_portable_build():
    """The llama_cpp in this venv was built by tools/setup.sh with the flags above."""
    if os.environ.get('LLAMA_CMAKE_ARGS'):
        pytest.skip('LLAMA_CMAKE_ARGS overrides the default build')
    if not (REPO_ROOT / '.setup-stamps' / 'llama-cpp-python').is_file():
        pytest.skip('llama-cpp-python was installed before setup.sh recorded its build flags')
    llama_cpp = pytest.importorskip('llama_cpp')
    lib_dir = Path(llama_cpp.__file__).parent / 'lib'
    libs = sorted(p.name for p in lib_dir.glob('lib*.so'))
    assert 'libllama.so' in libs and 'libggml-cpu.so' in libs, libs
    assert 'libmtmd.so' not in libs and 'libllama-common.so' not in libs, libs
    if host_has_x86_64_v3():
        info = llama_cpp.llama_print_system_info().decode()
        assert 'AVX2 = 1' in info and 'FMA = 1' in info and 'F16C = 1' in info, info
        assert 'AVX512' not in info and 'AMX' not in info, f'not a portable build: {info}'

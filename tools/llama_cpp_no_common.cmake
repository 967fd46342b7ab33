# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
# Skip llama.cpp's "common" library when building llama-cpp-python (tools/llama_cmake_args.sh).
#
# CMake includes this file right after llama.cpp's own project() call, because
# tools/llama_cmake_args.sh passes -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>.
# llama-cpp-python 0.3.36's top-level CMakeLists.txt sets LLAMA_BUILD_COMMON ON with FORCE, so a
# plain -DLLAMA_BUILD_COMMON=OFF cannot turn it off. This file runs after that and before llama.cpp
# reads the option. libllama and the ggml CPU backend do not need common (arg parsing, chat
# parsers, jinja, HTTP download, cpp-httplib), and the Python bindings never load it: they only
# load libllama (and libmtmd for multimodal chat handlers).
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)

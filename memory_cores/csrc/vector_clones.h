// MEMRL_VECTOR_CLONES: on x86-64, a function attribute that compiles the function twice, for x86-64-v3 (AVX2
// and FMA) and for the baseline, the loader picking one for the CPU at load time (GCC/Clang target_clones);
// elsewhere nothing (e.g. ARM: NEON is its baseline, which -O3 vectorises for without help).
//
// Two conditions, both needed: the build asks for it (-DMEMRL_X86_CLONES, chosen from platform.machine() by
// memory_cores/native_ops.py build_flags), and the compiler targets x86-64 (a build for several architectures
// from one set of flags, e.g. a macOS universal build, passes the flag to its ARM half too; there the attribute
// would not compile).
#pragma once

#if defined(MEMRL_X86_CLONES) && defined(__x86_64__)
#define MEMRL_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MEMRL_VECTOR_CLONES
#endif

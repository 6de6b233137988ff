/* What the libFuzzer targets share: a failed invariant aborts (libFuzzer
 * then saves the input as a crash), and a small PRNG that turns bytes of
 * the input into split points and choices, so that a crash replays exactly. */
#ifndef C10K_FUZZ_H
#define C10K_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* splitmix64: deterministic, seeded from the input. */
static inline uint64_t fuzz_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* 1..max */
static inline size_t fuzz_chunk(uint64_t *s, size_t max)
{
    return 1 + (size_t)(fuzz_rand(s) % max);
}

#endif

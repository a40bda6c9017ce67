// fp32 FMA throughput kernel for benchmarks/peak.py: usage `fma_peak ITERATIONS`,
// prints "FLOPS SECONDS CHECKSUM". Built with gcc -O2 -mavx2 -mfma.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// Zen 3 and Intel since Haswell issue two 256-bit FMAs per cycle with 4-5 cycles of
// latency, so at least 2 x 5 independent dependency chains keep both pipes full.
#define CHAINS 12

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ITERATIONS\n", argv[0]);
        return 2;
    }
    long iters = strtol(argv[1], NULL, 10);
    // volatile stops constant folding; x = x * 0.5 + 1 converges to 2, so the chains
    // never reach inf or denormals (which would take slow microcode paths).
    volatile float vm = 0.5f, vc = 1.0f;
    __m256 m = _mm256_set1_ps(vm), c = _mm256_set1_ps(vc), acc[CHAINS];
    for (int k = 0; k < CHAINS; k++) acc[k] = _mm256_set1_ps((float)k);

    double t0 = now();
    for (long i = 0; i < iters; i++) {
// Full unrolling (any count >= CHAINS) lets gcc keep acc[] in ymm registers.
#pragma GCC unroll 16
        for (int k = 0; k < CHAINS; k++) acc[k] = _mm256_fmadd_ps(acc[k], m, c);
    }
    double seconds = now() - t0;

    // Printing a sum of every lane keeps all chains live, so the loop cannot be dropped.
    float lanes[8], sum = 0.0f;
    for (int k = 0; k < CHAINS; k++) {
        _mm256_storeu_ps(lanes, acc[k]);
        for (int j = 0; j < 8; j++) sum += lanes[j];
    }
    // 8 fp32 lanes x 2 FLOPs (multiply + add) per FMA.
    printf("%.0f %.9f %g\n", (double)iters * CHAINS * 8 * 2, seconds, sum);
    return 0;
}

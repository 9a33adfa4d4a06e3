/* One pass over a contiguous float32 or float64 array: sum, sum of squares, min, max and the
 * number of zeros (-0.0 included).
 *
 * torch computes each of these as its own reduction, one read of the tensor from memory
 * each; this reads it once, vectorized (`omp simd`) and split across threads. Partial sums
 * run over blocks of 256 values in the array's own precision and add up in double, so the
 * error stays at float32 rounding of 256 terms. NaN and Inf are not looked for here: they make
 * the sum or a bound non-finite, and the caller then counts them with torch.
 *
 * Built on first use by inspector/engine/native/__init__.py with the system C compiler, for
 * the baseline of the architecture (the library may be shared between machines through a
 * home directory); without a compiler the inspector uses torch's reductions.
 *
 * out: [sum, sum of squares, min, max, zeros].
 */
#include <math.h>
#include <stdint.h>

#define BLOCK 256

#define STATS_BODY(T)                                                                        \
    int64_t blocks = (n + BLOCK - 1) / BLOCK;                                                \
    double sum = 0.0, sq = 0.0;                                                              \
    T lo = INFINITY, hi = -INFINITY;                                                         \
    int64_t zeros = 0;                                                                       \
    _Pragma("omp parallel for num_threads(threads) schedule(static) reduction(+:sum,sq,zeros) reduction(min:lo) reduction(max:hi)") \
    for (int64_t b = 0; b < blocks; b++) {                                                   \
        int64_t start = b * BLOCK, end = start + BLOCK < n ? start + BLOCK : n;              \
        T bs = 0, bq = 0, blo = INFINITY, bhi = -INFINITY;                                   \
        int bz = 0;                                                                          \
        _Pragma("omp simd reduction(+:bs,bq,bz) reduction(min:blo) reduction(max:bhi)")      \
        for (int64_t i = start; i < end; i++) {                                              \
            T v = x[i];                                                                      \
            bs += v;                                                                         \
            bq += v * v;                                                                     \
            blo = v < blo ? v : blo;                                                         \
            bhi = v > bhi ? v : bhi;                                                         \
            bz += (v == 0);                                                                  \
        }                                                                                    \
        sum += bs;                                                                           \
        sq += bq;                                                                            \
        zeros += bz;                                                                         \
        lo = blo < lo ? blo : lo;                                                            \
        hi = bhi > hi ? bhi : hi;                                                            \
    }                                                                                        \
    out[0] = sum;                                                                            \
    out[1] = sq;                                                                             \
    out[2] = (double)lo;                                                                     \
    out[3] = (double)hi;                                                                     \
    out[4] = (double)zeros;

void stats_f32(const float *x, int64_t n, int threads, double *out) { STATS_BODY(float) }

void stats_f64(const double *x, int64_t n, int threads, double *out) { STATS_BODY(double) }

/* One pass over a contiguous float32 or float64 array: sum, sum of squares, min, max and the
 * number of zeros (-0.0 included), then the histogram of a strided sample.
 *
 * torch computes each statistic as its own reduction, one read of the tensor from memory
 * each; this reads it once, vectorized (`omp simd`, compiled with -fopenmp-simd: no OpenMP
 * runtime, which would be a second one beside torch's). One thread: between two ops of a
 * forward pass, torch's own worker threads are still spinning on the other cores, and a
 * second thread of ours measured slower than one (ResNet-50 b8: 207 ms of statistics per
 * pass with two threads, 152-161 ms with one, 271-278 ms with torch's reductions).
 *
 * Partial sums run over blocks of 256 values in the array's own precision and add up in
 * double, so the error stays at the rounding of 256 terms. NaN and Inf are not looked for
 * here: they make the sum or a bound non-finite, and the caller then counts them with torch.
 * The histogram counts the values 0, step, 2*step, ... (`count` of them) in `bins` equal bins
 * over [min, max], the top edge included: what the torch path computes from the same sample.
 *
 * Built on first use by inspector/engine/native/__init__.py with the system C compiler, for
 * the baseline of the architecture (the library may be shared between machines through a
 * home directory); without a compiler the inspector uses torch's reductions.
 *
 * out: [sum, sum of squares, min, max, zeros]; hist: `bins` counts.
 */
#include <math.h>
#include <stdint.h>

#define BLOCK 256

#define STATS(T, NAME)                                                                       \
    void NAME(const T *x, int64_t n, int64_t step, int64_t count, int bins, double *out,      \
              int64_t *hist) {                                                               \
        double sum = 0.0, sq = 0.0;                                                          \
        T lo = INFINITY, hi = -INFINITY;                                                     \
        int64_t zeros = 0;                                                                   \
        for (int64_t start = 0; start < n; start += BLOCK) {                                 \
            int64_t end = start + BLOCK < n ? start + BLOCK : n;                             \
            T bs = 0, bq = 0, blo = INFINITY, bhi = -INFINITY;                               \
            int bz = 0;                                                                      \
            _Pragma("omp simd reduction(+:bs,bq,bz) reduction(min:blo) reduction(max:bhi)")  \
            for (int64_t i = start; i < end; i++) {                                          \
                T v = x[i];                                                                  \
                bs += v;                                                                     \
                bq += v * v;                                                                 \
                blo = v < blo ? v : blo;                                                     \
                bhi = v > bhi ? v : bhi;                                                     \
                bz += (v == 0);                                                              \
            }                                                                                \
            sum += bs;                                                                       \
            sq += bq;                                                                        \
            zeros += bz;                                                                     \
            lo = blo < lo ? blo : lo;                                                        \
            hi = bhi > hi ? bhi : hi;                                                        \
        }                                                                                    \
        out[0] = sum;                                                                        \
        out[1] = sq;                                                                         \
        out[2] = (double)lo;                                                                 \
        out[3] = (double)hi;                                                                 \
        out[4] = (double)zeros;                                                              \
        for (int b = 0; b < bins; b++) hist[b] = 0;                                          \
        if (!(isfinite(out[2]) && isfinite(out[3]))) return;                                 \
        if (out[3] <= out[2]) {                                                              \
            hist[0] = count;                                                                 \
            return;                                                                          \
        }                                                                                    \
        double scale = bins / (out[3] - out[2]);                                             \
        for (int64_t k = 0; k < count; k++) {                                                \
            int64_t b = (int64_t)(((double)x[k * step] - out[2]) * scale);                   \
            hist[b < bins ? b : bins - 1]++;                                                 \
        }                                                                                    \
    }

STATS(float, stats_f32)
STATS(double, stats_f64)

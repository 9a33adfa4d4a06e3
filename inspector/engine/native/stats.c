/* One pass over a contiguous float32 or float64 array: sum, sum of squares, min, max and the
 * number of zeros (-0.0 included), then the histogram of a strided sample.
 *
 * torch computes each statistic as its own reduction, one read of the tensor from memory
 * each; this reads it once. What limits a one-pass reduction then is not memory but the
 * chain of additions into one accumulator, each waiting for the last (3-4 cycles). So every
 * statistic runs in LANES independent accumulators, which the compiler keeps in a few vector
 * registers of independent chains. On 2 EPYC cores, one 1 MB array (in cache): 10 GB/s with
 * one vector of accumulators, 30 GB/s with 16 lanes in AVX2, 11 GB/s with 16 lanes in SSE2;
 * from memory (100 MB) 16-18 GB/s, about what one core can read.
 *
 * On x86-64 the same code is compiled three times, for the baseline (SSE2), for AVX2 with FMA
 * and for AVX-512, and the first call picks the widest the processor runs: the library may be
 * built on one machine and loaded on another through a shared home directory, so nothing is
 * compiled for the build machine's processor alone.
 *
 * The AVX-512 code reads 32 lanes (two zmm registers per statistic) and asks for the memory
 * AHEAD bytes further on as it goes. With five operations per vector loaded, the out-of-order
 * window holds too few loads to keep the memory busy: on 2 Xeon cores with AVX-512 and one
 * thread, 100 MB read at 7.3 GB/s in AVX2 and 12 GB/s in AVX-512 without the prefetch, 28
 * GB/s with it, what torch.sum reads (28); 17 MB 22 -> 28 GB/s (torch.sum 29); 1 MB, in
 * cache, 40 -> 46 GB/s. In the AVX2 code the same prefetch costs half the speed in cache
 * (40 -> 22 GB/s on 1 MB), so it has none.
 *
 * Threads: built with OpenMP, an array of PARALLEL_MIN values or more is cut into one
 * contiguous part per thread (whole blocks each), and the parts' results are merged. The
 * library then shares torch's OpenMP runtime (the loader finds libgomp.so.1 already loaded
 * by torch), so the threads are torch's own workers, still spinning from the op before: a
 * thread of our own had to fight them for the core and measured no faster (90 against 87 ms
 * of statistics per traced ResNet-50). Where the runtime would not be torch's, the loader
 * pins the kernel to one thread (stats_threads). On 2 EPYC cores: 25 MB 17 -> 31 GB/s,
 * 100 MB from memory 13 -> 19-21 GB/s. The split depends only on the number of threads, so
 * the same tensor gives the same numbers every time.
 *
 * Partial sums run over blocks of BLOCK values (BLOCK / LANES terms per accumulator) in the
 * array's own precision and add up in double, so the error stays at the rounding of a few
 * dozen terms. NaN and Inf are not looked for here: they make the sum or a bound non-finite,
 * and the caller then counts them with torch. The histogram counts the values 0, step,
 * 2*step, ... (`count` of them) in `bins` equal bins over [min, max], the top edge included:
 * what the torch path computes from the same sample.
 *
 * Built on first use by inspector/engine/native/__init__.py with the system C compiler;
 * without a compiler the inspector uses torch's reductions.
 *
 * out: [sum, sum of squares, min, max, zeros]; hist: `bins` counts.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* The AVX-512 code needs a compiler that knows its intrinsics (GCC 8, any clang of the
 * last years); an older one builds the other two. */
#if defined(__clang__) || __GNUC__ >= 8
#define HAVE_AVX512 1
#else
#define HAVE_AVX512 0
#endif
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#define LANES 16 /* AVX2 and SSE2: two ymm (four xmm) registers of float32 per statistic */
#define WIDE_LANES 32 /* AVX-512: two zmm registers of float32 per statistic */
#define BLOCK 1024
/* AVX-512 reads ask for the bytes AHEAD further on (see above). */
#define AHEAD 16384

/* The reductions of x[0:n] into out[0..4]. Z is an integer as wide as T, so that the zero
 * counts vectorize beside the values (at most BLOCK / LANES per lane and block). */
#define REDUCE(T, Z, NAME, ATTR, LANES, FETCH)                                               \
    ATTR static void NAME(const void *values, int64_t n, double *out) {                      \
        const T *x = (const T *)values;                                                      \
        double sum[LANES], sq[LANES];                                                        \
        T lo[LANES], hi[LANES];                                                              \
        int64_t zeros = 0;                                                                   \
        for (int j = 0; j < LANES; j++) {                                                    \
            sum[j] = 0.0;                                                                    \
            sq[j] = 0.0;                                                                     \
            lo[j] = INFINITY;                                                                \
            hi[j] = -INFINITY;                                                               \
        }                                                                                    \
        int64_t full = n - n % BLOCK;                                                        \
        for (int64_t i = 0; i < full; i += BLOCK) {                                          \
            T bs[LANES], bq[LANES];                                                          \
            Z bz[LANES];                                                                     \
            for (int j = 0; j < LANES; j++) {                                                \
                bs[j] = 0;                                                                   \
                bq[j] = 0;                                                                   \
                bz[j] = 0;                                                                   \
            }                                                                                \
            const T *b = x + i;                                                              \
            for (int k = 0; k < BLOCK; k += LANES) {                                         \
                if (FETCH)                                                                   \
                    for (int j = 0; j < LANES; j += 64 / (int)sizeof(T))                     \
                        __builtin_prefetch((const char *)(b + k + j) + AHEAD);               \
                for (int j = 0; j < LANES; j++) {                                            \
                    T v = b[k + j];                                                          \
                    bs[j] += v;                                                              \
                    bq[j] += v * v;                                                          \
                    lo[j] = v < lo[j] ? v : lo[j];                                           \
                    hi[j] = v > hi[j] ? v : hi[j];                                           \
                    bz[j] += (Z)(v == 0);                                            \
                }                                                                            \
            }                                                                                \
            for (int j = 0; j < LANES; j++) {                                                \
                sum[j] += bs[j];                                                             \
                sq[j] += bq[j];                                                              \
                zeros += bz[j];                                                              \
            }                                                                                \
        }                                                                                    \
        for (int64_t i = full; i < n; i++) {                                                 \
            T v = x[i];                                                                      \
            sum[0] += v;                                                                     \
            sq[0] += (double)v * v;                                                          \
            lo[0] = v < lo[0] ? v : lo[0];                                                   \
            hi[0] = v > hi[0] ? v : hi[0];                                                   \
            zeros += (v == 0);                                                               \
        }                                                                                    \
        double s = 0.0, q = 0.0;                                                             \
        T mn = INFINITY, mx = -INFINITY;                                                     \
        for (int j = 0; j < LANES; j++) {                                                    \
            s += sum[j];                                                                     \
            q += sq[j];                                                                      \
            mn = lo[j] < mn ? lo[j] : mn;                                                    \
            mx = hi[j] > mx ? hi[j] : mx;                                                    \
        }                                                                                    \
        out[0] = s;                                                                          \
        out[1] = q;                                                                          \
        out[2] = (double)mn;                                                                 \
        out[3] = (double)mx;                                                                 \
        out[4] = (double)zeros;                                                              \
    }

REDUCE(float, int32_t, reduce_f32_base, , LANES, 0)
REDUCE(double, int64_t, reduce_f64_base, , LANES, 0)

#if defined(__GNUC__) && defined(__x86_64__)
#define WIDE __attribute__((target("avx2,fma")))
REDUCE(float, int32_t, reduce_f32_avx2, WIDE, LANES, 0)
REDUCE(double, int64_t, reduce_f64_avx2, WIDE, LANES, 0)
#if HAVE_AVX512
#define WIDER __attribute__((target("avx512f,avx2,fma")))

/* float32 in AVX-512, written with intrinsics: what the macro makes of the zero count is a
 * masked move and a subtraction per vector where one masked addition does, and in cache (a
 * tensor the op has just written) the vector ports are the limit: 0.26 MB 45 -> 56 GB/s,
 * 1 MB 47 -> 54; from memory the same. The same sums as REDUCE's (float within a block,
 * double across blocks, the tail in lane 0), so the numbers agree to rounding. */
WIDER static inline __m512d widen_low(__m512 v) {
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}

WIDER static inline __m512d widen_high(__m512 v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

WIDER static void reduce_f32_avx512(const void *values, int64_t n, double *out) {
    const float *x = (const float *)values;
    const __m512 none = _mm512_setzero_ps();
    const __m512i one = _mm512_set1_epi32(1);
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, q0 = s0, q1 = s0;
    __m512 lo0 = _mm512_set1_ps(INFINITY), lo1 = lo0;
    __m512 hi0 = _mm512_set1_ps(-INFINITY), hi1 = hi0;
    int64_t zeros = 0;
    int64_t full = n - n % BLOCK;
    for (int64_t i = 0; i < full; i += BLOCK) {
        __m512 a0 = none, a1 = none, b0 = none, b1 = none;
        __m512i z0 = _mm512_setzero_si512(), z1 = z0; /* at most BLOCK / 32 per lane */
        const float *b = x + i;
        for (int k = 0; k < BLOCK; k += 32) {
            __builtin_prefetch((const char *)(b + k) + AHEAD);
            __builtin_prefetch((const char *)(b + k + 16) + AHEAD);
            __m512 v0 = _mm512_loadu_ps(b + k), v1 = _mm512_loadu_ps(b + k + 16);
            a0 = _mm512_add_ps(a0, v0);
            a1 = _mm512_add_ps(a1, v1);
            b0 = _mm512_fmadd_ps(v0, v0, b0);
            b1 = _mm512_fmadd_ps(v1, v1, b1);
            lo0 = _mm512_min_ps(v0, lo0); /* v < lo ? v : lo, as REDUCE */
            lo1 = _mm512_min_ps(v1, lo1);
            hi0 = _mm512_max_ps(v0, hi0);
            hi1 = _mm512_max_ps(v1, hi1);
            z0 = _mm512_mask_add_epi32(z0, _mm512_cmp_ps_mask(v0, none, _CMP_EQ_OQ), z0, one);
            z1 = _mm512_mask_add_epi32(z1, _mm512_cmp_ps_mask(v1, none, _CMP_EQ_OQ), z1, one);
        }
        s0 = _mm512_add_pd(s0, _mm512_add_pd(widen_low(a0), widen_low(a1)));
        s1 = _mm512_add_pd(s1, _mm512_add_pd(widen_high(a0), widen_high(a1)));
        q0 = _mm512_add_pd(q0, _mm512_add_pd(widen_low(b0), widen_low(b1)));
        q1 = _mm512_add_pd(q1, _mm512_add_pd(widen_high(b0), widen_high(b1)));
        zeros += _mm512_reduce_add_epi32(_mm512_add_epi32(z0, z1));
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    double q = _mm512_reduce_add_pd(_mm512_add_pd(q0, q1));
    float mn = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));
    float mx = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
    for (int64_t i = full; i < n; i++) {
        float v = x[i];
        s += v;
        q += (double)v * v;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        zeros += (v == 0);
    }
    out[0] = s;
    out[1] = q;
    out[2] = (double)mn;
    out[3] = (double)mx;
    out[4] = (double)zeros;
}
REDUCE(double, int64_t, reduce_f64_avx512, WIDER, WIDE_LANES, 1)
#else
#define reduce_f32_avx512 reduce_f32_avx2
#define reduce_f64_avx512 reduce_f64_avx2
#endif

static int wide = -1; /* -1: not asked yet; 0 baseline, 1 AVX2, 2 AVX-512 */
static int widest = HAVE_AVX512 ? 2 : 1; /* the widest code allowed to run */

static int use_wide(void) {
    if (wide < 0) {
        __builtin_cpu_init();
        wide = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        if (wide && widest >= 2 && __builtin_cpu_supports("avx512f")) wide = 2;
        if (wide > widest) wide = widest;
    }
    return wide;
}

/* Which code runs: the baseline (0), AVX2 (1) or AVX-512 (2). `set` 0, 1 or 2 allows at most
 * that code (tests compare them), 3 goes back to the widest the processor runs, -1 only asks. */
int stats_wide(int set) {
    if (set >= 0) {
        widest = set > 2 ? 2 : set;
        if (!HAVE_AVX512 && widest > 1) widest = 1;
        wide = -1;
    }
    return use_wide();
}
#define PICK(base, avx2, avx512) (use_wide() == 2 ? (avx512) : use_wide() ? (avx2) : (base))
#else
int stats_wide(int set) {
    (void)set;
    return 0;
}
#define PICK(base, avx2, avx512) (base)
#endif

#define PARALLEL_MIN (1 << 18) /* values: below that (1 MB of float32) one thread is faster */
#define MAX_THREADS 64

static int thread_limit = 0; /* 0: as many as the OpenMP runtime gives this thread */

/* The most threads one array is read with: `set` > 0 limits it to `set`, 0 lifts the limit,
 * -1 only asks. 1 when the library was built without OpenMP. */
int stats_threads(int set) {
    if (set >= 0) thread_limit = set;
#ifdef _OPENMP
    int most = omp_get_max_threads();
    if (most > MAX_THREADS) most = MAX_THREADS;
    return thread_limit > 0 && thread_limit < most ? thread_limit : most;
#else
    return 1;
#endif
}

#ifdef _OPENMP
/* Adds the reductions of a later part, `b`, to those of the parts before it, `out`. */
static void merge(double *out, const double *b) {
    out[0] += b[0];
    out[1] += b[1];
    out[2] = b[2] < out[2] ? b[2] : out[2];
    out[3] = b[3] > out[3] ? b[3] : out[3];
    out[4] += b[4];
}
#endif

typedef void (*reducer)(const void *, int64_t, double *);

/* reduce(x[0:n]) into out, in parts on several threads when n is large enough; `size` is the
 * size of one value. */
static void split(reducer reduce, const char *x, size_t size, int64_t n, double *out) {
    int64_t blocks = n / BLOCK;
    int threads = n >= PARALLEL_MIN ? stats_threads(-1) : 1;
    if (threads > blocks) threads = (int)blocks;
    if (threads <= 1) {
        reduce(x, n, out);
        return;
    }
#ifdef _OPENMP
    double part[MAX_THREADS][5];
    int used = threads;
#pragma omp parallel num_threads(threads)
    {
        /* The team may be smaller than asked (inside another parallel region, a limit of the
         * runtime): every part is cut from its real size. */
#pragma omp single
        used = omp_get_num_threads();
        int t = omp_get_thread_num();
        int64_t first = blocks * t / used * BLOCK;
        int64_t end = t == used - 1 ? n : blocks * (t + 1) / used * BLOCK;
        reduce(x + first * size, end - first, part[t]);
    }
    for (int i = 0; i < 5; i++) out[i] = part[0][i];
    for (int t = 1; t < used; t++) merge(out, part[t]);
#else
    (void)size;
#endif
}

/* The histogram of x[0], x[step], ... (`count` values) over [out[2], out[3]]. Four partial
 * histograms take turns: with one, values that fall into the same bin wait on each other's
 * increment (a store, then a load of it), about 5 cycles each; 4096 values took 7 us. */
#define HIST_PARTS 4
#define HIST_MAX_BINS 256
#define HISTOGRAM(T, NAME)                                                                   \
    static void NAME(const T *x, int64_t step, int64_t count, int bins, const double *out,   \
                     int64_t *hist) {                                                        \
        for (int b = 0; b < bins; b++) hist[b] = 0;                                          \
        if (!(isfinite(out[2]) && isfinite(out[3]))) return;                                 \
        if (out[3] <= out[2]) {                                                              \
            hist[0] = count;                                                                 \
            return;                                                                          \
        }                                                                                    \
        double lo = out[2], scale = bins / (out[3] - out[2]);                                \
        int64_t k = 0;                                                                       \
        if (bins <= HIST_MAX_BINS) {                                                         \
            int64_t part[HIST_PARTS][HIST_MAX_BINS];                                         \
            for (int j = 0; j < HIST_PARTS; j++)                                             \
                for (int b = 0; b < bins; b++) part[j][b] = 0;                               \
            for (; k + HIST_PARTS <= count; k += HIST_PARTS)                                 \
                for (int j = 0; j < HIST_PARTS; j++) {                                       \
                    int64_t b = (int64_t)(((double)x[(k + j) * step] - lo) * scale);         \
                    part[j][b < bins ? b : bins - 1]++;                                      \
                }                                                                            \
            for (int j = 0; j < HIST_PARTS; j++)                                             \
                for (int b = 0; b < bins; b++) hist[b] += part[j][b];                        \
        }                                                                                    \
        for (; k < count; k++) {                                                             \
            int64_t b = (int64_t)(((double)x[k * step] - lo) * scale);                       \
            hist[b < bins ? b : bins - 1]++;                                                 \
        }                                                                                    \
    }

HISTOGRAM(float, histogram_f32)
HISTOGRAM(double, histogram_f64)

void stats_f32(const float *x, int64_t n, int64_t step, int64_t count, int bins, double *out,
               int64_t *hist) {
    split(PICK(reduce_f32_base, reduce_f32_avx2, reduce_f32_avx512), (const char *)x, sizeof *x, n, out);
    histogram_f32(x, step, count, bins, out, hist);
}

void stats_f64(const double *x, int64_t n, int64_t step, int64_t count, int bins, double *out,
               int64_t *hist) {
    split(PICK(reduce_f64_base, reduce_f64_avx2, reduce_f64_avx512), (const char *)x, sizeof *x, n, out);
    histogram_f64(x, step, count, bins, out, hist);
}

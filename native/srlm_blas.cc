// srlm_blas: float32 kernels for the tfjs "blas" backend.
//
// Every function works in place on caller-owned Float32Arrays (the tfjs cpu
// backend's own buffers), so no data is copied across the JS/C++ boundary.
// Shapes arrive already simplified by model/backends/blas.ts (dims merged,
// broadcast strides computed), which keeps the loops here short and flat.

#include <napi.h>

#include <cblas.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kMaxRank = 8;

// Below this many elements a second thread costs more (spawn + join, ~20 us) than it saves.
constexpr int64_t kParallelMin = 1 << 18;

// Below this many FLOPs a matmul runs on one thread (about 100 us of work on one core).
constexpr double kGemmParallelFlops = 4.0 * 1024 * 1024;

int Workers() {
  static const int n = std::max(1u, std::min(std::thread::hardware_concurrency(), 8u));
  return n;
}

// Calls fn out of line. Inlined into the large N-API functions, the loop bodies lost their
// vectorisation (GCC could no longer tell the output from the closure and the Napi objects
// around it), so the single-threaded path, the common one at small shapes, ran scalar code
// 5-8x slower than the same lambda on a worker thread.
template <typename Fn>
__attribute__((noinline)) void RunRange(const Fn& fn, int64_t from, int64_t to) {
  fn(from, to);
}

// Runs fn(begin, end) over [0, n) split into contiguous chunks, one per core, when `work`
// (elements touched) is big enough to pay for the threads; otherwise on this thread.
template <typename Fn>
void ParallelFor(int64_t n, int64_t work, Fn fn) {
  const int64_t workers = std::min<int64_t>(Workers(), n);
  if (workers < 2 || work < kParallelMin) {
    RunRange(fn, int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (int64_t w = 1; w < workers; w++) pool.emplace_back(fn, n * w / workers, n * (w + 1) / workers);
  RunRange(fn, int64_t{0}, n / workers);
  for (auto& t : pool) t.join();
}

// exp(x) for float32 without libm's scalar call, so loops over it vectorise: Cody-Waite
// reduction x = n ln2 + r, a degree-6 polynomial for e^r on |r| <= ln2/2 (~1 ulp), and 2^n
// assembled in the exponent bits. Written branch-free (selects) for the same reason, and
// always inlined: a loop that calls it out of line stays scalar (GCC's inliner gave up on it
// inside the larger kernels, which made exp and sigmoid 5-8x slower than they should be).
__attribute__((always_inline)) inline float FastExp(float x) {
  const float xc = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union {
    int32_t i;
    float f;
  } scale;
  scale.i = (static_cast<int32_t>(n) + 127) << 23;
  float y = p * scale.f;
  y = x < -87.0f ? 0.0f : y;
  y = x > 88.0f ? INFINITY : y;
  return x != x ? x : y;
}

// softmax of one row of C values into o (o may be x itself). Eight running lanes instead of one
// accumulator, so the max and the sum vectorise.
__attribute__((always_inline)) inline void SoftmaxRow(const float* x, float* o, int64_t C) {
  float lanes[8];
  std::fill(lanes, lanes + 8, -INFINITY);
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    for (int j = 0; j < 8; j++) lanes[j] = x[c + j] > lanes[j] ? x[c + j] : lanes[j];
  }
  float mx = *std::max_element(lanes, lanes + 8);
  for (; c < C; c++) mx = x[c] > mx ? x[c] : mx;
  for (int64_t k = 0; k < C; k++) o[k] = FastExp(x[k] - mx);
  std::fill(lanes, lanes + 8, 0.0f);
  for (c = 0; c + 8 <= C; c += 8) {
    for (int j = 0; j < 8; j++) lanes[j] += o[c + j];
  }
  float sum = 0.0f;
  for (int j = 0; j < 8; j++) sum += lanes[j];
  for (; c < C; c++) sum += o[c];
  const float inv = 1.0f / sum;
  for (int64_t k = 0; k < C; k++) o[k] *= inv;
}

bool Fail(const Napi::Env& env, const std::string& msg) {
  Napi::TypeError::New(env, "srlm_blas: " + msg).ThrowAsJavaScriptException();
  return false;
}

// Reads argument `i` as a Float32Array; reports which argument was wrong.
bool F32(const Napi::CallbackInfo& info, size_t i, const char* fn, Napi::Float32Array* out) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    return Fail(info.Env(), std::string(fn) + ": argument " + std::to_string(i) + " must be a Float32Array");
  }
  *out = info[i].As<Napi::Float32Array>();
  return true;
}

bool I32(const Napi::CallbackInfo& info, size_t i, const char* fn, Napi::Int32Array* out) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    return Fail(info.Env(), std::string(fn) + ": argument " + std::to_string(i) + " must be an Int32Array");
  }
  *out = info[i].As<Napi::Int32Array>();
  return true;
}

bool Num(const Napi::CallbackInfo& info, size_t i, const char* fn, double* out) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    return Fail(info.Env(), std::string(fn) + ": argument " + std::to_string(i) + " must be a number");
  }
  *out = info[i].As<Napi::Number>().DoubleValue();
  return true;
}

// gemm(a, b, out, aOffsets, bOffsets, m, n, k, transA, transB, accumulate)
// out[i] (m x n, row-major, batch i) = op(a at aOffsets[i]) * op(b at bOffsets[i]).
// Offsets let the caller express any batch broadcasting without copies.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gemm";
  Napi::Float32Array a, b, out;
  Napi::Int32Array aOff, bOff;
  double m, n, k, ta, tb;
  if (!F32(info, 0, fn, &a) || !F32(info, 1, fn, &b) || !F32(info, 2, fn, &out) || !I32(info, 3, fn, &aOff) ||
      !I32(info, 4, fn, &bOff) || !Num(info, 5, fn, &m) || !Num(info, 6, fn, &n) || !Num(info, 7, fn, &k) ||
      !Num(info, 8, fn, &ta) || !Num(info, 9, fn, &tb)) {
    return env.Undefined();
  }
  const size_t batch = aOff.ElementLength();
  const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  if (bOff.ElementLength() != batch) {
    Fail(env, "gemm: aOffsets and bOffsets differ in length");
    return env.Undefined();
  }
  const size_t mk = static_cast<size_t>(M) * K, kn = static_cast<size_t>(K) * N, mn = static_cast<size_t>(M) * N;
  if (out.ElementLength() < batch * mn) {
    Fail(env, "gemm: output holds " + std::to_string(out.ElementLength()) + " floats, needs " +
                  std::to_string(batch * mn));
    return env.Undefined();
  }
  const int32_t* ao = aOff.Data();
  const int32_t* bo = bOff.Data();
  for (size_t i = 0; i < batch; i++) {
    if (ao[i] < 0 || static_cast<size_t>(ao[i]) + mk > a.ElementLength() || bo[i] < 0 ||
        static_cast<size_t>(bo[i]) + kn > b.ElementLength()) {
      Fail(env, "gemm: batch " + std::to_string(i) + " reads past the end of an input");
      return env.Undefined();
    }
  }
  const CBLAS_TRANSPOSE tA = ta != 0 ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tB = tb != 0 ? CblasTrans : CblasNoTrans;
  const int lda = ta != 0 ? M : K;
  const int ldb = tb != 0 ? K : N;
  float* o = out.Data();
  if (K == 0) {
    std::fill(o, o + batch * mn, 0.0f);
    return env.Undefined();
  }
  const float* pa = a.Data();
  const float* pb = b.Data();
  auto run = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
      cblas_sgemm(CblasRowMajor, tA, tB, M, N, K, 1.0f, pa + ao[i], lda, pb + bo[i], ldb, 0.0f, o + i * mn, N);
    }
  };
  // Many small products (attention heads) scale badly inside OpenBLAS, which splits each one
  // across its threads and synchronises per call; splitting the batch across threads that each
  // run single-threaded sgemm keeps every core busy with no per-call handshakes.
  // Tiny products (one generated token per row) finish before a second thread would wake up,
  // so they run single-threaded; OpenBLAS's own cut-off is far higher than a decode step needs.
  const int threads = openblas_get_num_threads();
  const double flopsEach = 2.0 * M * N * K;
  const double flops = flopsEach * static_cast<double>(batch);
  if (threads > 1 && flops < kGemmParallelFlops) {
    openblas_set_num_threads(1);
    run(0, batch);
    openblas_set_num_threads(threads);
  } else if (threads > 1 && batch >= 2 && flopsEach < 64.0 * 1024 * 1024) {
    openblas_set_num_threads(1);
    ParallelFor(static_cast<int64_t>(batch), kParallelMin, [&](int64_t from, int64_t to) { run(from, to); });
    openblas_set_num_threads(threads);
  } else {
    run(0, batch);
  }
  return env.Undefined();
}

// biasAct(x, bias | null, act, alpha): x[r, c] = act(x[r, c] + bias[c]) in place.
// act: 0 linear, 1 relu, 2 relu6, 3 sigmoid, 4 leakyrelu(alpha), 5 elu.
Napi::Value BiasAct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "biasAct";
  Napi::Float32Array x, bias;
  double act, alpha;
  if (!F32(info, 0, fn, &x)) return env.Undefined();
  const bool hasBias = info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined();
  if (hasBias && !F32(info, 1, fn, &bias)) return env.Undefined();
  if (!Num(info, 2, fn, &act) || !Num(info, 3, fn, &alpha)) return env.Undefined();
  float* p = x.Data();
  const size_t len = x.ElementLength();
  if (hasBias) {
    const size_t cols = bias.ElementLength();
    if (cols == 0 || len % cols != 0) {
      Fail(env, "biasAct: bias length " + std::to_string(cols) + " does not divide " + std::to_string(len));
      return env.Undefined();
    }
    const float* bp = bias.Data();
    for (size_t r = 0; r < len; r += cols) {
      for (size_t c = 0; c < cols; c++) p[r + c] += bp[c];
    }
  }
  const float al = static_cast<float>(alpha);
  const int code = static_cast<int>(act);
  if (code < 0 || code > 5) {
    Fail(env, "biasAct: unknown activation code " + std::to_string(code));
    return env.Undefined();
  }
  ParallelFor(static_cast<int64_t>(len), static_cast<int64_t>(len), [=](int64_t from, int64_t to) {
    switch (code) {
      case 1: for (int64_t i = from; i < to; i++) p[i] = p[i] > 0.0f ? p[i] : 0.0f; break;
      case 2: for (int64_t i = from; i < to; i++) p[i] = std::min(6.0f, std::max(0.0f, p[i])); break;
      case 3: for (int64_t i = from; i < to; i++) p[i] = 1.0f / (1.0f + FastExp(-p[i])); break;
      case 4: for (int64_t i = from; i < to; i++) p[i] = p[i] < 0.0f ? al * p[i] : p[i]; break;
      case 5: for (int64_t i = from; i < to; i++) p[i] = p[i] < 0.0f ? std::expm1(p[i]) : p[i]; break;
      default: break;
    }
  });
  return env.Undefined();
}

// --- elementwise binary with broadcasting ----------------------------------

struct Add { static float f(float a, float b) { return a + b; } };
struct Sub { static float f(float a, float b) { return a - b; } };
struct Mul { static float f(float a, float b) { return a * b; } };
struct Div { static float f(float a, float b) { return a / b; } };
struct Max { static float f(float a, float b) { return (a != a || b != b) ? NAN : (a > b ? a : b); } };
struct Min { static float f(float a, float b) { return (a != a || b != b) ? NAN : (a < b ? a : b); } };
struct SqDiff { static float f(float a, float b) { const float d = a - b; return d * d; } };
struct Pow { static float f(float a, float b) { return std::pow(a, b); } };

// Walks the output in row-major order; the innermost dim gets the tight loop,
// specialised for the strides that occur (contiguous, or one side broadcast).
// Multi-index of row `row` over the outer dims (all but the last) and the matching offsets.
void SeekRow(int64_t row, int rank, const int32_t* shape, const int32_t* s1, const int32_t* s2, int32_t* idx,
             int64_t* o1, int64_t* o2) {
  *o1 = 0;
  *o2 = 0;
  for (int d = rank - 2; d >= 0; d--) {
    idx[d] = static_cast<int32_t>(row % shape[d]);
    row /= shape[d];
    *o1 += static_cast<int64_t>(idx[d]) * s1[d];
    *o2 += static_cast<int64_t>(idx[d]) * s2[d];
  }
}

// Advances the odometer over the outer dims by one row.
inline void NextRow(int rank, const int32_t* shape, const int32_t* s1, const int32_t* s2, int32_t* idx, int64_t* o1,
                    int64_t* o2) {
  for (int d = rank - 2; d >= 0; d--) {
    idx[d]++;
    *o1 += s1[d];
    *o2 += s2[d];
    if (idx[d] < shape[d]) return;
    *o1 -= static_cast<int64_t>(s1[d]) * shape[d];
    *o2 -= static_cast<int64_t>(s2[d]) * shape[d];
    idx[d] = 0;
  }
}

// Rows [from, to) of the output in row-major order; the innermost dim gets the tight loop,
// specialised for the strides that occur (contiguous, or one side broadcast).
template <typename Op>
void BinaryRows(const float* a, const float* b, float* o, int rank, const int32_t* shape, const int32_t* as,
                const int32_t* bs, int64_t from, int64_t to) {
  const int inner = shape[rank - 1];
  const int sa = as[rank - 1], sb = bs[rank - 1];
  int32_t idx[kMaxRank] = {0};
  int64_t ao = 0, bo = 0;
  SeekRow(from, rank, shape, as, bs, idx, &ao, &bo);
  for (int64_t r = from; r < to; r++) {
    const float* pa = a + ao;
    const float* pb = b + bo;
    float* po = o + r * inner;
    if (sa == 1 && sb == 1) {
      for (int i = 0; i < inner; i++) po[i] = Op::f(pa[i], pb[i]);
    } else if (sa == 1 && sb == 0) {
      const float v = pb[0];
      for (int i = 0; i < inner; i++) po[i] = Op::f(pa[i], v);
    } else if (sa == 0 && sb == 1) {
      const float v = pa[0];
      for (int i = 0; i < inner; i++) po[i] = Op::f(v, pb[i]);
    } else {
      for (int i = 0; i < inner; i++) po[i] = Op::f(pa[i * sa], pb[i * sb]);
    }
    NextRow(rank, shape, as, bs, idx, &ao, &bo);
  }
}

template <typename Op>
void BinaryLoop(const float* a, const float* b, float* o, int rank, const int32_t* shape, const int32_t* as,
                const int32_t* bs) {
  int64_t outer = 1;
  for (int d = 0; d < rank - 1; d++) outer *= shape[d];
  ParallelFor(outer, outer * shape[rank - 1],
              [=](int64_t from, int64_t to) { BinaryRows<Op>(a, b, o, rank, shape, as, bs, from, to); });
}

// binary(op, a, b, out, shape, aStrides, bStrides)
// op: 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min, 6 squaredDifference, 7 pow.
Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "binary";
  double op;
  Napi::Float32Array a, b, out;
  Napi::Int32Array shape, as, bs;
  if (!Num(info, 0, fn, &op) || !F32(info, 1, fn, &a) || !F32(info, 2, fn, &b) || !F32(info, 3, fn, &out) ||
      !I32(info, 4, fn, &shape) || !I32(info, 5, fn, &as) || !I32(info, 6, fn, &bs)) {
    return env.Undefined();
  }
  const int rank = static_cast<int>(shape.ElementLength());
  if (rank < 1 || rank > kMaxRank || as.ElementLength() != shape.ElementLength() ||
      bs.ElementLength() != shape.ElementLength()) {
    Fail(env, "binary: rank must be 1.." + std::to_string(kMaxRank) + " with one stride per dim");
    return env.Undefined();
  }
  int64_t size = 1, aMax = 0, bMax = 0;
  for (int d = 0; d < rank; d++) {
    size *= shape[d];
    aMax += static_cast<int64_t>(as[d]) * (shape[d] - 1);
    bMax += static_cast<int64_t>(bs[d]) * (shape[d] - 1);
  }
  if (size == 0) return env.Undefined();
  if (static_cast<int64_t>(out.ElementLength()) < size || aMax >= static_cast<int64_t>(a.ElementLength()) ||
      bMax >= static_cast<int64_t>(b.ElementLength())) {
    Fail(env, "binary: shape and strides reach past the buffers");
    return env.Undefined();
  }
  const float* pa = a.Data();
  const float* pb = b.Data();
  float* po = out.Data();
  const int32_t* s = shape.Data();
  switch (static_cast<int>(op)) {
    case 0: BinaryLoop<Add>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    case 1: BinaryLoop<Sub>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    case 2: BinaryLoop<Mul>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    case 3: BinaryLoop<Div>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    case 4: BinaryLoop<Max>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    case 5: BinaryLoop<Min>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    case 6: BinaryLoop<SqDiff>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    case 7: BinaryLoop<Pow>(pa, pb, po, rank, s, as.Data(), bs.Data()); break;
    default: Fail(env, "binary: unknown op code " + std::to_string(static_cast<int>(op)));
  }
  return env.Undefined();
}

// o[i] = f(p[i]) over [from, to). A plain function over restrict pointers: written inline in
// the ParallelFor lambdas, some of these loops were left scalar (the pointers live in the
// closure, and GCC would not prove the stores leave them alone).
template <typename F>
inline void Map(const float* __restrict p, float* __restrict o, int64_t from, int64_t to, F f) {
  for (int64_t i = from; i < to; i++) o[i] = f(p[i]);
}

// unary(op, x, out)
// op: 0 exp, 1 log, 2 neg, 3 sqrt, 4 rsqrt, 5 square, 6 relu, 7 sigmoid, 8 tanh,
//     9 abs, 10 reciprocal, 11 step (x > 0 ? 1 : 0, NaN kept).
Napi::Value Unary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "unary";
  double op;
  Napi::Float32Array x, out;
  if (!Num(info, 0, fn, &op) || !F32(info, 1, fn, &x) || !F32(info, 2, fn, &out)) return env.Undefined();
  const size_t n = x.ElementLength();
  if (out.ElementLength() < n) {
    Fail(env, "unary: output is shorter than input");
    return env.Undefined();
  }
  const float* p = x.Data();
  float* o = out.Data();
  const int code = static_cast<int>(op);
  if (code < 0 || code > 11) {
    Fail(env, "unary: unknown op code " + std::to_string(code));
    return env.Undefined();
  }
  ParallelFor(static_cast<int64_t>(n), static_cast<int64_t>(n), [=](int64_t from, int64_t to) {
    switch (code) {
      case 0: Map(p, o, from, to, [](float v) { return FastExp(v); }); break;
      case 1: Map(p, o, from, to, [](float v) { return std::log(v); }); break;
      case 2: Map(p, o, from, to, [](float v) { return -v; }); break;
      case 3: Map(p, o, from, to, [](float v) { return std::sqrt(v); }); break;
      case 4: Map(p, o, from, to, [](float v) { return 1.0f / std::sqrt(v); }); break;
      case 5: Map(p, o, from, to, [](float v) { return v * v; }); break;
      case 6: Map(p, o, from, to, [](float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); }); break;
      case 7: Map(p, o, from, to, [](float v) { return 1.0f / (1.0f + FastExp(-v)); }); break;
      case 8: Map(p, o, from, to, [](float v) { return std::tanh(v); }); break;
      case 9: Map(p, o, from, to, [](float v) { return std::fabs(v); }); break;
      case 10: Map(p, o, from, to, [](float v) { return 1.0f / v; }); break;
      case 11: Map(p, o, from, to, [](float v) { return v != v ? NAN : (v > 0.0f ? 1.0f : 0.0f); }); break;
      default: break;
    }
  });
  return env.Undefined();
}

// softmax(x, out, rows, cols): numerically stable softmax over each row.
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "softmax";
  Napi::Float32Array x, out;
  double rows, cols;
  if (!F32(info, 0, fn, &x) || !F32(info, 1, fn, &out) || !Num(info, 2, fn, &rows) || !Num(info, 3, fn, &cols)) {
    return env.Undefined();
  }
  const size_t R = static_cast<size_t>(rows), C = static_cast<size_t>(cols);
  if (x.ElementLength() < R * C || out.ElementLength() < R * C) {
    Fail(env, "softmax: rows x cols exceeds a buffer");
    return env.Undefined();
  }
  const float* px = x.Data();
  float* po = out.Data();
  ParallelFor(static_cast<int64_t>(R), static_cast<int64_t>(R * C), [=](int64_t from, int64_t to) {
    for (int64_t r = from; r < to; r++) {
      SoftmaxRow(px + r * C, po + r * C, static_cast<int64_t>(C));
    }
  });
  return env.Undefined();
}

// reduce(op, x, out, outer, mid, inner): x viewed as [outer, mid, inner] reduced over mid.
// op: 0 sum, 1 max, 2 min, 3 mean, 4 prod.
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "reduce";
  double op, outer, mid, inner;
  Napi::Float32Array x, out;
  if (!Num(info, 0, fn, &op) || !F32(info, 1, fn, &x) || !F32(info, 2, fn, &out) || !Num(info, 3, fn, &outer) ||
      !Num(info, 4, fn, &mid) || !Num(info, 5, fn, &inner)) {
    return env.Undefined();
  }
  const size_t O = static_cast<size_t>(outer), M = static_cast<size_t>(mid), I = static_cast<size_t>(inner);
  const int code = static_cast<int>(op);
  if (code < 0 || code > 4) {
    Fail(env, "reduce: unknown op code " + std::to_string(code));
    return env.Undefined();
  }
  if (x.ElementLength() < O * M * I || out.ElementLength() < O * I) {
    Fail(env, "reduce: outer x mid x inner exceeds a buffer");
    return env.Undefined();
  }
  const float* p = x.Data();
  float* o = out.Data();
  // Reduces rows [a0, a1) of the outer dim, columns [i0, i1) of the inner dim.
  auto block = [=](size_t a0, size_t a1, size_t i0, size_t i1) {
    for (size_t a = a0; a < a1; a++) {
      float* row = o + a * I;
      const float* src = p + a * M * I;
      if (I == 1) {
        // a contiguous run: sums accumulate in double so long rows stay accurate
        if (code == 0 || code == 3) {
          double sum = 0.0;
          for (size_t m = 0; m < M; m++) sum += src[m];
          row[0] = static_cast<float>(code == 3 ? sum / static_cast<double>(M) : sum);
        } else {
          float acc = M > 0 ? src[0] : (code == 4 ? 1.0f : NAN);
          for (size_t m = 1; m < M; m++) {
            const float v = src[m];
            if (code == 1) acc = (v > acc || v != v) ? v : acc;
            else if (code == 2) acc = (v < acc || v != v) ? v : acc;
            else acc *= v;
          }
          row[0] = acc;
        }
        continue;
      }
      if (M == 0) {
        std::fill(row + i0, row + i1, code == 4 ? 1.0f : 0.0f);
        continue;
      }
      std::copy(src + i0, src + i1, row + i0);
      for (size_t m = 1; m < M; m++) {
        const float* sm = src + m * I;
        switch (code) {
          case 0:
          case 3: for (size_t i = i0; i < i1; i++) row[i] += sm[i]; break;
          case 1: for (size_t i = i0; i < i1; i++) row[i] = (sm[i] > row[i] || sm[i] != sm[i]) ? sm[i] : row[i]; break;
          case 2: for (size_t i = i0; i < i1; i++) row[i] = (sm[i] < row[i] || sm[i] != sm[i]) ? sm[i] : row[i]; break;
          case 4: for (size_t i = i0; i < i1; i++) row[i] *= sm[i]; break;
        }
      }
      if (code == 3) {
        const float inv = 1.0f / static_cast<float>(M);
        for (size_t i = i0; i < i1; i++) row[i] *= inv;
      }
    }
  };
  const int64_t work = static_cast<int64_t>(O * M * I);
  if (O >= static_cast<size_t>(Workers()) || I == 1) {
    ParallelFor(static_cast<int64_t>(O), work, [=](int64_t a0, int64_t a1) { block(a0, a1, 0, I); });
  } else {
    // few outer rows (a bias gradient: [tokens, d] -> [d]): split the columns instead
    for (size_t a = 0; a < O; a++) {
      ParallelFor(static_cast<int64_t>(I), work / static_cast<int64_t>(O),
                  [=](int64_t i0, int64_t i1) { block(a, a + 1, i0, i1); });
    }
  }
  return env.Undefined();
}

// strided(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape)
// dst[dstOffset + idx . dstStrides] = src[srcOffset + idx . srcStrides] for every idx in shape.
// One copy loop serves Slice, Concat, Split and Transpose; rows that are contiguous on both
// sides go through memcpy-speed std::copy.
Napi::Value Strided(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "strided";
  Napi::Float32Array src, dst;
  Napi::Int32Array ss, ds, shape;
  double so, dof;
  if (!F32(info, 0, fn, &src) || !Num(info, 1, fn, &so) || !I32(info, 2, fn, &ss) || !F32(info, 3, fn, &dst) ||
      !Num(info, 4, fn, &dof) || !I32(info, 5, fn, &ds) || !I32(info, 6, fn, &shape)) {
    return env.Undefined();
  }
  const int rank = static_cast<int>(shape.ElementLength());
  if (rank < 1 || rank > kMaxRank || static_cast<int>(ss.ElementLength()) != rank ||
      static_cast<int>(ds.ElementLength()) != rank) {
    Fail(env, "strided: rank must be 1.." + std::to_string(kMaxRank) + " with one stride per dim on each side");
    return env.Undefined();
  }
  const int32_t* sh = shape.Data();
  const int32_t* sst = ss.Data();
  const int32_t* dst_ = ds.Data();
  int64_t size = 1, sMax = static_cast<int64_t>(so), dMax = static_cast<int64_t>(dof);
  for (int d = 0; d < rank; d++) {
    if (sh[d] < 0 || sst[d] < 0 || dst_[d] < 0) {
      Fail(env, "strided: negative shape or stride");
      return env.Undefined();
    }
    size *= sh[d];
    sMax += static_cast<int64_t>(sst[d]) * (sh[d] - 1);
    dMax += static_cast<int64_t>(dst_[d]) * (sh[d] - 1);
  }
  if (size == 0) return env.Undefined();
  if (so < 0 || dof < 0 || sMax >= static_cast<int64_t>(src.ElementLength()) ||
      dMax >= static_cast<int64_t>(dst.ElementLength())) {
    Fail(env, "strided: offsets, shape and strides reach past the buffers");
    return env.Undefined();
  }
  const float* s = src.Data();
  float* o = dst.Data();
  const int inner = sh[rank - 1];
  const int64_t si = sst[rank - 1], di = dst_[rank - 1];
  const int64_t outer = size / inner;
  const int64_t s0 = static_cast<int64_t>(so), d0 = static_cast<int64_t>(dof);
  ParallelFor(outer, size, [=](int64_t from, int64_t to) {
    int32_t idx[kMaxRank] = {0};
    int64_t sOff = 0, dOff = 0;
    SeekRow(from, rank, sh, sst, dst_, idx, &sOff, &dOff);
    sOff += s0;
    dOff += d0;
    for (int64_t r = from; r < to; r++) {
      if (si == 1 && di == 1) {
        std::copy(s + sOff, s + sOff + inner, o + dOff);
      } else {
        for (int i = 0; i < inner; i++) o[dOff + i * di] = s[sOff + i * si];
      }
      NextRow(rank, sh, sst, dst_, idx, &sOff, &dOff);
    }
  });
  return env.Undefined();
}

// gather(params, indices, out, outer, dim, inner): params viewed as [outer, dim, inner];
// out[o, j, :] = params[o, indices[j], :]. Float32 buffers carry any 4-byte dtype bit-exactly.
Napi::Value Gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gather";
  Napi::Float32Array params, out;
  Napi::Int32Array indices;
  double outer, dim, inner;
  if (!F32(info, 0, fn, &params) || !I32(info, 1, fn, &indices) || !F32(info, 2, fn, &out) ||
      !Num(info, 3, fn, &outer) || !Num(info, 4, fn, &dim) || !Num(info, 5, fn, &inner)) {
    return env.Undefined();
  }
  const size_t O = static_cast<size_t>(outer), D = static_cast<size_t>(dim), I = static_cast<size_t>(inner);
  const size_t N = indices.ElementLength();
  if (params.ElementLength() < O * D * I || out.ElementLength() < O * N * I) {
    Fail(env, "gather: outer x dim x inner exceeds a buffer");
    return env.Undefined();
  }
  const int32_t* idx = indices.Data();
  for (size_t j = 0; j < N; j++) {
    if (idx[j] < 0 || static_cast<size_t>(idx[j]) >= D) {
      Napi::Error::New(env, "GatherV2: the index value " + std::to_string(idx[j]) + " is not in [0, " +
                                std::to_string(static_cast<int64_t>(D) - 1) + "]")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  const float* p = params.Data();
  float* o = out.Data();
  for (size_t a = 0; a < O; a++) {
    for (size_t j = 0; j < N; j++) {
      const float* src = p + (a * D + idx[j]) * I;
      std::copy(src, src + I, o + (a * N + j) * I);
    }
  }
  return env.Undefined();
}

// Row reductions in four double lanes: an in-order sum is a chain of dependent adds that
// cannot be vectorised (reordering it changes the rounding), and at ~4 cycles per element
// it was the slowest part of RMSNorm and the softmax gradient at the bench shape.
inline double Dot(const float* a, const float* b, int64_t n) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; j++) acc[j] += static_cast<double>(a[i + j]) * b[i + j];
  }
  for (; i < n; i++) acc[0] += static_cast<double>(a[i]) * b[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// Σ a[i]·b[i]·c[i] in four double lanes.
inline double Dot3(const float* a, const float* b, const float* c, int64_t n) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; j++) acc[j] += static_cast<double>(a[i + j] * b[i + j]) * c[i + j];
  }
  for (; i < n; i++) acc[0] += static_cast<double>(a[i] * b[i]) * c[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// --- fused model kernels ------------------------------------------------------
//
// Each replaces a run of small tfjs ops on the training path (see model/fused.ts, which owns
// the formulas and the composite fallbacks these must match). Fewer, larger kernels matter more
// than raw speed here: at small shapes a tfjs op costs more in engine bookkeeping than in math.

__attribute__((always_inline)) inline float Sigmoid(float x) { return 1.0f / (1.0f + FastExp(-x)); }

// rmsNorm(x, w, out, rows, cols, eps): out[r, c] = x[r, c] * rsqrt(mean_c x[r]^2 + eps) * w[c].
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "rmsNorm";
  Napi::Float32Array x, w, out;
  double rows, cols, eps;
  if (!F32(info, 0, fn, &x) || !F32(info, 1, fn, &w) || !F32(info, 2, fn, &out) || !Num(info, 3, fn, &rows) ||
      !Num(info, 4, fn, &cols) || !Num(info, 5, fn, &eps)) {
    return env.Undefined();
  }
  const size_t R = static_cast<size_t>(rows), C = static_cast<size_t>(cols);
  if (x.ElementLength() < R * C || out.ElementLength() < R * C || w.ElementLength() < C) {
    Fail(env, "rmsNorm: rows x cols exceeds a buffer");
    return env.Undefined();
  }
  const float* px = x.Data();
  const float* pw = w.Data();
  float* po = out.Data();
  const float e = static_cast<float>(eps);
  ParallelFor(static_cast<int64_t>(R), static_cast<int64_t>(R * C), [=](int64_t from, int64_t to) {
    for (int64_t r = from; r < to; r++) {
      const float* xr = px + r * C;
      float* o = po + r * C;
      const double ss = Dot(xr, xr, static_cast<int64_t>(C));
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(C)) + e);
      for (size_t c = 0; c < C; c++) o[c] = xr[c] * inv * pw[c];
    }
  });
  return env.Undefined();
}

// rmsNormGrad(x, w, dy, dx, dw, rows, cols, eps): gradients of rmsNorm with r = rsqrt(mean x^2 + eps),
// g = dy * w: dx = r g - x r^3 mean(g x), dw = sum over rows of dy x r.
Napi::Value RmsNormGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "rmsNormGrad";
  Napi::Float32Array x, w, dy, dx, dw;
  double rows, cols, eps;
  if (!F32(info, 0, fn, &x) || !F32(info, 1, fn, &w) || !F32(info, 2, fn, &dy) || !F32(info, 3, fn, &dx) ||
      !F32(info, 4, fn, &dw) || !Num(info, 5, fn, &rows) || !Num(info, 6, fn, &cols) || !Num(info, 7, fn, &eps)) {
    return env.Undefined();
  }
  const size_t R = static_cast<size_t>(rows), C = static_cast<size_t>(cols);
  if (x.ElementLength() < R * C || dy.ElementLength() < R * C || dx.ElementLength() < R * C ||
      w.ElementLength() < C || dw.ElementLength() < C) {
    Fail(env, "rmsNormGrad: rows x cols exceeds a buffer");
    return env.Undefined();
  }
  const float* px = x.Data();
  const float* pw = w.Data();
  const float* pdy = dy.Data();
  float* pdx = dx.Data();
  float* pdw = dw.Data();
  const float e = static_cast<float>(eps);
  std::vector<float> inv(R);
  float* pinv = inv.data();
  const int64_t work = static_cast<int64_t>(R * C);
  ParallelFor(static_cast<int64_t>(R), work, [=](int64_t from, int64_t to) {
    for (int64_t r = from; r < to; r++) {
      const float* xr = px + r * C;
      const float* g = pdy + r * C;
      const double ss = Dot(xr, xr, static_cast<int64_t>(C));
      const double dot = Dot3(g, pw, xr, static_cast<int64_t>(C));
      const float ri = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(C)) + e);
      pinv[r] = ri;
      const float k = static_cast<float>(dot / static_cast<double>(C)) * ri * ri * ri;
      float* o = pdx + r * C;
      for (size_t c = 0; c < C; c++) o[c] = ri * g[c] * pw[c] - xr[c] * k;
    }
  });
  // columns split across threads, rows summed in order, so dw is the same on any thread count
  ParallelFor(static_cast<int64_t>(C), work, [=](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) pdw[c] = 0.0f;
    for (size_t r = 0; r < R; r++) {
      const float* xr = px + r * C;
      const float* g = pdy + r * C;
      const float ri = pinv[r];
      for (int64_t c = c0; c < c1; c++) pdw[c] += g[c] * xr[c] * ri;
    }
  });
  return env.Undefined();
}

// rope(x, cos, sin, out, B, H, T, hd, inStrides, outStrides, inverse, cosBatch)
// Rotary embedding in HF's rotate_half layout over [B, H, T, hd] (cos and sin are [cosBatch, T, hd],
// cosBatch 1 when every row shares its positions),
// reading x and writing out through (b, h, t) strides so a head transpose comes for free:
//   forward: out = x cos + [-x2, x1] sin;   inverse (the transpose, i.e. the gradient):
//   out = x cos + [x2 sin2, -x1 sin1].
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "rope";
  Napi::Float32Array x, cs, sn, out;
  Napi::Int32Array is, os;
  double b, h, t, d, inverse, cb;
  if (!F32(info, 0, fn, &x) || !F32(info, 1, fn, &cs) || !F32(info, 2, fn, &sn) || !F32(info, 3, fn, &out) ||
      !Num(info, 4, fn, &b) || !Num(info, 5, fn, &h) || !Num(info, 6, fn, &t) || !Num(info, 7, fn, &d) ||
      !I32(info, 8, fn, &is) || !I32(info, 9, fn, &os) || !Num(info, 10, fn, &inverse) || !Num(info, 11, fn, &cb)) {
    return env.Undefined();
  }
  const int64_t CB = static_cast<int64_t>(cb);
  const int64_t B = static_cast<int64_t>(b), H = static_cast<int64_t>(h), T = static_cast<int64_t>(t),
                D = static_cast<int64_t>(d);
  const size_t n = static_cast<size_t>(B * H * T * D);
  if (D % 2 != 0 || is.ElementLength() != 3 || os.ElementLength() != 3) {
    Fail(env, "rope: head dim must be even, with 3 strides per side");
    return env.Undefined();
  }
  const int64_t i0 = is[0], i1 = is[1], i2 = is[2], o0 = os[0], o1 = os[1], o2 = os[2];
  const int64_t inMax = (B - 1) * i0 + (H - 1) * i1 + (T - 1) * i2 + D;
  const int64_t outMax = (B - 1) * o0 + (H - 1) * o1 + (T - 1) * o2 + D;
  if (n == 0) return env.Undefined();
  if (x.ElementLength() < n || out.ElementLength() < n || inMax > static_cast<int64_t>(x.ElementLength()) ||
      outMax > static_cast<int64_t>(out.ElementLength()) ||
      (CB != 1 && CB != B) || cs.ElementLength() < static_cast<size_t>(CB * T * D) ||
      sn.ElementLength() < static_cast<size_t>(CB * T * D)) {
    Fail(env, "rope: shape and strides reach past the buffers");
    return env.Undefined();
  }
  const float* px = x.Data();
  const float* pc = cs.Data();
  const float* ps = sn.Data();
  float* po = out.Data();
  const bool inv = inverse != 0;
  const int64_t half = D / 2;
  ParallelFor(B * H * T, static_cast<int64_t>(n), [=](int64_t from, int64_t to) {
    for (int64_t row = from; row < to; row++) {
      const int64_t tt = row % T, hh = (row / T) % H, bb = row / (T * H);
      const float* xi = px + bb * i0 + hh * i1 + tt * i2;
      float* o = po + bb * o0 + hh * o1 + tt * o2;
      const int64_t table = ((CB == 1 ? 0 : bb) * T + tt) * D;
      const float* c = pc + table;
      const float* s = ps + table;
      if (!inv) {
        for (int64_t i = 0; i < half; i++) o[i] = xi[i] * c[i] + (-xi[i + half]) * s[i];
        for (int64_t i = half; i < D; i++) o[i] = xi[i] * c[i] + xi[i - half] * s[i];
      } else {
        for (int64_t i = 0; i < half; i++) o[i] = xi[i] * c[i] + xi[i + half] * s[i + half];
        for (int64_t i = half; i < D; i++) o[i] = xi[i] * c[i] - xi[i - half] * s[i - half];
      }
    }
  });
  return env.Undefined();
}

// swiglu(gate, up, out): out = gate * sigmoid(gate) * up.
Napi::Value SwiGlu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "swiglu";
  Napi::Float32Array g, u, out;
  if (!F32(info, 0, fn, &g) || !F32(info, 1, fn, &u) || !F32(info, 2, fn, &out)) return env.Undefined();
  const size_t n = g.ElementLength();
  if (u.ElementLength() < n || out.ElementLength() < n) {
    Fail(env, "swiglu: buffers differ in length");
    return env.Undefined();
  }
  const float* pg = g.Data();
  const float* pu = u.Data();
  float* po = out.Data();
  ParallelFor(static_cast<int64_t>(n), static_cast<int64_t>(n), [=](int64_t from, int64_t to) {
    const float* __restrict g = pg;
    const float* __restrict u = pu;
    float* __restrict o = po;
    for (int64_t i = from; i < to; i++) o[i] = g[i] * Sigmoid(g[i]) * u[i];
  });
  return env.Undefined();
}

// swigluGrad(gate, up, dy, dGate, dUp): with s = sigmoid(gate),
// dUp = dy gate s and dGate = dy up s (1 + gate (1 - s)).
Napi::Value SwiGluGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "swigluGrad";
  Napi::Float32Array g, u, dy, dg, du;
  if (!F32(info, 0, fn, &g) || !F32(info, 1, fn, &u) || !F32(info, 2, fn, &dy) || !F32(info, 3, fn, &dg) ||
      !F32(info, 4, fn, &du)) {
    return env.Undefined();
  }
  const size_t n = g.ElementLength();
  if (u.ElementLength() < n || dy.ElementLength() < n || dg.ElementLength() < n || du.ElementLength() < n) {
    Fail(env, "swigluGrad: buffers differ in length");
    return env.Undefined();
  }
  const float* pg = g.Data();
  const float* pu = u.Data();
  const float* pdy = dy.Data();
  float* pdg = dg.Data();
  float* pdu = du.Data();
  ParallelFor(static_cast<int64_t>(n), static_cast<int64_t>(n), [=](int64_t from, int64_t to) {
    const float* __restrict g = pg;
    const float* __restrict u = pu;
    const float* __restrict d = pdy;
    float* __restrict dg = pdg;
    float* __restrict du = pdu;
    for (int64_t i = from; i < to; i++) {
      const float s = Sigmoid(g[i]);
      du[i] = d[i] * g[i] * s;
      dg[i] = d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
  });
  return env.Undefined();
}

// attnSoftmax(scores, mask | null, out, B, H, T, Tk, scale, maskBatch): softmax over each row of
// scores [B, H, T, Tk] * scale + mask [maskBatch, 1, T, Tk] (shared by every head, and by every
// row too when maskBatch is 1).
Napi::Value AttnSoftmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "attnSoftmax";
  Napi::Float32Array x, mask, out;
  double b, h, t, tk, scale, mb;
  if (!F32(info, 0, fn, &x)) return env.Undefined();
  const bool hasMask = info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined();
  if (hasMask && !F32(info, 1, fn, &mask)) return env.Undefined();
  if (!F32(info, 2, fn, &out) || !Num(info, 3, fn, &b) || !Num(info, 4, fn, &h) || !Num(info, 5, fn, &t) ||
      !Num(info, 6, fn, &tk) || !Num(info, 7, fn, &scale) || !Num(info, 8, fn, &mb)) {
    return env.Undefined();
  }
  const int64_t B = static_cast<int64_t>(b), H = static_cast<int64_t>(h), T = static_cast<int64_t>(t),
                C = static_cast<int64_t>(tk), MB = static_cast<int64_t>(mb);
  const size_t n = static_cast<size_t>(B * H * T * C);
  if (x.ElementLength() < n || out.ElementLength() < n ||
      (hasMask && ((MB != 1 && MB != B) || mask.ElementLength() < static_cast<size_t>(MB * T * C)))) {
    Fail(env, "attnSoftmax: B x H x T x Tk exceeds a buffer");
    return env.Undefined();
  }
  if (n == 0) return env.Undefined();
  const float* px = x.Data();
  const float* pm = hasMask ? mask.Data() : nullptr;
  float* po = out.Data();
  const float sc = static_cast<float>(scale);
  ParallelFor(B * H * T, static_cast<int64_t>(n), [=](int64_t from, int64_t to) {
    for (int64_t r = from; r < to; r++) {
      const float* p = px + r * C;
      float* o = po + r * C;
      const float* m = pm ? pm + ((MB == 1 ? 0 : r / (H * T)) * T + r % T) * C : nullptr;
      if (m) {
        for (int64_t c = 0; c < C; c++) o[c] = p[c] * sc + m[c];
      } else {
        for (int64_t c = 0; c < C; c++) o[c] = p[c] * sc;
      }
      SoftmaxRow(o, o, C);
    }
  });
  return env.Undefined();
}

// softmaxGrad(p, dp, out, rows, cols, scale): out = scale * p * (dp - sum_row(dp * p)), the
// gradient through y = softmax(scale * x) given y = p and dL/dy = dp.
Napi::Value SoftmaxGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "softmaxGrad";
  Napi::Float32Array p, dp, out;
  double rows, cols, scale;
  if (!F32(info, 0, fn, &p) || !F32(info, 1, fn, &dp) || !F32(info, 2, fn, &out) || !Num(info, 3, fn, &rows) ||
      !Num(info, 4, fn, &cols) || !Num(info, 5, fn, &scale)) {
    return env.Undefined();
  }
  const size_t R = static_cast<size_t>(rows), C = static_cast<size_t>(cols);
  if (p.ElementLength() < R * C || dp.ElementLength() < R * C || out.ElementLength() < R * C) {
    Fail(env, "softmaxGrad: rows x cols exceeds a buffer");
    return env.Undefined();
  }
  const float* pp = p.Data();
  const float* pd = dp.Data();
  float* po = out.Data();
  const float sc = static_cast<float>(scale);
  ParallelFor(static_cast<int64_t>(R), static_cast<int64_t>(R * C), [=](int64_t from, int64_t to) {
    for (int64_t r = from; r < to; r++) {
      const float* y = pp + r * C;
      const float* g = pd + r * C;
      float* o = po + r * C;
      // in double: the row of the result sums to zero exactly in theory, and key gradients rely
      // on that cancellation (a shift of every key leaves softmax unchanged)
      const float d = static_cast<float>(Dot(g, y, static_cast<int64_t>(C)));
      for (size_t c = 0; c < C; c++) o[c] = sc * (y[c] * (g[c] - d));
    }
  });
  return env.Undefined();
}

// Restrict parameters (not locals, which GCC ignores for this) so the seven streams need no
// run-time alias checks, of which the vectoriser allows ten.
void AdamWRange(const float* __restrict p, const float* __restrict g, const float* __restrict m,
                const float* __restrict v, float* __restrict pOut, float* __restrict mOut, float* __restrict vOut,
                int64_t n, float b1, float b2, float gb1, float gb2, float lr, float eps, float c1, float c2,
                float decay) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float m1 = m[i] * b1 + gi * gb1;
    const float v1 = v[i] * b2 + (gi * gi) * gb2;
    const float step = ((m1 / c1) / (std::sqrt(v1 / c2) + eps)) * lr;
    mOut[i] = m1;
    vOut[i] = v1;
    pOut[i] = p[i] * decay - step;
  }
}

// adamW(p, g, m, v, pOut, mOut, vOut, lr, beta1, beta2, eps, c1, c2, decay): one AdamW update,
// the same float32 steps as model/optim.ts's composite: m' = b1 m + (1 - b1) g,
// v' = b2 v + (1 - b2) g^2, p' = decay p - lr (m' / c1) / (sqrt(v' / c2) + eps).
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "adamW";
  Napi::Float32Array p, g, m, v, po, mo, vo;
  double lr, b1, b2, eps, c1, c2, decay;
  if (!F32(info, 0, fn, &p) || !F32(info, 1, fn, &g) || !F32(info, 2, fn, &m) || !F32(info, 3, fn, &v) ||
      !F32(info, 4, fn, &po) || !F32(info, 5, fn, &mo) || !F32(info, 6, fn, &vo) || !Num(info, 7, fn, &lr) ||
      !Num(info, 8, fn, &b1) || !Num(info, 9, fn, &b2) || !Num(info, 10, fn, &eps) || !Num(info, 11, fn, &c1) ||
      !Num(info, 12, fn, &c2) || !Num(info, 13, fn, &decay)) {
    return env.Undefined();
  }
  const size_t n = p.ElementLength();
  if (g.ElementLength() != n || m.ElementLength() != n || v.ElementLength() != n || po.ElementLength() < n ||
      mo.ElementLength() < n || vo.ElementLength() < n) {
    Fail(env, "adamW: parameter, gradient and moments differ in length");
    return env.Undefined();
  }
  const float* pp = p.Data();
  const float* pg = g.Data();
  const float* pm = m.Data();
  const float* pv = v.Data();
  float* ppo = po.Data();
  float* pmo = mo.Data();
  float* pvo = vo.Data();
  const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
  const float gb1 = static_cast<float>(1.0 - b1), gb2 = static_cast<float>(1.0 - b2);
  const float flr = static_cast<float>(lr), feps = static_cast<float>(eps);
  const float fc1 = static_cast<float>(c1), fc2 = static_cast<float>(c2), fdecay = static_cast<float>(decay);
  ParallelFor(static_cast<int64_t>(n), static_cast<int64_t>(n) * 4, [=](int64_t from, int64_t to) {
    AdamWRange(pp + from, pg + from, pm + from, pv + from, ppo + from, pmo + from, pvo + from, to - from, fb1, fb2,
               gb1, gb2, flr, feps, fc1, fc2, fdecay);
  });
  return env.Undefined();
}

// sumSquares(x): the sum of x[i]^2 in double (one term of a global gradient norm).
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Napi::Float32Array x;
  if (!F32(info, 0, "sumSquares", &x)) return info.Env().Undefined();
  const float* p = x.Data();
  const size_t n = x.ElementLength();
  return Napi::Number::New(info.Env(), Dot(p, p, static_cast<int64_t>(n)));
}

// segmentSum(x, ids, out, rows, cols, numSegments): out[s, :] = sum of x[r, :] over rows with
// ids[r] == s (ids outside [0, numSegments) are dropped, as in TensorFlow). The gradient of a
// row gather, so the embedding can be a gather in training too.
Napi::Value SegmentSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "segmentSum";
  Napi::Float32Array x, out;
  Napi::Int32Array ids;
  double rows, cols, segments;
  if (!F32(info, 0, fn, &x) || !I32(info, 1, fn, &ids) || !F32(info, 2, fn, &out) || !Num(info, 3, fn, &rows) ||
      !Num(info, 4, fn, &cols) || !Num(info, 5, fn, &segments)) {
    return env.Undefined();
  }
  const size_t R = static_cast<size_t>(rows), C = static_cast<size_t>(cols), S = static_cast<size_t>(segments);
  if (x.ElementLength() < R * C || ids.ElementLength() < R || out.ElementLength() < S * C) {
    Fail(env, "segmentSum: rows x cols or segments x cols exceeds a buffer");
    return env.Undefined();
  }
  const float* px = x.Data();
  const int32_t* pi = ids.Data();
  float* po = out.Data();
  std::fill(po, po + S * C, 0.0f);
  for (size_t r = 0; r < R; r++) {
    const int32_t s = pi[r];
    if (s < 0 || static_cast<size_t>(s) >= S) continue;
    const float* src = px + r * C;
    float* dst = po + static_cast<size_t>(s) * C;
    for (size_t c = 0; c < C; c++) dst[c] += src[c];
  }
  return env.Undefined();
}

// Tensors are large and short-lived. glibc serves big blocks with fresh mmap()s by default, so
// every tensor would pay a page fault per 4 KiB on first write and an munmap on dispose; keeping
// blocks up to 32 MiB on the heap lets freed tensors' memory be reused warm.
Napi::Value TuneAllocator(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  const bool ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024) == 1;
  return Napi::Boolean::New(info.Env(), ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && info[0].IsNumber()) {
    openblas_set_num_threads(info[0].As<Napi::Number>().Int32Value());
  }
  return Napi::Number::New(env, openblas_get_num_threads());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  exports.Set("biasAct", Napi::Function::New(env, BiasAct, "biasAct"));
  exports.Set("binary", Napi::Function::New(env, Binary, "binary"));
  exports.Set("unary", Napi::Function::New(env, Unary, "unary"));
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("reduce", Napi::Function::New(env, Reduce, "reduce"));
  exports.Set("strided", Napi::Function::New(env, Strided, "strided"));
  exports.Set("gather", Napi::Function::New(env, Gather, "gather"));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm, "rmsNorm"));
  exports.Set("rmsNormGrad", Napi::Function::New(env, RmsNormGrad, "rmsNormGrad"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("swiglu", Napi::Function::New(env, SwiGlu, "swiglu"));
  exports.Set("swigluGrad", Napi::Function::New(env, SwiGluGrad, "swigluGrad"));
  exports.Set("attnSoftmax", Napi::Function::New(env, AttnSoftmax, "attnSoftmax"));
  exports.Set("softmaxGrad", Napi::Function::New(env, SoftmaxGrad, "softmaxGrad"));
  exports.Set("adamW", Napi::Function::New(env, AdamW, "adamW"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  exports.Set("segmentSum", Napi::Function::New(env, SegmentSum, "segmentSum"));
  exports.Set("tuneAllocator", Napi::Function::New(env, TuneAllocator, "tuneAllocator"));
  exports.Set("threads", Napi::Function::New(env, Threads, "threads"));
  exports.Set("config", Napi::String::New(env, openblas_get_config()));
  return exports;
}

}  // namespace

NODE_API_MODULE(srlm_blas, Init)

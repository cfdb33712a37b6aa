// SAM's exact top-K content search (also the SDNC's) as one CPU call: scores and selection in one pass
// (memory_cores/ann_index.py's ExactIndex holds the PyTorch version, what runs elsewhere).
#include <torch/extension.h>

#include <vector>

#include "vector_clones.h"

namespace {

// The K rows of highest cosine similarity per head (``ann_index.ExactIndex.search`` on CPU, the thesis'
// "linear" search): score(n) = q_h · M(n) * inverse_norms(n) with q_h already unit; best first, ties to
// the smaller row. One pass over each env's memory for all its heads, keeping each head's K best so far:
// no [B, H, N] score tensor and no separate top-K. The dot products use 8 independent partial sums, summed
// as a tree, which the compiler turns into vector instructions (AVX2 and FMA where the CPU has them:
// MEMRL_VECTOR_CLONES, vector_clones.h).
template <typename scalar_t>
MEMRL_VECTOR_CLONES
void top_rows_of_env(const scalar_t* memory, const scalar_t* inverse_norms, const scalar_t* queries, int64_t N,
                     int64_t W, int64_t H, int64_t k, scalar_t* best, int64_t* rows) {
  std::vector<int64_t> filled(H, 0);
  for (int64_t n = 0; n < N; ++n) {
    const scalar_t* word = memory + n * W;
    for (int64_t h = 0; h < H; ++h) {
      const scalar_t* q = queries + h * W;
      scalar_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t w = 0;
      for (; w + 8 <= W; w += 8)
        for (int l = 0; l < 8; ++l) lanes[l] += q[w + l] * word[w + l];
      scalar_t half[4], quarter[2];  // the lanes summed as a tree: vector adds, not 8 scalar ones
      for (int l = 0; l < 4; ++l) half[l] = lanes[l] + lanes[l + 4];
      for (int l = 0; l < 2; ++l) quarter[l] = half[l] + half[l + 2];
      scalar_t score = quarter[0] + quarter[1];
      for (; w < W; ++w) score += q[w] * word[w];
      score *= inverse_norms[n];
      scalar_t* head_best = best + h * k;
      int64_t* head_rows = rows + h * k;
      int64_t& count = filled[h];
      if (count == k && !(score > head_best[k - 1])) continue;  // not better than the K-th: most rows
      int64_t j = count < k ? count++ : k - 1;
      for (; j > 0 && score > head_best[j - 1]; --j) head_best[j] = head_best[j - 1], head_rows[j] = head_rows[j - 1];
      head_best[j] = score, head_rows[j] = n;
    }
  }
}

}  // namespace

// top_rows(memory [B, N, W], inverse_norms [B, N], unit queries [B, H, W], k) -> rows [B, H, k] (long):
// per head the k rows of largest q · M(n) * inverse_norms(n), best first (see top_rows_of_env).
torch::Tensor top_rows(torch::Tensor memory, torch::Tensor inverse_norms, torch::Tensor queries, int64_t k) {
  memory = memory.contiguous(), inverse_norms = inverse_norms.contiguous(), queries = queries.to(memory.dtype()).contiguous();
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2), H = queries.size(1);
  TORCH_CHECK(memory.device().is_cpu() && 0 < k && k <= N, "top_rows: CPU memory and 0 < k <= N");
  auto rows = torch::empty({B, H, k}, memory.options().dtype(torch::kLong));
  AT_DISPATCH_FLOATING_TYPES(memory.scalar_type(), "top_rows", [&] {
    std::vector<scalar_t> best(H * k);
    for (int64_t b = 0; b < B; ++b)
      top_rows_of_env<scalar_t>(memory.data_ptr<scalar_t>() + b * N * W, inverse_norms.data_ptr<scalar_t>() + b * N,
                                queries.data_ptr<scalar_t>() + b * H * W, N, W, H, k, best.data(),
                                rows.data_ptr<int64_t>() + b * H * k);
  });
  return rows;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("top_rows", &top_rows, "exact top-K rows by cosine similarity, per head (see above)");
}

// The Sparse DNC's sparse-link operations as single CPU calls (memory_cores/sparse_linkage.py holds
// the PyTorch version of each, the reference, also what runs on CUDA; thesis eq. 3.15-3.20). There,
// one step's link update is hundreds of small tensor ops, forward and backward; here it is one call
// per matrix each way. Also here: ``merge_top_structure`` (sum repeated keys, keep the largest).
//
// forward / backward: one step of the link update for a list of rows of one sparse link matrix.
// Per row r of ``rows`` [B, R] with entries (cols, vals) [B, R, K_L]:
//   1. if r is among the first ``decayed`` rows: every entry (r, c) is scaled by 1 - W(r) - W(c),
//      W(x) the summed write weight of row x (write_rows, write_weights [B, S]);
//   2. if r is among ``left_rows``: candidates (c, A(r) * right_vals[j]) for c = right_rows[j] are
//      added (A(r) the summed left_vals of row r; self-links c == r get value 0), repeated columns
//      are summed and the K_L largest kept, best first (fewer than K_L: padded with (0, 0)).
// Rows not in ``left_rows`` keep their entries in place. Forward links: left = write, right =
// precedence (L(i, j) += w(i) p(j)); the transpose: left = precedence, right = write.
// Backward recomputes the structure from the same inputs and hands each kept value's gradient to
// its contributions; dropped candidates get none.
#include <torch/extension.h>

#include <algorithm>
#include <vector>

namespace {

template <typename scalar_t>
struct Candidate {
  int64_t col;
  scalar_t value;
  int64_t source;  // 0..K_L-1: the row's own entry; K_L + j: new entry from right_rows[j]
};

// A sparse vector given as (keys, values) with repeats: its distinct keys, sorted, with summed values.
template <typename scalar_t>
struct SummedVector {
  std::vector<int64_t> keys;
  std::vector<scalar_t> totals;
  std::vector<scalar_t> grads;  // backward: d loss / d total, per distinct key
  std::vector<uint64_t> bits;   // one bit per slot: most lookups are of absent keys, answered without a search

  explicit SummedVector(int64_t slots) : bits(slots / 64 + 1, 0) {}

  void build(const int64_t* k, const scalar_t* v, int64_t n) {
    for (int64_t key : keys) bits[key >> 6] = 0;  // clear the previous build's bits: O(n), not O(slots)
    std::vector<std::pair<int64_t, scalar_t>> pairs(n);
    for (int64_t i = 0; i < n; ++i) pairs[i] = {k[i], v ? v[i] : scalar_t(0)};
    std::sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    keys.clear(), totals.clear();
    for (const auto& [key, value] : pairs) {
      if (keys.empty() || keys.back() != key) keys.push_back(key), totals.push_back(0);
      totals.back() += value;
    }
    for (int64_t key : keys) bits[key >> 6] |= uint64_t(1) << (key & 63);
    grads.assign(keys.size(), scalar_t(0));
  }
  int64_t find(int64_t key) const {  // -1 when absent
    if (!(bits[key >> 6] >> (key & 63) & 1)) return -1;
    auto it = std::lower_bound(keys.begin(), keys.end(), key);
    return it != keys.end() && *it == key ? it - keys.begin() : -1;
  }
  scalar_t value(int64_t key) const {
    const int64_t i = find(key);
    return i < 0 ? scalar_t(0) : totals[i];
  }
  void add_grad(int64_t key, scalar_t g) {
    const int64_t i = find(key);
    if (i >= 0) grads[i] += g;
  }
  // d loss / d value of each original entry: the gradient of its key's total.
  void scatter_grads(const int64_t* k, scalar_t* out, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) out[i] += grads[find(k[i])];
  }
};

// Stable, in place, no allocation: the lists sorted here hold K_L + S entries or fewer.
template <typename Less>
void insertion_sort(std::vector<int64_t>& items, Less less) {
  for (size_t i = 1; i < items.size(); ++i) {
    const int64_t item = items[i];
    size_t j = i;
    for (; j > 0 && less(item, items[j - 1]); --j) items[j] = items[j - 1];
    items[j] = item;
  }
}

// Buffers of `merge_largest`, reused from row to row.
template <typename scalar_t>
struct MergeBuffers {
  std::vector<int64_t> order, run_of, run_keys, ranked, slot_of_run, slot;
  std::vector<scalar_t> run_totals;
};

// Sum the values of entries 0..n-1 with equal keys and keep the `keep` largest sums, best first:
// b.slot[i] is the slot entry i's value goes to (-1: dropped), kept[0..keep) the kept keys (0-padded).
template <typename scalar_t, typename KeyOf, typename ValueOf>
void merge_largest(int64_t n, KeyOf key, ValueOf value, int64_t keep, MergeBuffers<scalar_t>& b, int64_t* kept) {
  b.order.resize(n);
  for (int64_t i = 0; i < n; ++i) b.order[i] = i;
  insertion_sort(b.order, [&](int64_t x, int64_t y) { return key(x) < key(y); });
  b.run_of.resize(n), b.run_keys.clear(), b.run_totals.clear();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t e = b.order[i];
    if (i == 0 || key(e) != b.run_keys.back()) b.run_keys.push_back(key(e)), b.run_totals.push_back(0);
    b.run_totals.back() += value(e);
    b.run_of[e] = b.run_keys.size() - 1;
  }
  const int64_t runs = b.run_keys.size();
  b.ranked.resize(runs);
  for (int64_t i = 0; i < runs; ++i) b.ranked[i] = i;
  insertion_sort(b.ranked, [&](int64_t x, int64_t y) { return b.run_totals[x] > b.run_totals[y]; });
  b.slot_of_run.assign(runs, -1);
  std::fill(kept, kept + keep, 0);
  for (int64_t s = 0; s < keep && s < runs; ++s) b.slot_of_run[b.ranked[s]] = s, kept[s] = b.run_keys[b.ranked[s]];
  b.slot.resize(n);
  for (int64_t i = 0; i < n; ++i) b.slot[i] = b.slot_of_run[b.run_of[i]];
}

// Buffers reused from row to row.
template <typename scalar_t>
struct Workspace {
  std::vector<Candidate<scalar_t>> cands;
  std::vector<int64_t> slot_of, kept_cols;
  MergeBuffers<scalar_t> merge;
};

// The candidates of one row and the slot each lands in (-1: dropped); a merged row keeps the
// `keep` largest column totals, best first.
template <typename scalar_t>
void row_structure(int64_t row, bool decay, bool merged, const int64_t* cols, const scalar_t* vals, int64_t keep,
                   const SummedVector<scalar_t>& write, const int64_t* right_rows, const scalar_t* right_vals, int64_t P,
                   scalar_t left_total, Workspace<scalar_t>& ws) {
  auto& cands = ws.cands;
  cands.clear();
  const scalar_t w_row = decay ? write.value(row) : scalar_t(0);
  for (int64_t k = 0; k < keep; ++k) {
    const scalar_t factor = decay ? scalar_t(1) - w_row - write.value(cols[k]) : scalar_t(1);
    cands.push_back({cols[k], vals[k] * factor, k});
  }
  ws.slot_of.assign(keep + P, -1);
  ws.kept_cols.assign(keep, 0);
  if (!merged) {
    for (int64_t k = 0; k < keep; ++k) ws.slot_of[k] = k, ws.kept_cols[k] = cols[k];
    return;
  }
  for (int64_t j = 0; j < P; ++j) {
    const int64_t col = right_rows[j];
    cands.push_back({col, col == row ? scalar_t(0) : left_total * right_vals[j], keep + j});
  }
  const int64_t n = cands.size();
  merge_largest(n, [&](int64_t i) { return cands[i].col; }, [&](int64_t i) { return cands[i].value; }, keep, ws.merge,
                ws.kept_cols.data());
  for (int64_t i = 0; i < n; ++i) ws.slot_of[cands[i].source] = ws.merge.slot[i];
}

struct Inputs {
  torch::Tensor rows, cols, vals, write_rows, write_w, left_rows, left_vals, right_rows, right_vals;
  int64_t decayed, slots;
};

// forward: (new_cols, new_vals); backward (grad given): (grad_vals, grad_write_w, grad_left_vals, grad_right_vals).
template <typename scalar_t>
std::vector<torch::Tensor> run(const Inputs& in, const torch::Tensor* grad) {
  const int64_t B = in.rows.size(0), R = in.rows.size(1), K = in.cols.size(2);
  const int64_t S = in.write_rows.size(1), A = in.left_rows.size(1), P = in.right_rows.size(1);
  const bool backward = grad != nullptr;
  torch::Tensor new_cols, new_vals, g_vals, g_write, g_left, g_right;
  if (backward) {
    g_vals = torch::zeros_like(in.vals), g_write = torch::zeros_like(in.write_w);
    g_left = torch::zeros_like(in.left_vals), g_right = torch::zeros_like(in.right_vals);
  } else {
    new_cols = torch::empty_like(in.cols), new_vals = torch::zeros_like(in.vals);
  }
  // Base pointers once: data_ptr<T>() checks its type on every call.
  const int64_t *rows_p = in.rows.data_ptr<int64_t>(), *cols_p = in.cols.data_ptr<int64_t>();
  const int64_t *wr_p = in.write_rows.data_ptr<int64_t>(), *lr_p = in.left_rows.data_ptr<int64_t>();
  const int64_t* rr_p = in.right_rows.data_ptr<int64_t>();
  const scalar_t *vals_p = in.vals.data_ptr<scalar_t>(), *ww_p = in.write_w.data_ptr<scalar_t>();
  const scalar_t *lv_p = in.left_vals.data_ptr<scalar_t>(), *rv_p = in.right_vals.data_ptr<scalar_t>();
  int64_t* new_cols_p = backward ? nullptr : new_cols.data_ptr<int64_t>();
  scalar_t* new_vals_p = backward ? nullptr : new_vals.data_ptr<scalar_t>();
  const scalar_t* grad_p = backward ? grad->data_ptr<scalar_t>() : nullptr;
  scalar_t *g_vals_p = backward ? g_vals.data_ptr<scalar_t>() : nullptr, *g_right_p = backward ? g_right.data_ptr<scalar_t>() : nullptr;
  scalar_t *g_write_p = backward ? g_write.data_ptr<scalar_t>() : nullptr, *g_left_p = backward ? g_left.data_ptr<scalar_t>() : nullptr;
  Workspace<scalar_t> ws;
  std::vector<std::pair<int64_t, int64_t>> by_row;  // (row, position) of every listed row
  std::vector<int64_t> repeat_of;                    // position of the row's first copy, -1 for a first copy
  SummedVector<scalar_t> write(in.slots), left(in.slots), decayed(in.slots);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t *rows = rows_p + b * R, *wr = wr_p + b * S, *lr = lr_p + b * A, *rr = rr_p + b * P;
    const scalar_t* rv = rv_p + b * P;
    write.build(wr, ww_p + b * S, S);
    left.build(lr, lv_p + b * A, A);
    decayed.build(rows, nullptr, in.decayed);
    // A row listed more than once (it holds several written columns) is computed once: later copies
    // take the first one's result, and get no gradient (the overwrite hands it to the first copy).
    by_row.resize(R);
    for (int64_t q = 0; q < R; ++q) by_row[q] = {rows[q], q};
    std::sort(by_row.begin(), by_row.end());  // by row, then position: a row's first copy comes first
    repeat_of.assign(R, -1);
    for (int64_t i = 1; i < R; ++i) {
      const auto [row, q] = by_row[i];
      const auto [previous_row, previous] = by_row[i - 1];
      if (row == previous_row) repeat_of[q] = repeat_of[previous] >= 0 ? repeat_of[previous] : previous;
    }
    for (int64_t q = 0; q < R; ++q) {
      const int64_t row = rows[q], offset = (b * R + q) * K;
      if (repeat_of[q] >= 0 && !backward) {
        const int64_t source = (b * R + repeat_of[q]) * K;
        std::copy(new_cols_p + source, new_cols_p + source + K, new_cols_p + offset);
        std::copy(new_vals_p + source, new_vals_p + source + K, new_vals_p + offset);
        continue;
      }
      if (repeat_of[q] >= 0 && std::all_of(grad_p + offset, grad_p + offset + K, [](scalar_t g) { return g == 0; }))
        continue;
      const int64_t* cols = cols_p + offset;
      const scalar_t* vals = vals_p + offset;
      const bool decay = decayed.find(row) >= 0;
      const int64_t left_index = left.find(row);
      const scalar_t left_total = left_index >= 0 ? left.totals[left_index] : scalar_t(0);
      row_structure(row, decay, left_index >= 0, cols, vals, K, write, rr, rv, P, left_total, ws);
      if (!backward) {
        int64_t* out_cols = new_cols_p + offset;
        scalar_t* out_vals = new_vals_p + offset;
        for (int64_t k = 0; k < K; ++k) out_cols[k] = ws.kept_cols[k];
        for (const auto& c : ws.cands)
          if (ws.slot_of[c.source] >= 0) out_vals[ws.slot_of[c.source]] += c.value;
        continue;
      }
      const scalar_t* g = grad_p + offset;
      scalar_t* gv = g_vals_p + offset;
      scalar_t* gr = g_right_p + b * P;
      const scalar_t w_row = decay ? write.value(row) : scalar_t(0);
      for (const auto& c : ws.cands) {
        const int64_t slot = ws.slot_of[c.source];
        if (slot < 0) continue;
        const scalar_t gs = g[slot];
        if (c.source < K) {  // own entry: vals[k] * (1 - W(row) - W(col)) when decayed, else vals[k]
          const int64_t k = c.source;
          if (!decay) {
            gv[k] += gs;
            continue;
          }
          gv[k] += gs * (scalar_t(1) - w_row - write.value(cols[k]));
          write.add_grad(row, -gs * vals[k]);
          write.add_grad(cols[k], -gs * vals[k]);
        } else {  // new entry: A(row) * right_vals[j], zero for a self-link
          const int64_t j = c.source - K;
          if (rr[j] == row) continue;
          left.grads[left_index] += gs * rv[j];
          gr[j] += gs * left_total;
        }
      }
    }
    if (backward) {
      write.scatter_grads(wr, g_write_p + b * S, S);
      left.scatter_grads(lr, g_left_p + b * A, A);
    }
  }
  if (!backward) return {new_cols, new_vals};
  return {g_vals, g_write, g_left, g_right};
}

std::vector<torch::Tensor> dispatch(Inputs in, const torch::Tensor* grad) {
  for (auto* t : {&in.rows, &in.cols, &in.write_rows, &in.left_rows, &in.right_rows}) *t = t->contiguous();
  for (auto* t : {&in.vals, &in.write_w, &in.left_vals, &in.right_vals}) *t = t->contiguous();
  TORCH_CHECK(in.vals.device().is_cpu(), "sparse_links runs on CPU tensors");
  std::vector<torch::Tensor> out;
  torch::Tensor g = grad ? grad->contiguous() : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(in.vals.scalar_type(), "sparse_links", [&] { out = run<scalar_t>(in, grad ? &g : nullptr); });
  return out;
}

}  // namespace

std::vector<torch::Tensor> forward(int64_t slots, torch::Tensor rows, int64_t decayed, torch::Tensor cols, torch::Tensor vals,
                                   torch::Tensor write_rows, torch::Tensor write_w, torch::Tensor left_rows,
                                   torch::Tensor left_vals, torch::Tensor right_rows, torch::Tensor right_vals) {
  return dispatch({rows, cols, vals, write_rows, write_w, left_rows, left_vals, right_rows, right_vals, decayed, slots}, nullptr);
}

std::vector<torch::Tensor> backward(int64_t slots, torch::Tensor grad, torch::Tensor rows, int64_t decayed, torch::Tensor cols,
                                    torch::Tensor vals, torch::Tensor write_rows, torch::Tensor write_w,
                                    torch::Tensor left_rows, torch::Tensor left_vals, torch::Tensor right_rows,
                                    torch::Tensor right_vals) {
  return dispatch({rows, cols, vals, write_rows, write_w, left_rows, left_vals, right_rows, right_vals, decayed, slots}, &grad);
}

// merge_top's structure (sparse_linkage.py): per row of keys [*, M] with values [*, M], the distinct
// keys by summed value, the `keep` largest first (padded with key 0), and for each entry the slot its
// value goes to (`keep`: dropped). The values themselves are summed by the caller (differentiable).
std::vector<torch::Tensor> merge_top_structure(torch::Tensor keys, torch::Tensor values, int64_t keep) {
  keys = keys.contiguous(), values = values.contiguous();
  TORCH_CHECK(keys.device().is_cpu() && values.device().is_cpu(), "merge_top_structure runs on CPU tensors");
  const int64_t M = keys.size(-1), rows = M ? keys.numel() / M : 0;
  std::vector<int64_t> kept_shape = keys.sizes().vec();
  kept_shape.back() = keep;
  auto kept_keys = torch::zeros(kept_shape, keys.options());
  auto destination = torch::empty_like(keys);
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "merge_top_structure", [&] {
    const int64_t* k_p = keys.data_ptr<int64_t>();
    const scalar_t* v_p = values.data_ptr<scalar_t>();
    int64_t *kept_p = kept_keys.data_ptr<int64_t>(), *dest_p = destination.data_ptr<int64_t>();
    MergeBuffers<scalar_t> buffers;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* k = k_p + r * M;
      const scalar_t* v = v_p + r * M;
      merge_largest(M, [&](int64_t i) { return k[i]; }, [&](int64_t i) { return v[i]; }, keep, buffers, kept_p + r * keep);
      for (int64_t i = 0; i < M; ++i) dest_p[r * M + i] = buffers.slot[i] < 0 ? keep : buffers.slot[i];  // keep: dropped
    }
  });
  return {kept_keys, destination};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "fused link-row update (see the file's header)");
  m.def("backward", &backward, "its gradient");
  m.def("merge_top_structure", &merge_top_structure, "merge_top's kept keys and each entry's slot");
}

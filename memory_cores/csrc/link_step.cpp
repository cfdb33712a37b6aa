// The Sparse DNC's sparse-link operations as single CPU calls (memory_cores/sparse_linkage.py holds
// the PyTorch version, the reference, also what runs on CUDA; thesis eq. 3.15-3.20). There, one step's
// link update and read weights are hundreds of small tensor ops, forward and backward; here they are
// one call each way.
//
// link_step_forward / link_step_backward: one step of both sparse link matrices, then the read weights
// (see their comments below). Per changed row r with entries (cols, vals) [K_L]:
//   1. if r is decayed: every entry (r, c) is scaled by 1 - W(r) - W(c), W(x) the summed write weight
//      of row x;
//   2. if r is among the rows of the `left` vector: candidates (c, A(r) * right_vals[j]) for
//      c = right_rows[j] are added (A(r) the summed left value of row r; self-links c == r get value
//      0), repeated columns are summed and the K_L largest kept, best first (fewer than K_L: padded
//      with (0, 0)).
// Other rows keep their entries in place. Links: left = write, right = precedence (L(i, j) += w(i) p(j));
// the transpose: left = precedence, right = write. Backward recomputes each row's structure from its
// saved old entries and hands each kept value's gradient to its contributions; dropped candidates get
// none. Then the read weights of each head (ReadMerge): its backward, content and forward weights times
// its read modes, repeated rows summed, the largest kept (``sparse_linkage.mix_merge`` in PyTorch).
//
// The merges (sum repeated keys, keep the largest) are in sparse_merge.h. SAM's exact top-K search is its own
// op, top_rows.cpp.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "sparse_merge.h"

namespace {

// Buffers of `merged_row`, reused from row to row.
template <typename scalar_t>
struct Workspace {
  std::vector<std::pair<int64_t, int64_t>> own_keyed;  // (col, entry) of the row's own entries, sorted
  std::vector<int64_t> own_run, right_run, run_keys, ranked, slot_of_run, own_slot, right_slot, kept_cols;
  std::vector<scalar_t> own_vals, run_totals, kept_vals, best;
};

// A merged row's new entries: its own K entries (decayed if the row is) and, for each distinct key c of the
// right vector, A(row) * right(c) (0 for the self-link c == row); equal columns summed, the `keep` largest
// totals kept, best first (ties: the smaller column first; fewer than `keep`: padded with (0, 0)). Fills
// ws.kept_cols and ws.kept_vals, and the slot of each own entry (ws.own_slot) and right key (ws.right_slot),
// -1 where dropped. The right vector's keys are sorted already (SummedVector): only the K own entries are sorted.
template <typename scalar_t>
void merged_row(int64_t row, bool decay, const int64_t* cols, const scalar_t* vals, int64_t keep,
                const SummedVector<scalar_t>& write, const SummedVector<scalar_t>& right, scalar_t left_total,
                Workspace<scalar_t>& ws) {
  const scalar_t w_row = decay ? write.value(row) : scalar_t(0);
  ws.own_vals.resize(keep), ws.own_keyed.resize(keep), ws.own_run.resize(keep), ws.own_slot.resize(keep);
  for (int64_t k = 0; k < keep; ++k) {
    ws.own_vals[k] = vals[k] * (decay ? scalar_t(1) - w_row - write.value(cols[k]) : scalar_t(1));
    ws.own_keyed[k] = {cols[k], k};
  }
  std::sort(ws.own_keyed.begin(), ws.own_keyed.end());  // by column; equal columns in entry order
  const int64_t D = right.keys.size(), none = std::numeric_limits<int64_t>::max();
  ws.right_run.resize(D), ws.right_slot.resize(D), ws.run_keys.clear(), ws.run_totals.clear();
  ws.run_keys.reserve(keep + D), ws.run_totals.reserve(keep + D);
  for (int64_t i = 0, d = 0; i < keep || d < D;) {  // merge the two sorted key lists into runs
    const int64_t key = std::min(i < keep ? ws.own_keyed[i].first : none, d < D ? right.keys[d] : none);
    const int64_t run = ws.run_keys.size();
    scalar_t total = 0;
    for (; i < keep && ws.own_keyed[i].first == key; ++i) {
      const int64_t k = ws.own_keyed[i].second;
      total += ws.own_vals[k], ws.own_run[k] = run;
    }
    if (d < D && right.keys[d] == key) {
      if (key != row) total += left_total * right.totals[d];
      ws.right_run[d++] = run;
    }
    ws.run_keys.push_back(key), ws.run_totals.push_back(total);
  }
  const int64_t runs = ws.run_keys.size();
  top_runs(ws.run_totals, ws.run_keys, keep, ws.ranked, ws.best);
  ws.slot_of_run.assign(runs, -1), ws.kept_cols.assign(keep, 0), ws.kept_vals.assign(keep, scalar_t(0));
  for (int64_t s = 0; s < keep && s < runs; ++s) {
    ws.slot_of_run[ws.ranked[s]] = s;
    ws.kept_cols[s] = ws.run_keys[ws.ranked[s]], ws.kept_vals[s] = ws.run_totals[ws.ranked[s]];
  }
  for (int64_t k = 0; k < keep; ++k) ws.own_slot[k] = ws.slot_of_run[ws.own_run[k]];
  for (int64_t d = 0; d < D; ++d) ws.right_slot[d] = ws.slot_of_run[ws.right_run[d]];
}

// p_t = (1 - sum w) p_{t-1} + w with the K_L largest kept, as a merge of P + S entries: p's, then w's.
// `structure` fills merge.slot (where each entry went) and the kept rows; forward and backward share it.
template <typename scalar_t>
struct PrecedenceMerge {
  const int64_t *prec_rows, *write_rows;
  const scalar_t *prec_vals, *write_w;
  int64_t P, S, slots;
  scalar_t kept_share;  // 1 - sum w: the share of p_{t-1} that stays

  PrecedenceMerge(const int64_t* pr, const scalar_t* pv, const int64_t* wr, const scalar_t* ww, int64_t P, int64_t S,
                  int64_t slots)
      : prec_rows(pr), write_rows(wr), prec_vals(pv), write_w(ww), P(P), S(S), slots(slots),
        kept_share(scalar_t(1) - std::accumulate(ww, ww + S, scalar_t(0))) {}
  int64_t key(int64_t i) const { return i < P ? prec_rows[i] : write_rows[i - P]; }
  scalar_t value(int64_t i) const { return i < P ? kept_share * prec_vals[i] : write_w[i - P]; }
  void structure(MergeBuffers<scalar_t>& merge, int64_t* kept) const {
    merge_largest(P + S, [&](int64_t i) { return key(i); }, [&](int64_t i) { return value(i); }, P, slots, merge, kept);
  }
};

// One step of both link matrices, stored as one table [B, 2N, K]: rows [0, N) hold L (``links``),
// rows [N, 2N) its transpose (``back``). The rows changed this step, in this order (storage rows):
//   links: the written rows, then the rows holding a written column (the back entries of the written rows);
//   back:  the written rows, then the rows holding a written column (the links entries of the written rows),
//          then the rows of p_{t-1}, which get p w^T.
// All but those last P rows are decayed; written links rows get w p^T (left = write, right = p). A row
// listed more than once is computed once; every row is computed from the old table before any is written.
struct StepLists {
  int64_t slots, K, S, P, R;
  const int64_t *write_rows, *prec_rows;
};

template <typename scalar_t>
struct StepRow {  // a changed row: its row in its matrix, its flags, and the vectors that update it
  int64_t id;
  bool decay, merged;
  scalar_t left_total;
  const int64_t* right_rows;
  const scalar_t* right_vals;
  int64_t right_count;
  const SummedVector<scalar_t>* right;  // the same vector, its distinct keys sorted
};

// The positions of the first copy of each distinct row of rows [R] (< table_rows), in order, into `first`
// (returns how many). O(R): `seen`'s stamps are kept from call to call, so no O(table_rows) work per call.
inline int64_t first_copies(const int64_t* rows, int64_t R, int64_t table_rows, std::vector<int64_t>& first, SeenRows& seen) {
  seen.start(table_rows);
  first.resize(R);
  int64_t n = 0;
  for (int64_t i = 0; i < R; ++i)
    if (seen.first_time(rows[i])) first[n++] = i;
  return n;
}

// The changed rows of one env into `changed` [R] (storage rows), and their first copies (see first_copies).
inline int64_t changed_rows(const StepLists& p, const int64_t* cols, int64_t* changed, std::vector<int64_t>& first, SeenRows& seen) {
  const int64_t N = p.slots, K = p.K, S = p.S;
  int64_t q = 0;
  for (int64_t i = 0; i < S; ++i) changed[q++] = p.write_rows[i];
  for (int64_t i = 0; i < S; ++i)
    for (int64_t k = 0; k < K; ++k) changed[q++] = cols[(N + p.write_rows[i]) * K + k];
  for (int64_t i = 0; i < S; ++i) changed[q++] = N + p.write_rows[i];
  for (int64_t i = 0; i < S; ++i)
    for (int64_t k = 0; k < K; ++k) changed[q++] = N + cols[p.write_rows[i] * K + k];
  for (int64_t i = 0; i < p.P; ++i) changed[q++] = N + p.prec_rows[i];
  return first_copies(changed, p.R, 2 * N, first, seen);
}

template <typename scalar_t>
StepRow<scalar_t> step_row(const StepLists& p, int64_t storage_row, int64_t position, const SummedVector<scalar_t>& write,
                           const SummedVector<scalar_t>& prec, const scalar_t* write_w, const scalar_t* prec_vals) {
  const bool back = storage_row >= p.slots;
  const int64_t id = back ? storage_row - p.slots : storage_row;
  const int64_t l = (back ? prec : write).find(id);
  const scalar_t left_total = l >= 0 ? (back ? prec : write).totals[l] : scalar_t(0);
  // The first copy is the earliest position; the decayed rows are the first R - P.
  StepRow<scalar_t> r{id, position < p.R - p.P, l >= 0, left_total, p.prec_rows, prec_vals, p.P, &prec};
  if (back) r.right_rows = p.write_rows, r.right_vals = write_w, r.right_count = p.S, r.right = &write;
  return r;
}

// One table row of K entries copied / zeroed. For K_L = 8 (the default) the size is a compile-time constant,
// which the compiler turns into a few vector moves; a runtime size becomes a call to memmove / memset, which
// for rows this short costs more than the copy (thousands of rows per step).
template <typename T>
inline void copy_row(const T* src, int64_t K, T* dst) {
  if (K == 8) std::memcpy(dst, src, 8 * sizeof(T));
  else std::copy(src, src + K, dst);
}

template <typename T>
inline void zero_row(T* dst, int64_t K) {
  if (K == 8) std::memset(dst, 0, 8 * sizeof(T));
  else std::fill(dst, dst + K, T(0));
}

// torch::zeros without a dispatched fill_: the link step makes several small tensors every call.
inline torch::Tensor zeroed(at::IntArrayRef shape, const at::TensorOptions& options) {
  auto tensor = torch::empty(shape, options);
  std::memset(tensor.data_ptr(), 0, tensor.nbytes());
  return tensor;
}

// What a link step reuses from call to call, per thread and dtype, so that warm calls do not allocate.
// Fetched once per call: in a shared library every use of a thread_local costs a call for its address.
template <typename scalar_t>
struct StepScratch {
  MergeBuffers<scalar_t> merge;
  Workspace<scalar_t> ws;
  SummedVector<scalar_t> write, prec;
  std::vector<int64_t> first, new_cols, kept;
  std::vector<scalar_t> new_vals, g_new, g_read;
  SeenRows seen;

  static StepScratch& get(int64_t slots) {
    thread_local StepScratch scratch;
    scratch.write.fit(slots), scratch.prec.fit(slots);
    return scratch;
  }
};

// The read merge of head h of env b: M = 2 Kp K_L + Kc entries in three segments, weighted by the head's
// modes: 0 backward (the links rows of the head's Kp previously read rows: b = L^T w^r_{t-1}), 1 content (its Kc
// rows), 2 forward (their back rows: f = L w^r_{t-1}). The directional entries are the read rows' values after
// the update times the read weight of their row; `flat` is their index in the [B, 2, Q, K_L] read arrays.
template <typename scalar_t>
struct ReadMerge {
  const int64_t* read_cols;      // [B, 2, Q, K_L]
  const scalar_t* read_vals;     // [B, 2, Q, K_L]
  const scalar_t* read_w;        // [B, Q]
  const int64_t* content_rows;   // [B, H, Kc]
  const scalar_t* content_w;     // [B, H, Kc]
  const scalar_t* modes;         // [B, H, 3]
  int64_t b, h, H, Q, Kp, KL, Kc;

  int64_t segment(int64_t i) const { return i < Kp * KL ? 0 : i < Kp * KL + Kc ? 1 : 2; }
  int64_t content_at(int64_t i) const { return (b * H + h) * Kc + i - Kp * KL; }
  int64_t flat(int64_t i) const {  // directional entries only
    const int64_t seg = segment(i), m = seg == 0 ? 1 : 0, d = seg == 0 ? i : i - Kp * KL - Kc;
    return ((b * 2 + m) * Q + h * Kp + d / KL) * KL + d % KL;
  }
  int64_t read_q(int64_t i) const { return b * Q + (flat(i) / KL) % Q; }
  int64_t key(int64_t i) const { return segment(i) == 1 ? content_rows[content_at(i)] : read_cols[flat(i)]; }
  scalar_t value(int64_t i) const {  // before the mode
    return segment(i) == 1 ? content_w[content_at(i)] : read_vals[flat(i)] * read_w[read_q(i)];
  }
  scalar_t mode(int64_t i) const { return modes[(b * H + h) * 3 + segment(i)]; }
  scalar_t weight(int64_t i) const { return value(i) * mode(i); }
};

template <typename scalar_t>
std::vector<torch::Tensor> link_step_forward_impl(torch::Tensor cols, torch::Tensor vals, torch::Tensor write_rows,
                                                  torch::Tensor write_w, torch::Tensor prec_rows, torch::Tensor prec_vals,
                                                  torch::Tensor read_rows, torch::Tensor read_w, torch::Tensor content_rows,
                                                  torch::Tensor content_w, torch::Tensor modes, int64_t keep) {
  const int64_t B = cols.size(0), N = cols.size(1) / 2, K = cols.size(2);
  const int64_t S = write_rows.size(1), P = prec_rows.size(1), Q = read_rows.size(1);
  const int64_t H = content_rows.size(1), Kc = content_rows.size(2), Kp = Q / H, M = 2 * Kp * K + Kc;
  const int64_t R = 2 * S * (K + 1) + P;
  auto changed = torch::empty({B, R}, cols.options());
  auto old_cols = torch::empty({B, R, K}, cols.options()), old_vals = torch::empty({B, R, K}, vals.options());
  auto read_vals = torch::empty({B, 2, Q, K}, vals.options());
  auto kept_rows = torch::empty({B, H, keep}, cols.options()), kept_w = zeroed({B, H, keep}, vals.options());
  auto slot = torch::empty({B, H, M}, cols.options());
  auto new_prec_rows = torch::empty({B, P}, cols.options()), new_prec_vals = zeroed({B, P}, vals.options());
  scalar_t *new_pv_p = new_prec_vals.data_ptr<scalar_t>(), *kept_w_p = kept_w.data_ptr<scalar_t>();
  int64_t *kept_rows_p = kept_rows.data_ptr<int64_t>(), *slot_p = slot.data_ptr<int64_t>();
  int64_t* new_pr_p = new_prec_rows.data_ptr<int64_t>();
  const scalar_t* rw_p = read_w.data_ptr<scalar_t>();
  std::vector<int64_t> read_cols(B * 2 * Q * K);
  int64_t *cols_p = cols.data_ptr<int64_t>(), *changed_p = changed.data_ptr<int64_t>();
  int64_t *old_cols_p = old_cols.data_ptr<int64_t>(), *read_cols_p = read_cols.data();
  scalar_t *vals_p = vals.data_ptr<scalar_t>(), *old_vals_p = old_vals.data_ptr<scalar_t>(), *read_vals_p = read_vals.data_ptr<scalar_t>();
  const int64_t *wr_p = write_rows.data_ptr<int64_t>(), *pr_p = prec_rows.data_ptr<int64_t>(), *rr_p = read_rows.data_ptr<int64_t>();
  const scalar_t *ww_p = write_w.data_ptr<scalar_t>(), *pv_p = prec_vals.data_ptr<scalar_t>();
  const int64_t* cr_p = content_rows.data_ptr<int64_t>();
  const scalar_t *cw_p = content_w.data_ptr<scalar_t>(), *modes_p = modes.data_ptr<scalar_t>();
  // Envs are independent: split over the intra-op threads (torch.set_num_threads), each with its own scratch.
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
  auto& scratch = StepScratch<scalar_t>::get(N);
  auto &merge = scratch.merge, &ws = scratch.ws;
  auto &write = scratch.write, &prec = scratch.prec;
  auto &first = scratch.first, &new_cols = scratch.new_cols;
  auto& new_vals = scratch.new_vals;
  new_cols.resize(R * K), new_vals.resize(R * K);
  for (int64_t b = begin; b < end; ++b) {
    int64_t* c = cols_p + b * 2 * N * K;
    scalar_t* v = vals_p + b * 2 * N * K;
    const StepLists p{N, K, S, P, R, wr_p + b * S, pr_p + b * P};
    const scalar_t *ww = ww_p + b * S, *pv = pv_p + b * P;
    write.build(p.write_rows, ww, S);
    prec.build(p.prec_rows, pv, P);
    int64_t* ch = changed_p + b * R;
    const int64_t distinct = changed_rows(p, c, ch, first, scratch.seen);
    // The rows are scattered over a table larger than the cache: each is asked for `ahead` rows before its turn
    // (asking for all ~300 at once overflows the core's outstanding misses).
    constexpr int64_t ahead = 8;
    auto prefetch_row = [&](int64_t i) { __builtin_prefetch(c + ch[first[i]] * K), __builtin_prefetch(v + ch[first[i]] * K); };
    for (int64_t i = 0; i < std::min(ahead, distinct); ++i) prefetch_row(i);
    for (int64_t i = 0; i < distinct; ++i) {
      const int64_t q = first[i], row = ch[q];
      if (i + ahead < distinct) prefetch_row(i + ahead);
      // saved for backward, which reads first copies only (repeats' rows are left unset)
      copy_row(c + row * K, K, old_cols_p + (b * R + q) * K);
      copy_row(v + row * K, K, old_vals_p + (b * R + q) * K);
      const auto r = step_row(p, row, q, write, prec, ww, pv);
      if (!r.merged) {  // decayed only (most rows): the entries stay where they are
        const scalar_t w_row = write.value(r.id);
        for (int64_t k = 0; k < K; ++k) {
          const int64_t col = c[row * K + k];
          new_cols[q * K + k] = col;
          new_vals[q * K + k] = v[row * K + k] * (scalar_t(1) - w_row - write.value(col));
        }
        continue;
      }
      merged_row(r.id, r.decay, c + row * K, v + row * K, K, write, *r.right, r.left_total, ws);
      copy_row(ws.kept_cols.data(), K, new_cols.data() + q * K);
      copy_row(ws.kept_vals.data(), K, new_vals.data() + q * K);
    }
    for (int64_t i = 0; i < distinct; ++i) {  // only now: every row was computed from the old table
      const int64_t q = first[i], row = ch[q];
      copy_row(new_cols.data() + q * K, K, c + row * K);
      copy_row(new_vals.data() + q * K, K, v + row * K);
    }
    for (int64_t m = 0; m < 2; ++m)  // m = 0: back rows (forward weights); m = 1: links rows (backward weights)
      for (int64_t q = 0; q < Q; ++q) {
        const int64_t row = (m == 0 ? N : 0) + rr_p[b * Q + q], out = ((b * 2 + m) * Q + q) * K;
        copy_row(c + row * K, K, read_cols_p + out);
        copy_row(v + row * K, K, read_vals_p + out);
      }
    for (int64_t h = 0; h < H; ++h) {  // the read weights: each head's three segments merged
      const ReadMerge<scalar_t> read{read_cols_p, read_vals_p, rw_p, cr_p, cw_p, modes_p, b, h, H, Q, Kp, K, Kc};
      merge_largest(M, [&](int64_t i) { return read.key(i); }, [&](int64_t i) { return read.weight(i); }, keep, N, merge,
                    kept_rows_p + (b * H + h) * keep);
      for (int64_t i = 0; i < M; ++i) {
        slot_p[(b * H + h) * M + i] = merge.slot[i];
        if (merge.slot[i] >= 0) kept_w_p[(b * H + h) * keep + merge.slot[i]] += read.weight(i);
      }
    }
    const PrecedenceMerge<scalar_t> precedence(p.prec_rows, pv, p.write_rows, ww, P, S, N);
    precedence.structure(merge, new_pr_p + b * P);
    for (int64_t i = 0; i < P + S; ++i)
      if (merge.slot[i] >= 0) new_pv_p[b * P + merge.slot[i]] += precedence.value(i);
  }
  });
  return {changed, old_cols, old_vals, read_vals, slot, kept_rows, kept_w, new_prec_rows, new_prec_vals};
}

template <typename scalar_t>
std::vector<torch::Tensor> link_step_backward_impl(torch::Tensor grad, torch::Tensor grad_kept, torch::Tensor grad_new_prec,
                                                   torch::Tensor read_rows, torch::Tensor read_w, torch::Tensor read_vals,
                                                   torch::Tensor slot, torch::Tensor content_w, torch::Tensor modes,
                                                   torch::Tensor changed, torch::Tensor old_cols, torch::Tensor old_vals,
                                                   torch::Tensor write_rows, torch::Tensor write_w, torch::Tensor prec_rows,
                                                   torch::Tensor prec_vals) {
  const int64_t B = old_cols.size(0), R = old_cols.size(1), K = old_cols.size(2), N = grad.size(1) / 2;
  const int64_t S = write_rows.size(1), P = prec_rows.size(1), Q = read_rows.size(1);
  const int64_t H = content_w.size(1), Kc = content_w.size(2), Kp = Q / H, M = slot.size(2), keep = grad_kept.size(2);
  auto g_write = zeroed(write_w.sizes(), write_w.options()), g_prec = zeroed(prec_vals.sizes(), prec_vals.options());
  auto g_read_w = zeroed(read_w.sizes(), read_w.options()), g_content = zeroed(content_w.sizes(), content_w.options());
  auto g_modes = zeroed(modes.sizes(), modes.options());
  scalar_t *g_read_w_p = g_read_w.data_ptr<scalar_t>(), *g_content_p = g_content.data_ptr<scalar_t>(), *g_modes_p = g_modes.data_ptr<scalar_t>();
  const int64_t* slot_p = slot.data_ptr<int64_t>();
  const scalar_t *g_kept_p = grad_kept.data_ptr<scalar_t>(), *cw_p = content_w.data_ptr<scalar_t>(), *modes_p = modes.data_ptr<scalar_t>();
  const scalar_t *rw_p = read_w.data_ptr<scalar_t>(), *read_vals_p = read_vals.data_ptr<scalar_t>();
  const scalar_t* g_new_prec_p = grad_new_prec.data_ptr<scalar_t>();
  scalar_t *g_p = grad.data_ptr<scalar_t>(), *g_write_p = g_write.data_ptr<scalar_t>(), *g_prec_p = g_prec.data_ptr<scalar_t>();
  const scalar_t* old_vals_p = old_vals.data_ptr<scalar_t>();
  const int64_t *rr_p = read_rows.data_ptr<int64_t>(), *ch_p = changed.data_ptr<int64_t>(), *old_cols_p = old_cols.data_ptr<int64_t>();
  const int64_t *wr_p = write_rows.data_ptr<int64_t>(), *pr_p = prec_rows.data_ptr<int64_t>();
  const scalar_t *ww_p = write_w.data_ptr<scalar_t>(), *pv_p = prec_vals.data_ptr<scalar_t>();
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {  // as forward: envs split over the threads
  auto& scratch = StepScratch<scalar_t>::get(N);
  auto &merge = scratch.merge, &ws = scratch.ws;
  auto &write = scratch.write, &prec = scratch.prec;
  auto &first = scratch.first, &kept = scratch.kept;
  auto &g_new = scratch.g_new, &g_read = scratch.g_read;
  kept.resize(P), g_new.resize(R * K), g_read.resize(2 * Q * K);
  for (int64_t b = begin; b < end; ++b) {
    scalar_t* g = g_p + b * 2 * N * K;
    const StepLists p{N, K, S, P, R, wr_p + b * S, pr_p + b * P};
    const scalar_t *ww = ww_p + b * S, *pv = pv_p + b * P;
    const int64_t* ch = ch_p + b * R;
    // 0. The read merge: each kept slot's gradient to the entries summed into it (times their mode: the
    //    directional ones into g_read [2, Q, K_L], as the read arrays) and to the modes.
    std::fill(g_read.begin(), g_read.end(), scalar_t(0));
    for (int64_t h = 0; h < H; ++h) {
      const ReadMerge<scalar_t> read{nullptr, read_vals_p, rw_p, nullptr, cw_p, modes_p, b, h, H, Q, Kp, K, Kc};  // no keys needed
      for (int64_t i = 0; i < M; ++i) {
        const int64_t s = slot_p[(b * H + h) * M + i];
        if (s < 0) continue;
        const scalar_t g_kept = g_kept_p[(b * H + h) * keep + s];
        g_modes_p[(b * H + h) * 3 + read.segment(i)] += g_kept * read.value(i);
        if (read.segment(i) == 1) g_content_p[read.content_at(i)] += g_kept * read.mode(i);
        else g_read[read.flat(i) - b * 2 * Q * K] = g_kept * read.mode(i);
      }
    }
    // 1. The directional reads (values times the read weight) came after the update: their gradient
    //    lands on the rows read and on the read weights.
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t q = 0; q < Q; ++q) {
        const int64_t row = (m == 0 ? N : 0) + rr_p[b * Q + q], at = ((b * 2 + m) * Q + q) * K;
        const scalar_t* gq = g_read.data() + (m * Q + q) * K;
        const scalar_t a = rw_p[b * Q + q];
        for (int64_t k = 0; k < K; ++k) {
          g[row * K + k] += gq[k] * a;
          g_read_w_p[b * Q + q] += gq[k] * read_vals_p[at + k];
        }
      }
    // 2. The update: a changed row's old values reach the loss only through its new ones.
    const int64_t distinct = first_copies(ch, R, 2 * N, first, scratch.seen);
    for (int64_t i = 0; i < distinct; ++i) __builtin_prefetch(g + ch[first[i]] * K);  // as in forward
    for (int64_t i = 0; i < distinct; ++i) {
      const int64_t q = first[i], row = ch[q];
      copy_row(g + row * K, K, g_new.data() + q * K);
      zero_row(g + row * K, K);
    }
    write.build(p.write_rows, ww, S);
    prec.build(p.prec_rows, pv, P);
    for (int64_t i = 0; i < distinct; ++i) {
      const int64_t q = first[i], row = ch[q];
      const scalar_t* gs_row = g_new.data() + q * K;
      if (std::all_of(gs_row, gs_row + K, [](scalar_t x) { return x == 0; })) continue;
      const auto r = step_row(p, row, q, write, prec, ww, pv);
      const int64_t* cols = old_cols_p + (b * R + q) * K;
      const scalar_t* vals = old_vals_p + (b * R + q) * K;
      const scalar_t w_row = r.decay ? write.value(r.id) : scalar_t(0);
      auto own_entry = [&](int64_t k, scalar_t gs) {  // vals[k] * (1 - W(row) - W(col)) when decayed, else vals[k]
        if (!r.decay) {
          g[row * K + k] += gs;
          return;
        }
        g[row * K + k] += gs * (scalar_t(1) - w_row - write.value(cols[k]));
        write.add_grad(r.id, -gs * vals[k]);
        write.add_grad(cols[k], -gs * vals[k]);
      };
      if (!r.merged) {  // decayed only: entry k stayed in slot k
        for (int64_t k = 0; k < K; ++k) own_entry(k, gs_row[k]);
        continue;
      }
      merged_row(r.id, r.decay, cols, vals, K, write, *r.right, r.left_total, ws);
      for (int64_t k = 0; k < K; ++k)
        if (ws.own_slot[k] >= 0) own_entry(k, gs_row[ws.own_slot[k]]);
      const bool back = row >= N;
      SummedVector<scalar_t>& left = back ? prec : write;
      scalar_t* g_right = back ? g_write_p + b * S : g_prec_p + b * P;
      for (int64_t j = 0; j < r.right_count; ++j) {  // new entry: A(row) * right_vals[j], zero for a self-link
        const int64_t slot = ws.right_slot[r.right->find(r.right_rows[j])];
        if (slot < 0 || r.right_rows[j] == r.id) continue;
        left.add_grad(r.id, gs_row[slot] * r.right_vals[j]);
        g_right[j] += gs_row[slot] * r.left_total;
      }
    }
    write.scatter_grads(p.write_rows, g_write_p + b * S, S);
    prec.scatter_grads(p.prec_rows, g_prec_p + b * P, P);
    // 3. The precedence: its structure again, then each kept slot's gradient to the entries that went into it.
    const PrecedenceMerge<scalar_t> precedence(p.prec_rows, pv, p.write_rows, ww, P, S, N);
    precedence.structure(merge, kept.data());
    const scalar_t* gp = g_new_prec_p + b * P;
    scalar_t to_share = 0;  // d loss / d (1 - sum w)
    for (int64_t i = 0; i < P + S; ++i) {
      if (merge.slot[i] < 0) continue;
      const scalar_t gs = gp[merge.slot[i]];
      if (i < P) g_prec_p[b * P + i] += gs * precedence.kept_share, to_share += gs * pv[i];
      else g_write_p[b * S + i - P] += gs;
    }
    for (int64_t i = 0; i < S; ++i) g_write_p[b * S + i] -= to_share;
  }
  });
  return {g_write, g_prec, g_read_w, g_content, g_modes};
}

}  // namespace

// link_step_forward(cols, vals [B, 2N, K], changed in place; write_rows, write_w [B, S]; prec_rows, prec_vals [B, P]:
// p_{t-1}; read_rows, read_w [B, Q = H Kp]: the previous read; content_rows, content_w [B, H, Kc]: this step's content
// weights; modes [B, H, 3]: the read modes (backward, content, forward); keep) -> (changed [B, R]; their old cols
// and vals [B, R, K]; read_vals [B, 2, Q, K]: after the update, the values of the back rows (forward weights) and
// links rows (backward weights) of read_rows; slot [B, H, M]: where each read-merge entry went (ReadMerge's
// order; -1: dropped); kept_rows, kept_w [B, H, keep]: the read weights; new_prec_rows, new_prec_vals [B, P]: p_t).
std::vector<torch::Tensor> link_step_forward(torch::Tensor cols, torch::Tensor vals, torch::Tensor write_rows, torch::Tensor write_w,
                                             torch::Tensor prec_rows, torch::Tensor prec_vals, torch::Tensor read_rows,
                                             torch::Tensor read_w, torch::Tensor content_rows, torch::Tensor content_w,
                                             torch::Tensor modes, int64_t keep) {
  TORCH_CHECK(cols.is_contiguous() && vals.is_contiguous() && vals.device().is_cpu(), "link_step: contiguous CPU tables");
  TORCH_CHECK(read_rows.size(1) % content_rows.size(1) == 0 && modes.size(2) == 3, "link_step: Q = H Kp read rows, 3 modes");
  write_rows = write_rows.contiguous(), write_w = write_w.contiguous(), prec_rows = prec_rows.contiguous();
  prec_vals = prec_vals.contiguous(), read_rows = read_rows.contiguous(), read_w = read_w.contiguous();
  content_rows = content_rows.contiguous(), content_w = content_w.contiguous(), modes = modes.contiguous();
  std::vector<torch::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(vals.scalar_type(), "link_step_forward", [&] {
    out = link_step_forward_impl<scalar_t>(cols, vals, write_rows, write_w, prec_rows, prec_vals, read_rows, read_w, content_rows,
                                           content_w, modes, keep);
  });
  return out;
}

// link_step_backward(grad [B, 2N, K]: d loss / d values after the step, changed in place into d loss / d values
// before it; grad_kept [B, H, keep]; grad_new_prec [B, P]; read_rows, read_w; then the forward's saved read_vals and
// slot, its content_w and modes, its changed rows and their old cols and vals, and its write and precedence inputs)
// -> (grad_write_w [B, S], grad_prec_vals [B, P], grad_read_w [B, Q], grad_content_w [B, H, Kc], grad_modes [B, H, 3]).
std::vector<torch::Tensor> link_step_backward(torch::Tensor grad, torch::Tensor grad_kept, torch::Tensor grad_new_prec,
                                              torch::Tensor read_rows, torch::Tensor read_w, torch::Tensor read_vals,
                                              torch::Tensor slot, torch::Tensor content_w, torch::Tensor modes,
                                              torch::Tensor changed, torch::Tensor old_cols, torch::Tensor old_vals,
                                              torch::Tensor write_rows, torch::Tensor write_w, torch::Tensor prec_rows,
                                              torch::Tensor prec_vals) {
  TORCH_CHECK(grad.is_contiguous() && grad.device().is_cpu(), "link_step: a contiguous CPU gradient table");
  std::vector<torch::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "link_step_backward", [&] {
    out = link_step_backward_impl<scalar_t>(grad, grad_kept.contiguous(), grad_new_prec.contiguous(), read_rows.contiguous(),
                                            read_w.contiguous(), read_vals, slot, content_w.contiguous(), modes.contiguous(),
                                            changed, old_cols, old_vals, write_rows.contiguous(), write_w.contiguous(),
                                            prec_rows.contiguous(), prec_vals.contiguous());
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("link_step_forward", &link_step_forward, "one step of both link matrices, in place, and the read weights (see above)");
  m.def("link_step_backward", &link_step_backward, "its gradient");
}

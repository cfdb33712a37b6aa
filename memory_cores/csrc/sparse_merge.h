// Sparse vectors given as (keys, values) with repeated keys: summing the values of equal keys and keeping the
// largest sums (the SDNC's link rows, read weights and precedence all are such merges). For link_step.cpp, the
// one translation unit that includes it: its helpers stay in an unnamed namespace, as they were there.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

// A sparse vector given as (keys, values) with repeats: its distinct keys, sorted, with summed values.
template <typename scalar_t>
struct SummedVector {
  std::vector<int64_t> keys;
  std::vector<scalar_t> totals;
  std::vector<scalar_t> grads;  // backward: d loss / d total, per distinct key
  std::vector<uint64_t> bits;   // one bit per slot: most lookups are of absent keys, answered without a search
  void fit(int64_t slots) {  // bits for keys < slots; only grows, so every key of the last build still has its bit
    if (static_cast<int64_t>(bits.size()) < slots / 64 + 1) bits.resize(slots / 64 + 1, 0);
  }

  std::vector<std::pair<int64_t, scalar_t>> pairs;  // build's buffer

  void build(const int64_t* k, const scalar_t* v, int64_t n) {
    for (int64_t key : keys) bits[key >> 6] = 0;  // clear the previous build's bits: O(n), not O(slots)
    pairs.resize(n);
    for (int64_t i = 0; i < n; ++i) pairs[i] = {k[i], v[i]};
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

// The (up to) `keep` runs with the largest totals, best first, ties to the smaller key: what a stable
// descending sort of the runs in key order would put first, in O(runs * keep), whatever order the runs
// come in. `best` holds the kept totals beside `ranked`, so the insertion compares values in one array.
template <typename scalar_t>
void top_runs(const std::vector<scalar_t>& totals, const std::vector<int64_t>& keys, int64_t keep,
              std::vector<int64_t>& ranked, std::vector<scalar_t>& best) {
  const int64_t runs = totals.size(), m = std::min(keep, runs);
  ranked.resize(m), best.resize(m);
  int64_t size = 0;
  for (int64_t r = 0; r < runs; ++r) {
    const scalar_t total = totals[r];
    const int64_t key = keys[r];
    auto before = [&](int64_t j) { return total > best[j] || (total == best[j] && key < keys[ranked[j]]); };
    if (size == m) {
      if (!before(m - 1)) continue;
    } else {
      ++size;
    }
    int64_t j = size - 1;
    for (; j > 0 && before(j - 1); --j) best[j] = best[j - 1], ranked[j] = ranked[j - 1];
    best[j] = total, ranked[j] = r;
  }
}

// Marks rows seen, without clearing a table per use: a row is seen when its stamp is the current one.
struct SeenRows {
  std::vector<uint32_t> stamps;
  uint32_t current = 0;
  void start(int64_t rows) {
    if (static_cast<int64_t>(stamps.size()) < rows) stamps.assign(rows, 0), current = 0;
    if (++current == 0) std::fill(stamps.begin(), stamps.end(), 0), current = 1;  // wrapped: clear once
  }
  bool first_time(int64_t row) {
    if (stamps[row] == current) return false;
    stamps[row] = current;
    return true;
  }
};

// Buffers of `merge_largest`, reused from call to call.
template <typename scalar_t>
struct MergeBuffers {
  SeenRows keys_seen;  // keys with a run in the current merge, which is run_at[key]
  std::vector<int64_t> run_at;
  std::vector<int64_t> run_of, run_keys, ranked, slot_of_run, slot;
  std::vector<scalar_t> run_totals, best;
};

// Sum the values of entries 0..n-1 with equal keys (all < key_bound) and keep the `keep` largest sums, best
// first (ties: the smaller key): b.slot[i] is the slot entry i's value goes to (-1: dropped), kept[0..keep) the
// kept keys (0-padded). Runs are found through a table indexed by key (no sort; SeenRows' stamps make
// clearing it O(1)); each run's values are summed in entry order.
template <typename scalar_t, typename KeyOf, typename ValueOf>
void merge_largest(int64_t n, KeyOf key, ValueOf value, int64_t keep, int64_t key_bound, MergeBuffers<scalar_t>& b,
                   int64_t* kept) {
  b.keys_seen.start(key_bound);
  if (static_cast<int64_t>(b.run_at.size()) < key_bound) b.run_at.resize(key_bound);
  b.run_of.resize(n), b.run_keys.clear(), b.run_totals.clear(), b.run_keys.reserve(n), b.run_totals.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = key(i);
    if (b.keys_seen.first_time(k)) b.run_at[k] = b.run_keys.size(), b.run_keys.push_back(k), b.run_totals.push_back(0);
    const int64_t run = b.run_at[k];
    b.run_totals[run] += value(i);
    b.run_of[i] = run;
  }
  const int64_t runs = b.run_keys.size();
  top_runs(b.run_totals, b.run_keys, keep, b.ranked, b.best);
  b.slot_of_run.assign(runs, -1);
  std::fill(kept, kept + keep, 0);
  for (int64_t s = 0; s < static_cast<int64_t>(b.ranked.size()); ++s) b.slot_of_run[b.ranked[s]] = s, kept[s] = b.run_keys[b.ranked[s]];
  b.slot.resize(n);
  for (int64_t i = 0; i < n; ++i) b.slot[i] = b.slot_of_run[b.run_of[i]];
}

}  // namespace

#!/bin/bash
# The bloom.md measurements: `memrl bench bloom` per set distribution, written next to this script.
# Usage: docs/results/bloom/run_bloom.sh <part>   part: class_based | uniform | database | database_long
# Each run uses one thread, so two parts can share a 2-core machine; database_long continues database's 16x2 run.
set -e
HERE=docs/results/bloom
TRAIN="overrides=['max_batches=1500','batch_size=8','optimizer.name=adam','optimizer.learning_rate=0.001','validation.interval_batches=100','tensorboard=false']"
case "$1" in
  class_based)  # thesis Figure 5.2a (at n = 500: LSTM 22x, NBF 12x smaller than the Bloom filter). n = 400 is the
                # largest set here: only MNIST's 10k test images ship, and the rarest class (5) has 446 per half.
    memrl bench bloom "tasks=[bloom]" "set_sizes=[100,400]" "$TRAIN" \
      "models=[{core:neural_bloom,memory_slots:4,word_size:2},{core:lstm,hidden_size:8}]" \
      out=$HERE/class_based.json plot=$HERE/class_based.png ;;
  uniform)      # thesis Figure 5.2c: no structure, the Bloom filter's home ground
    memrl bench bloom "tasks=[bloom_uniform]" "set_sizes=[100]" "$TRAIN" \
      "models=[{core:neural_bloom,memory_slots:16,word_size:2},{core:neural_bloom,memory_slots:64,word_size:2},{core:lstm,hidden_size:32}]" \
      out=$HERE/uniform.json plot=$HERE/uniform.png ;;
  database)     # thesis 5.6.4 on word keys: contiguous ranges of a sorted universe, uniform queries. n = 200, the
                # largest training set of the thesis' extrapolation task (Fig. 5.4); the character-LSTM encoder
                # makes a batch of 8 sets of 500 take ~1 s on one core, too slow here for n = 500 or 5,000.
    memrl bench bloom "tasks=[bloom_database]" "set_sizes=[200]" "${TRAIN/max_batches=1500/max_batches=3000}" \
      "models=[{core:neural_bloom,memory_slots:4,word_size:2},{core:neural_bloom,memory_slots:16,word_size:2},{core:lstm,hidden_size:8}]" \
      out=$HERE/database.json plot=$HERE/database.png ;;
  database_long) # the database part's 16x2 NBF trained on to 9,000 batches (resume appends to its curve and
                 # rewrites its eval.md; the 3,000-batch numbers stay in database.json)
    memrl supervised resume="$(ls -d runs/bench-bloom/*-bloom_database-n200-neural_bloom-memory_slots-16-word_size-2 | tail -1)" \
      max_batches=9000 progress=false ;;
  *) echo "usage: $0 class_based|uniform|database|database_long" >&2; exit 2 ;;
esac
# Keep each run's training curve and space table beside the results.
docs/results/keep_runs.sh runs/bench-bloom $HERE/runs metrics.csv eval.md

#!/bin/bash
# bAbI 10k qa2 (two supporting facts) with task.encoding=sentence and a 4-layer transformer_xl
# (dropout 0.2, the best setting of run_babi_sentence.sh: 7.8% in 40 minutes, training accuracy ~100%),
# now with the usual regularisation and model selection: AdamW weight decay, the learning
# rate halved on a validation plateau, and the test table from the best-validation weights.
# Two runs side by side, one thread each, on the 2-core CPU.
# Usage: docs/results/supervised/run_babi_qa2.sh <stage> [seconds per run]
#   stage 1: qa2 alone vs qa1+qa2 joint (more stories of people moving). Both were stopped by hand
#            (SIGINT) at ~1,010 s: patience 10 had already cut the rate to 1.25e-4 / 6.25e-5 and
#            validation error was flat; then evaluated with the best-validation weights:
#              memrl eval checkpoint=<run> eval.weights=best eval.batch_size=128
#   stage 2: qa2 alone: with task.permute_words (names, places, objects permuted per training story)
#            and a patience of 25 validations; without it, constant rate, dropout 0.3. (The copy of run
#            files at the end did not run: this script was edited while stage 2 ran; it was run by hand.)
#   stage 3: qa2 alone with task.permute_words, larger: d_model 128 / 8 heads / MLP 512, or 6 layers;
#            dropout 0.1 (the permutations regularise), patience 25. Run with 4800 seconds; both were
#            stopped by hand (SIGINT) at ~2,800 s: training error 2-3%, validation error 7-9% and not falling.
#   stage 4: stage 2's permutation run again with seed 1, and with seed 0 and a 20% validation split
#            (2,000 questions instead of 500: a less noisy best-validation choice). Run with 2000 seconds.
#   stage 5: stage 2's permutation run with an exponential moving average of the weights
#            (optimizer.ema_decay=0.999: validation, the best-weight choice and the test table all use the
#            average), seeds 0 and 1. Decided before running: each run's own end-of-training evaluation
#            (best-validation average) is its result; both seeds are reported. Run with 4200 seconds.
#   stage 6: stage 5 again with seeds 2 and 3 (decided after stage 5's results, to see whether its 4.7% /
#            5.4% are typical); the same rule: each run's own evaluation is its result. Run with 3600 seconds
#            (stage 5's runs made ~45,000 batches in 4,200 s, slowed by other work; these about as many).
#   stage 7: stage 5 with the one-word verbs permuted too, within their synonym groups ([went, moved,
#            journeyed, travelled], [got, grabbed, took], [dropped, discarded, left]; each training story
#            gets its own mapping, so its events keep their meaning), seeds 0 and 1. Decided before running:
#            this configuration counts as solving qa2 only if both seeds' declared errors are under 5%.
#            Run with 4200 seconds. Result: 5.1% and 5.3% declared (last averages 4.9 / 6.9%): not solved.
#   stage 8: stage 5 (names, places, objects permuted; moving average) with 6 layers instead of 4 (stage 3's
#            6-layer run, without the average and stopped by hand, was as good as the 4-layer ones: a deeper
#            stack for the two-hop let-go questions), seeds 0 and 1. Decided before running: solved only if
#            both seeds' declared errors are under 5%. Run with 4200 seconds.
#   stage 9: a different core: hopfield with chained reads (core.hops=4: MemN2N-style hops, each hop's query
#            the previous query plus its read) and learned age embeddings (MemN2N's temporal encoding), memory
#            of 64 steps, keys and values of 64; no word permutations, no moving average, no weight decay,
#            constant rate; 900 s; seeds 1 and 2. Two 600-s probes with seed 0 came first (run by hand, this
#            command with max_time_s=600 run_root=runs/probe-hop seed=0, name=hop4, and name=hop4-permute
#            with stage 5's task.permute_words): test error 1.9% and 1.0%. Decided before running stage 9:
#            solved only if both seeds' declared (best-validation) test errors are under 5%.
#   stage 10: stage 9 with stage 5's word permutations (names, places, objects; the hop4-permute probe's
#            configuration), seeds 1 and 2, 900 s. Decided after stage 9's seed 2 had stalled at ~24% validation
#            error with ~3% training error (seed 1: 3.2%) and before running this: solved only if both
#            seeds' declared test errors are under 5%.
#   Every stage was then also evaluated with its last weights:
#     memrl eval checkpoint=<run> eval.weights=last eval.batch_size=128 eval.out=<run>/eval_last
set -e
STAGE=${1:?usage: run_babi_qa2.sh <stage 1-10> [seconds per run]}
BUDGET=${2:-2700}
DATA=/work/shared/data/babi/tasks_1-20_v1-2
ROOT=runs/results-qa2
BABI="task=babi task.path=$DATA/en-10k task.fallback_path=$DATA/en task.encoding=sentence core=transformer_xl core.n_layers=4 core.dropout=0.2 optimizer.name=adam optimizer.learning_rate=1e-3 optimizer.weight_decay=0.1 optimizer.plateau.patience=10 eval.weights=best seed=0 threads=1 progress=false run_root=$ROOT max_batches=null max_time_s=$BUDGET batch_size=32 validation.interval_batches=200 validation.batch_size=128 eval.batch_size=128"
case $STAGE in
  1)
    memrl supervised $BABI name=qa2-txl4-wd0.1-plateau task.tasks=[2] &
    memrl supervised $BABI name=qa1qa2-txl4-wd0.1-plateau task.tasks=[1,2] &
    ;;
  2)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk]]"
    memrl supervised $BABI name=qa2-txl4-permute-plateau25 task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 &
    memrl supervised $BABI name=qa2-txl4-dropout0.3-constant task.tasks=[2] core.dropout=0.3 optimizer.plateau.patience=null &
    ;;
  3)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk]]"
    memrl supervised $BABI name=qa2-txl4-d128-permute task.tasks=[2] $PERMUTE core.d_model=128 core.n_heads=8 core.mlp_size=512 core.dropout=0.1 optimizer.plateau.patience=25 &
    memrl supervised $BABI name=qa2-txl6-permute task.tasks=[2] $PERMUTE core.n_layers=6 core.dropout=0.1 optimizer.plateau.patience=25 &
    ;;
  4)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk]]"
    memrl supervised ${BABI/seed=0/seed=1} name=qa2-txl4-permute-plateau25-seed1 task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 &
    memrl supervised $BABI name=qa2-txl4-permute-plateau25-val0.2 task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 task.validation_fraction=0.2 &
    ;;
  5)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk]]"
    memrl supervised $BABI name=qa2-txl4-permute-ema task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    memrl supervised ${BABI/seed=0/seed=1} name=qa2-txl4-permute-ema-seed1 task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    ;;
  6)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk]]"
    memrl supervised ${BABI/seed=0/seed=2} name=qa2-txl4-permute-ema-seed2 task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    memrl supervised ${BABI/seed=0/seed=3} name=qa2-txl4-permute-ema-seed3 task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    ;;
  7)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk],[went,moved,journeyed,travelled],[got,grabbed,took],[dropped,discarded,left]]"
    memrl supervised $BABI name=qa2-txl4-permute-verbs-ema task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    memrl supervised ${BABI/seed=0/seed=1} name=qa2-txl4-permute-verbs-ema-seed1 task.tasks=[2] $PERMUTE optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    ;;
  8)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk]]"
    memrl supervised $BABI name=qa2-txl6-permute-ema task.tasks=[2] $PERMUTE core.n_layers=6 optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    memrl supervised ${BABI/seed=0/seed=1} name=qa2-txl6-permute-ema-seed1 task.tasks=[2] $PERMUTE core.n_layers=6 optimizer.plateau.patience=25 optimizer.ema_decay=0.999 &
    ;;
  9)
    HOPFIELD="${BABI/core=transformer_xl core.n_layers=4 core.dropout=0.2/core=hopfield core.memory_size=64 core.key_size=64 core.value_size=64 core.hops=4 core.age_embedding=true}"
    HOPFIELD="${HOPFIELD/optimizer.weight_decay=0.1 optimizer.plateau.patience=10/optimizer.weight_decay=0 optimizer.plateau.patience=null}"
    memrl supervised ${HOPFIELD/seed=0/seed=1} name=qa2-hopfield-hop4-seed1 task.tasks=[2] &
    memrl supervised ${HOPFIELD/seed=0/seed=2} name=qa2-hopfield-hop4-seed2 task.tasks=[2] &
    ;;
  10)
    PERMUTE="task.permute_words=[[john,mary,sandra,daniel],[bathroom,bedroom,garden,hallway,kitchen,office],[apple,football,milk]]"
    HOPFIELD="${BABI/core=transformer_xl core.n_layers=4 core.dropout=0.2/core=hopfield core.memory_size=64 core.key_size=64 core.value_size=64 core.hops=4 core.age_embedding=true}"
    HOPFIELD="${HOPFIELD/optimizer.weight_decay=0.1 optimizer.plateau.patience=10/optimizer.weight_decay=0 optimizer.plateau.patience=null}"
    memrl supervised ${HOPFIELD/seed=0/seed=1} name=qa2-hopfield-hop4-permute-seed1 task.tasks=[2] $PERMUTE &
    memrl supervised ${HOPFIELD/seed=0/seed=2} name=qa2-hopfield-hop4-permute-seed2 task.tasks=[2] $PERMUTE &
    ;;
  *) echo "run_babi_qa2.sh: unknown stage $STAGE; use 1 to 10" >&2; exit 2 ;;
esac
wait
docs/results/keep_runs.sh $ROOT docs/results/supervised config.yaml metrics.csv eval.json eval.md

# Issue 29's variants of the train defaults, sourced by old_vs_new.sh (to run them) and old_vs_new_report.sh
# (to pool their sweeps). variant_changes NAME prints the train overrides of variant NAME, one per line.
# Each variant is spelled out against the current configs/train.yaml, so a variant keeps meaning what it ran
# as when the defaults move: "new" is issue 29's first defaults (decorrelation, PopArt, the advantage over
# PopArt's sigma, entropy_cost 0.01); advrms-entropy0.025 (the advantage over its own RMS) is train.yaml's defaults now.
VARIANT_NAMES="old new decorrelation-only popart-only baseline0.1 entropy0.03 nopopart-entropy0.003 advrms-entropy0.025 advrms-entropy0.01 advrms-entropy0.025to0"
variant_changes() {
  local sigma=learner.loss.advantage_normalisation=sigma
  case $1 in
    new) printf '%s\n' $sigma learner.loss.entropy_cost=0.01 ;;
    old) printf '%s\n' actors.decorrelate_steps=0 learner.loss.value_normalisation=none $sigma learner.loss.entropy_cost=0.01 ;;
    decorrelation-only) printf '%s\n' learner.loss.value_normalisation=none $sigma learner.loss.entropy_cost=0.01 ;;
    popart-only) printf '%s\n' actors.decorrelate_steps=0 $sigma learner.loss.entropy_cost=0.01 ;;
    baseline0.1) printf '%s\n' learner.loss.baseline_cost=0.1 $sigma learner.loss.entropy_cost=0.01 ;;  # a fifth of the value loss
    entropy0.03) printf '%s\n' $sigma learner.loss.entropy_cost=0.03 ;;  # three times the entropy bonus
    nopopart-entropy0.003) printf '%s\n' learner.loss.value_normalisation=none $sigma learner.loss.entropy_cost=0.003 ;;
    # the advantage divided by its own running RMS instead of PopArt's sigma
    advrms-entropy0.025) printf '%s\n' learner.loss.advantage_normalisation=rms learner.loss.entropy_cost=0.025 ;;
    advrms-entropy0.01) printf '%s\n' learner.loss.advantage_normalisation=rms learner.loss.entropy_cost=0.01 ;;
    # the same with the bonus falling linearly from 0.025 at frame 0 to 0 at total_frames
    advrms-entropy0.025to0) printf '%s\n' learner.loss.advantage_normalisation=rms learner.loss.entropy_cost=0.025 learner.loss.entropy_cost_final=0 ;;
    *) echo "unknown variant $1 (known: $VARIANT_NAMES)" >&2; return 2 ;;
  esac
}

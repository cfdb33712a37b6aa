# Issue 29's variants of the train defaults, sourced by old_vs_new.sh (to run them) and old_vs_new_report.sh
# (to pool their sweeps). variant_changes NAME prints the train overrides of variant NAME, one per line.
VARIANT_NAMES="old new decorrelation-only popart-only baseline0.1 entropy0.03 nopopart-entropy0.003 advrms-entropy0.025"
variant_changes() {
  case $1 in
    new) ;;  # the defaults of configs/train.yaml
    old) printf '%s\n' actors.decorrelate_steps=0 learner.loss.value_normalisation=none ;;  # before issue 29
    decorrelation-only) echo learner.loss.value_normalisation=none ;;
    popart-only) echo actors.decorrelate_steps=0 ;;
    baseline0.1) echo learner.loss.baseline_cost=0.1 ;;  # the new defaults with a fifth of the value loss
    entropy0.03) echo learner.loss.entropy_cost=0.03 ;;  # the new defaults with three times the entropy bonus
    nopopart-entropy0.003) printf '%s\n' learner.loss.value_normalisation=none learner.loss.entropy_cost=0.003 ;;
    # the new defaults with the advantage divided by its own running RMS instead of PopArt's sigma
    advrms-entropy0.025) printf '%s\n' learner.loss.advantage_normalisation=rms learner.loss.entropy_cost=0.025 ;;
    *) echo "unknown variant $1 (known: $VARIANT_NAMES)" >&2; return 2 ;;
  esac
}

# Sourced by the weather ablation scripts (ablations_s5/run.sh, seeds/run.sh, seeds/forecasts.sh): the one
# forecast they all score, 8 members, 6 leads, Heun 12 steps, no assimilation example, no maps, then the
# full-field scores of ablations_s5/score_full_field.py; the log goes to OUT.log, the times to stdout.
#   forecast_and_score OUT CHECKPOINT SPLIT [OPTION=VALUE ...]     (e.g. seed=2, inits=...)
forecast_and_score() {
    local out=$1 checkpoint=$2 split=$3
    echo "$(date -u +%H:%M:%S) forecast $(basename $out) ${*:4:1} start"
    .venv/bin/python -m sciffusion_domains.weather.forecast checkpoint=$checkpoint out_dir=$out split=$split "${@:4}" \
        members=8 leads=6 steps=12 observations=0 maps=false > $out.log 2>&1
    .venv/bin/python experiments/weather/ablations_s5/score_full_field.py $checkpoint $out >> $out.log 2>&1
    echo "$(date -u +%H:%M:%S) forecast $(basename $out) done"
}

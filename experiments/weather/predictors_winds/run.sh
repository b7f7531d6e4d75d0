#!/usr/bin/env bash
# The 10 m winds as conditioning-only predictors (hadisst_anomaly_dropout_winds): train with the
# seed and steps of hadisst_anomaly_dropout, then forecast the validation months (the same 42
# initial months as ablations_s5) and the test years (the same 54), 8 members, 6 leads, Heun 12
# steps, and score them as full fields against the baselines (ablations_s5/score_full_field.py).
#   OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nohup nice -n 10 bash experiments/weather/predictors_winds/run.sh \
#       > experiments/weather/predictors_winds/run.log 2>&1 &
set -eu
D=experiments/weather/predictors_winds
NAME=hadisst_anomaly_dropout_winds
RUN=experiments/weather/$NAME
INITS=$(cat experiments/weather/ablations_s5/val_inits.txt)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
echo "$(date -u +%H:%M:%S) train $NAME start"
mkdir -p $RUN
.venv/bin/python -m sciffusion.cli.train experiment=$NAME hydra.run.dir=$RUN train.log_every=10 "$@" > $RUN/train.log 2>&1
echo "$(date -u +%H:%M:%S) train $NAME done"
forecast() {  # forecast SPLIT [inits=...]
    local out=$D/${NAME}_$1
    echo "$(date -u +%H:%M:%S) forecast $1 start"
    .venv/bin/python -m sciffusion_domains.weather.forecast checkpoint=$RUN/checkpoints/last.ckpt out_dir=$out \
        split=$1 "${@:2}" members=8 leads=6 steps=12 observations=0 maps=false > $out.log 2>&1
    .venv/bin/python experiments/weather/ablations_s5/score_full_field.py $RUN/checkpoints/last.ckpt $out >> $out.log 2>&1
    echo "$(date -u +%H:%M:%S) forecast $1 done"
}
forecast val "inits=$INITS"
forecast test

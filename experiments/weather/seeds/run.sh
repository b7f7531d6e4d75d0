#!/usr/bin/env bash
# Session 9: hadisst_anomaly_dropout with other training seeds, one process at a time (training,
# then its validation and test forecasts, then the next seed), forecasts exactly as
# ablations_s5/run.sh's `forecast` (members=8 leads=6 steps=12 observations=0 maps=false, full-field scores).
#   OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nohup nice -n 5 bash experiments/weather/seeds/run.sh 1 2 > experiments/weather/seeds/run.log 2>&1 &
# Session 9 stopped it after seed 2's training had started: its forecasts use sampling seed 0, shared with
# seed 0's forecasts; forecasts.sh forecasts each training seed with its own sampling seed (README).
set -u
source experiments/weather/forecast_and_score.sh
D=experiments/weather/seeds
INITS=$(cat experiments/weather/ablations_s5/val_inits.txt)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
for seed in "$@"; do
    name=hadisst_anomaly_dropout_seed$seed
    run=$D/$name
    echo "$(date -u +%H:%M:%S) train $name start"
    mkdir -p $run
    .venv/bin/python -m sciffusion.cli.train experiment=hadisst_anomaly_dropout train.seed=$seed \
        hydra.run.dir=$run train.log_every=10 > $run/train.log 2>&1
    echo "$(date -u +%H:%M:%S) train $name done"
    forecast_and_score $D/${name}_val $run/checkpoints/last.ckpt val "inits=$INITS"
    forecast_and_score $D/${name}_test $run/checkpoints/last.ckpt test
done

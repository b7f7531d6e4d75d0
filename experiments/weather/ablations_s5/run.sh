#!/usr/bin/env bash
# The session-5 ablations, one training at a time; each finished model's validation forecast
# (2013-01..2016-06 initial months, 8 members, 6 leads) runs next to the following training.
#   OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nohup bash experiments/weather/ablations_s5/run.sh hadisst_anomaly ... &
set -u
source experiments/weather/forecast_and_score.sh
D=experiments/weather/ablations_s5
INITS=$(cat $D/val_inits.txt)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
for name in "$@"; do
    run=experiments/weather/$name
    echo "$(date -u +%H:%M:%S) train $name start"
    mkdir -p $run
    .venv/bin/python -m sciffusion.cli.train experiment=$name hydra.run.dir=$run train.log_every=10 \
        > $run/train.log 2>&1
    echo "$(date -u +%H:%M:%S) train $name done"
    forecast_and_score $D/${name}_val $run/checkpoints/last.ckpt val "inits=$INITS" &
done
wait

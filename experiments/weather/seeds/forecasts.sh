#!/usr/bin/env bash
# Session 9, second part: forecasts of the trained seeds with their OWN sampling noise. forecast.py
# seeds member m's prior noise by (seed, initial month, m, lead), so two checkpoints forecast with the
# default seed=0 start member m from the same noise, and their members m correlate 0.88-0.95 (README).
# Same settings as ablations_s5/run.sh's `forecast` otherwise (members=8 leads=6 steps=12
# observations=0 maps=false, then score_full_field.py).
#   OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nohup nice -n 5 bash experiments/weather/seeds/forecasts.sh [PID] >> experiments/weather/seeds/run.log 2>&1 &
set -u
source experiments/weather/forecast_and_score.sh
D=experiments/weather/seeds
INITS=$(cat experiments/weather/ablations_s5/val_inits.txt)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
if [ "${1:-}" != seed1 ]; then  # seed 2 (optionally after waiting for its training, process $1, to end)
    if [ $# -gt 0 ]; then
        while kill -0 "$1" 2>/dev/null; do sleep 15; done
        echo "$(date -u +%H:%M:%S) train hadisst_anomaly_dropout_seed2 done (process $1 ended)"
    fi
    C2=$D/hadisst_anomaly_dropout_seed2/checkpoints/last.ckpt
    forecast_and_score $D/hadisst_anomaly_dropout_seed2_val $C2 val seed=2 "inits=$INITS"
    forecast_and_score $D/hadisst_anomaly_dropout_seed2_test $C2 test seed=2
fi
# `forecasts.sh seed1`: only this part (run so in session 9, after the first call was stopped here)
C1=$D/hadisst_anomaly_dropout_seed1/checkpoints/last.ckpt
forecast_and_score $D/hadisst_anomaly_dropout_seed1_noise1_val $C1 val seed=1 "inits=$INITS"
forecast_and_score $D/hadisst_anomaly_dropout_seed1_noise1_test $C1 test seed=1

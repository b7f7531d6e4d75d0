#!/usr/bin/env bash
# run.sh's last two steps, started by hand when the shared cores slowed the validation forecast
# (about a tenth of a core each): the test forecast runs next to it instead of after it, and the
# validation forecast's full-field scores follow it. Same commands and options as run.sh.
#   OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nohup nice -n 10 bash experiments/weather/predictors_winds/finish.sh VAL_PID &
set -u
D=experiments/weather/predictors_winds
RUN=experiments/weather/hadisst_anomaly_dropout_winds
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
(
    echo "$(date -u +%H:%M:%S) forecast test start"
    .venv/bin/python -m sciffusion_domains.weather.forecast checkpoint=$RUN/checkpoints/last.ckpt \
        out_dir=$D/hadisst_anomaly_dropout_winds_test split=test members=8 leads=6 steps=12 observations=0 maps=false \
        > $D/hadisst_anomaly_dropout_winds_test.log 2>&1
    .venv/bin/python experiments/weather/ablations_s5/score_full_field.py $RUN/checkpoints/last.ckpt \
        $D/hadisst_anomaly_dropout_winds_test >> $D/hadisst_anomaly_dropout_winds_test.log 2>&1
    echo "$(date -u +%H:%M:%S) forecast test done"
) &
while kill -0 "$1" 2>/dev/null; do sleep 10; done
echo "$(date -u +%H:%M:%S) forecast val done (sampling)"
.venv/bin/python experiments/weather/ablations_s5/score_full_field.py $RUN/checkpoints/last.ckpt \
    $D/hadisst_anomaly_dropout_winds_val >> $D/hadisst_anomaly_dropout_winds_val.log 2>&1
echo "$(date -u +%H:%M:%S) forecast val scored"
wait

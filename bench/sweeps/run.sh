#!/usr/bin/env bash
# Run a job list, PARALLEL jobs at a time, keeping each job's RESULT line (and any error):
#     bash bench/sweeps/run.sh bench/sweeps/jobs1.txt 14 | tee bench/results/sweeps/run1.txt
# Each line of a job list is: SCRIPT NAME 'JSON-VARIANT' EPOCHS (plain_sweep.py: SCRIPT NAME SEED EPOCHS).
# MNIST (and Fashion-MNIST) are read from DEEPWORKS_SHARED_DATA (default ../shared/data).
cd "$(dirname "$0")/../.." || exit 1
export DEEPWORKS_SHARED_DATA=${DEEPWORKS_SHARED_DATA:-$PWD/../shared/data} PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"
xargs -P "$2" -L 1 bash -c 'python3 bench/sweeps/$0 "$1" "$2" "$3" 2>&1 | grep -E "RESULT|Error|error"' < "$1"

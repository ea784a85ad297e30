"""Train the mmgan model family with Ray Train. Example (local, 2 CPU workers):

    python jobs/train_mmgan.py --data data/phantom.zarr --preset tiny --epochs 5 --workers 2

Under a cluster (a head with token auth, see README "Submitting to a Ray head"):
`RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=~/.ray/auth_token ray job submit --address http://HEAD:8265 -- python jobs/train_mmgan.py --data s3://... --workers 8 --gpus-per-worker 1`.
Flags: `python jobs/train_mmgan.py --help`; README section "Training with Ray Train".
"""

import sys

from raysys.train.cli import main

if __name__ == "__main__":
    sys.exit(main("mmgan"))

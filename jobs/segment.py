"""Train, register and score brain-tumour segmenters under missing modalities (Ouyang et al. Table 2).

    python jobs/segment.py --data data/phantom.zarr --input all --preset cpu --workers 1 --out results/segment

Input modes: fused_anatomy (--encoder, default models:/disentangle@champion), standard_zero,
standard_avg, mmhvae_impute (--synthesiser, default models:/mmhvae@champion), or all. Writes
OUT/dice.csv and OUT/table.md and logs both to MLflow. Flags: `python jobs/segment.py --help`.

Segment new NIfTI subjects with the champion (labels 0/1/2/4 on each subject's own grid):

    python jobs/segment.py --predict nifti/ --model models:/segmenter@champion --out segmentations/
"""

import sys

from raysys.segment.cli import main

if __name__ == "__main__":
    sys.exit(main())

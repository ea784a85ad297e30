"""Run one of the papers' experiments as reproducible jobs and check their claims.

    python jobs/reproduce.py ouyang-table1 --budget cpu --data data/phantom.zarr --out docs/reports/ouyang-table1
    python jobs/reproduce.py mmhvae-table1 --budget smoke --seeds 1 --data STORE --tracking-uri URI --out DIR

Experiments: ouyang-table1, mmhvae-table1, mmhvae-ablation. Budgets: smoke, cpu, gpu.
Writes DIR/report.md (the papers' tables and the claim checks), figures/, scores.csv, claims.csv,
all also logged to one MLflow parent run with a child run per row x seed. Flags: --help.
"""

import sys

from raysys.reproduce.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""NIfTI -> Zarr v3 slice stores, and the embedded MNI152 phantom cohort."""

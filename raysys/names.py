"""Names shared across raysys: the reported objective, flat-key prefixes and MLflow tag keys.

One place, so a metric, a param prefix or a tag is spelled once (the loop, Tune, the registry,
the evaluation and the tests all import it from here).
"""

from __future__ import annotations

# Metrics reported every epoch (raysys.train.fit) and read by Tune, ASHA and the champion rule.
OBJECTIVE = "objective"  # = val/<family.objective>
EPOCH = "epoch"
TRAIN_PREFIX = "train/"  # train/<loss name>
VAL_PREFIX = "val/"  # val/<metric name>

# Flat config keys: {"train.<field>": ..., "model.<field>": ...}.
TRAIN_KEY = "train."
MODEL_KEY = "model."
CONFIG_PREFIXES = (MODEL_KEY, TRAIN_KEY)

# MLflow run tags.
TAG_RUN_NAME = "raysys.run_name"
TAG_FAMILY = "raysys.family"
TAG_PRESET = "raysys.preset"
TAG_STORE = "raysys.store_id"
TAG_ROLE = "raysys.role"
TAG_STUDY = "raysys.study"
TAG_TRIAL = "raysys.trial_id"
TAG_SPACE = "raysys.space."  # prefix: space-internal choices of a trial (e.g. raysys.space.gan)
TAG_BEST_TRIAL = "raysys.best_trial"
TAG_STUDY_OBJECTIVES = "raysys.study_objectives"
TAG_ERROR = "raysys.error"
TAG_STOPPED = "raysys.stopped"
TAG_STOPPED_EPOCH = "raysys.stopped_epoch"
TAG_CLOSED_BY = "raysys.closed_by"
TAG_LEFT_OPEN = "raysys.left_open"  # why a run was ended by a later --resume rather than its own job
TAG_FIGURES_ERROR = "raysys.figures_error"  # why the end-of-run figures are missing (never fails a run)

# Evaluation runs (raysys.evaluate), besides TAG_FAMILY and TAG_STORE.
TAG_MODEL_URI = "raysys.model_uri"
TAG_MODEL_NAME = "raysys.model_name"
TAG_MODEL_VERSION = "raysys.model_version"
TAG_SPLIT = "raysys.split"
TAG_FOLD = "raysys.fold"
SPLIT_SCORE_TAG = "raysys.{split}.{key}"  # model-version tags of an evaluation: raysys.test.ssim_synthesis_mean, ...

# Segmentation runs (jobs/segment.py): the row of the table a training run or registered version is.
TAG_INPUT_MODE = "raysys.input_mode"
TAG_HIDE_PROB = "raysys.hide_prob"
TAG_VARIANT = "raysys.variant"

# Registered model version tags (the champion rule).
TAG_OBJECTIVE = "raysys.objective"
TAG_OBJECTIVE_VALUE = "raysys.objective_value"
TAG_OBJECTIVE_MODE = "raysys.objective_mode"
TAG_CHAMPION = "raysys.champion"
TAG_CHAMPION_DECISION = "raysys.champion_decision"
TAG_REGISTERED_VERSION = "raysys.registered_version"
TAG_CHECKPOINT = "raysys.checkpoint"  # a registered version's source checkpoint (path or URL)

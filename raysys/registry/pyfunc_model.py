"""MLflow "model from code" entry: the pyfunc model object of a raysys model directory."""

import mlflow.models

from raysys.registry.pyfunc import RaysysModel

mlflow.models.set_model(RaysysModel())

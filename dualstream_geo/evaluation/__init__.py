"""Scene-level accuracy assessment of a class map against a reference raster."""

from .assess import Assessment, assess
from .confusion import Accuracy
from .report import evaluate

__all__ = ["Accuracy", "Assessment", "assess", "evaluate"]

"""Why a result matches: heatmaps of the parts of a query and a result that agree.

``SearchEngine.explain`` / ``explain_ids`` are the entry points; :class:`Explainer` does the
work (decode, feature maps, cache), heatmaps.py the arithmetic, overlays.py the pictures.
"""

from lookalike.embedders.spatial import NotExplainableError
from lookalike.explain.explainer import Explainer
from lookalike.explain.explanation import Explanation

__all__ = ["Explainer", "Explanation", "NotExplainableError"]

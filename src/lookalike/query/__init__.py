"""The query pipeline: decode -> embed -> candidates -> re-rank -> filter, sort -> matches."""

from lookalike.query.candidates import CandidateSearch
from lookalike.query.decoding import DecodedQueries, Query, decode_queries
from lookalike.query.embedding import embed_pixels
from lookalike.query.match_builder import MatchBuilder
from lookalike.query.pipeline import QueryPipeline
from lookalike.query.reranking import RerankContext, Reranker, Shortlist, default_rerankers

__all__ = [
    "CandidateSearch",
    "DecodedQueries",
    "MatchBuilder",
    "Query",
    "QueryPipeline",
    "RerankContext",
    "Reranker",
    "Shortlist",
    "decode_queries",
    "default_rerankers",
    "embed_pixels",
]

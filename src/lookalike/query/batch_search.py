"""Searching several independent requests at once, as a server's micro-batching does.

Every request's queries go through the network together (one batch per image shape), then the
requests whose options are equal are searched together (one candidate search over their
vectors, which reads the stored vectors once instead of once per request); the stages after it
treat each query on its own, so each request gets what it would get searched alone. A failure
is isolated: a group that fails is searched again one request at a time, and a failed network
batch is redone one request at a time, so one bad request never fails the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lookalike.matches import SearchResult
from lookalike.query.decoding import DecodedQueries
from lookalike.query.pipeline import QueryPipeline
from lookalike.search_options import SearchOptions


@dataclass(frozen=True)
class SearchRequest:
    """One request's decoded queries and what it asks for."""

    decoded: DecodedQueries
    options: SearchOptions

    def __len__(self) -> int:
        return len(self.decoded)


#: A request's answer: its results, one per query, or what went wrong.
Outcome = list[SearchResult] | Exception


def search_requests(pipeline: QueryPipeline, requests: Sequence[SearchRequest]) -> list[Outcome]:
    """Each request's results (or error), in order, as if each were searched alone."""
    try:
        vectors = pipeline.embed(DecodedQueries.join([r.decoded for r in requests]))
    except Exception as exc:
        if len(requests) == 1:
            return [exc]
        return [_alone(pipeline, r) for r in requests]
    starts = np.cumsum([0, *(len(r) for r in requests)])
    rows = [vectors[starts[i] : starts[i + 1]] for i in range(len(requests))]
    outcomes: list[Outcome | None] = [None] * len(requests)
    for members in _groups(requests):
        try:
            results = pipeline.search_embedded(
                DecodedQueries.join([requests[m].decoded for m in members]),
                np.concatenate([rows[m] for m in members]),
                requests[members[0]].options,
            )
        except Exception as exc:
            if len(members) == 1:
                outcomes[members[0]] = exc
                continue
            for m in members:
                outcomes[m] = _searched(pipeline, requests[m], rows[m])
            continue
        position = 0
        for m in members:
            outcomes[m] = results[position : position + len(requests[m])]
            position += len(requests[m])
    return [o if o is not None else RuntimeError("request left unanswered") for o in outcomes]


def _groups(requests: Sequence[SearchRequest]) -> list[list[int]]:
    """Positions of the requests, grouped by equal options (first-come order)."""
    groups: list[tuple[SearchOptions, list[int]]] = []
    for position, request in enumerate(requests):
        for options, members in groups:
            if options == request.options:
                members.append(position)
                break
        else:
            groups.append((request.options, [position]))
    return [members for _, members in groups]


def _searched(
    pipeline: QueryPipeline, request: SearchRequest, vectors: npt.NDArray[np.float32]
) -> Outcome:
    try:
        return pipeline.search_embedded(request.decoded, vectors, request.options)
    except Exception as exc:
        return exc


def _alone(pipeline: QueryPipeline, request: SearchRequest) -> Outcome:
    try:
        return pipeline.search_decoded(request.decoded, request.options)
    except Exception as exc:
        return exc


__all__ = ["Outcome", "SearchRequest", "search_requests"]

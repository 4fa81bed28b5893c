"""Searching several independent requests at once, as a server's micro-batching does.

Every request's queries go through the network together (one batch per image shape), then the
requests whose options are equal are searched together (one candidate search over their
vectors, which reads the stored vectors once instead of once per request); the stages after it
treat each query on its own, so each request gets what it would get searched alone. The network
may run outside a lock that the searching holds (``searching``), so that several batches can be
in the network at once while the index is read by one at a time. A failure is isolated: a group
that fails is searched again one request at a time, and a failed network batch is redone one
request at a time, so one bad request never fails the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
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


#: Decoded queries to vectors (the pipeline's own embedder, or another instance of it).
Embed = Callable[[DecodedQueries], npt.NDArray[np.float32]]


def search_requests(
    pipeline: QueryPipeline,
    requests: Sequence[SearchRequest],
    *,
    embed: Embed | None = None,
    searching: AbstractContextManager[object] | None = None,
) -> list[Outcome]:
    """Each request's results (or error), in order, as if each were searched alone. ``embed``
    (default: the pipeline's) runs first; the stages after the network run inside
    ``searching`` (a lock, say)."""
    embed = embed or pipeline.embed
    try:
        vectors = embed(DecodedQueries.join([r.decoded for r in requests]))
    except Exception as exc:
        if len(requests) == 1:
            return [exc]
        return [_alone(pipeline, r, embed, searching) for r in requests]
    starts = np.cumsum([0, *(len(r) for r in requests)])
    rows = [vectors[starts[i] : starts[i + 1]] for i in range(len(requests))]
    with searching or nullcontext():
        return _search_groups(pipeline, requests, rows)


def _search_groups(
    pipeline: QueryPipeline,
    requests: Sequence[SearchRequest],
    rows: list[npt.NDArray[np.float32]],
) -> list[Outcome]:
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


def _alone(
    pipeline: QueryPipeline,
    request: SearchRequest,
    embed: Embed,
    searching: AbstractContextManager[object] | None,
) -> Outcome:
    try:
        vectors = embed(request.decoded)
        with searching or nullcontext():
            return pipeline.search_embedded(request.decoded, vectors, request.options)
    except Exception as exc:
        return exc


__all__ = ["Embed", "Outcome", "SearchRequest", "search_requests"]

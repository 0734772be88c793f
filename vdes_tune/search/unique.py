"""A searcher that never spends a trial on a point already run.

TPE over a small categorical space proposes the same point again and again (the benchmark's TPE spent 4
trials on 2 configurations); neither Optuna's TPESampler nor Ray's OptunaSearch avoids it. This wrapper
asks the inner searcher again instead: a repeated point is told its known result (or, while the first run
of it is still going, that it failed) so the sampler learns and moves on. After `attempts` repeats in a
row it takes the first untried point of a finite space (told to the sampler once its result is in), and it
ends the search once every point of a finite space has been run.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from vdes_tune.search.race import point_key

ATTEMPTS = 50


class PickledSearcher(Searcher):
    """A searcher wrapper whose whole state, the wrapped searcher included, Tune saves and restores by pickle
    (what lets a killed search resume where it was)."""

    def save(self, checkpoint_path: str) -> None:
        """Save this wrapper and its inner searcher."""
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        """Restore what `save` wrote."""
        import pickle

        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class UniquePoints(PickledSearcher):
    """Wraps a searcher so that each point is suggested at most once."""

    def __init__(self, inner: Searcher, finite_points: list[dict[str, Any]] | None = None,
                 attempts: int = ATTEMPTS) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.finite_points, self.attempts = inner, finite_points, attempts
        self.results: dict[tuple, dict[str, Any] | None] = {}  # point -> final result (None while running)
        self.trial_points: dict[str, tuple] = {}
        self.inner_ids: dict[str, str] = {}  # trial id -> the id the inner searcher knows its point by
        self.direct: set[str] = set()  # trials given a point the inner searcher did not suggest
        self.skipped = 0  # repeats the inner searcher proposed and this wrapper answered instead

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Forward to the inner searcher."""
        ok = self.inner.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.inner.metric, self.inner.mode
        return ok

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The inner searcher's next point that has not been run; FINISHED when a finite space is exhausted."""
        if self.finite_points is not None and len(self.results) >= len(self.finite_points):
            return Searcher.FINISHED
        for attempt in range(self.attempts):
            probe = trial_id if attempt == 0 else f"{trial_id}-repeat{attempt}"
            config = self.inner.suggest(probe)
            if config is None or config == Searcher.FINISHED:
                return config
            key = point_key(config)
            if key not in self.results:
                self.inner_ids[trial_id] = probe
                self.results[key], self.trial_points[trial_id] = None, key
                return config
            self.skipped += 1
            known = self.results[key]
            self.inner.on_trial_complete(probe, result=known, error=known is None)
        untried = next((p for p in self.finite_points or [] if point_key(p) not in self.results), None)
        if untried is None:
            return Searcher.FINISHED if self.finite_points is not None else None
        key = point_key(untried)
        self.results[key], self.trial_points[trial_id] = None, key
        self.direct.add(trial_id)
        return dict(untried)

    def _inner_id(self, trial_id: str) -> str:
        return self.inner_ids.get(trial_id, trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward intermediate results (not for points the inner searcher did not suggest)."""
        if trial_id not in self.direct:
            self.inner.on_trial_result(self._inner_id(trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Remember the point's result and tell the inner searcher."""
        key = self.trial_points.get(trial_id)
        if key is not None:
            self.results[key] = None if error or not result else {self.metric: result.get(self.metric)}
        if trial_id in self.direct:
            if result and not error and result.get(self.metric) is not None:
                config = dict(key or ())
                self.inner.add_evaluated_point(config, result[self.metric])
            return
        self.inner.on_trial_complete(self._inner_id(trial_id), result=result, error=error)

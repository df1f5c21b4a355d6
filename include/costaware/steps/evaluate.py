"""Champion vs challenger on the same held-out window: load, score, and ask ``decide.evaluation``.

The verdict itself (guardrails, paired bootstrap, the "wins" rule) is the pure function
``costaware.decide.evaluation.judge``; this step only reads the window and the registry.
"""

from __future__ import annotations

import logging
from typing import Any

from costaware.faults import step_points
from costaware.steps.context import StepContext
from costaware.steps.train import _labelled_windows

log = logging.getLogger(__name__)


@step_points
def evaluate_challenger(ctx: StepContext, version: str) -> dict[str, Any]:
    """Champion vs challenger on the same held-out window: paired bootstrap + guardrails."""
    from costaware.decide.evaluation import judge
    from costaware.models.algorithms import check_frame, encode_target
    from costaware.models.scoring import predict_scores

    cfg = ctx.cfg
    labelled, windows = _labelled_windows(ctx)
    hold = labelled[labelled["batch_id"].isin(windows.holdout_batches)]
    check_frame(hold, cfg, "held-out")  # DataError: no retry fixes the data
    y = encode_target(hold[cfg.target.name], cfg)
    # Scores by kind: P(positive), class probabilities (n, K), or predicted values.
    chall = predict_scores(ctx.registry.load(ctx.model, version), hold, cfg.feature_names)
    champ_v = ctx.champion()
    champ = (
        None
        if champ_v is None
        else predict_scores(ctx.registry.load(ctx.model, champ_v), hold, cfg.feature_names)
    )
    verdict = judge(y, champ, chall, cfg.metric, cfg.evaluation)
    log.info(
        "champion v%s vs challenger v%s on %s:\n%s",
        champ_v,
        version,
        windows.holdout_batches,
        verdict.table(),
    )
    return {
        "challenger_version": version,
        "champion_version": champ_v,
        "holdout_batches": windows.holdout_batches,
        **verdict.as_dict(),
    }

"""Why a request of a round was not served, as failed request traces: a budget that ran out, a
session ended by a failed turn. Shared by the server's load rounds and the in-process batchers."""

from __future__ import annotations

from pytest_inferlab.ground.trace import Request, RequestTrace

# Budget-cut requests are failures under load, not missing data: they count against goodput.
BUDGET_ERROR = "not served: the round's time budget of {budget:.0f} s ran out (the engine is saturated at this load)"
SESSION_ENDED = "not sent: turn {turn} of its session failed, which ended the session"


def unsent_turns(request: Request, when: float, reason: str) -> list[RequestTrace]:
    """Failures for the turns of ``request``'s session that will now never be sent."""
    return [RequestTrace(index, when, (), (), 0, ok=False, error=reason) for index in request.turns_left()]

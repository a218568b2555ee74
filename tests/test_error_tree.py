"""Every exception the project raises on purpose sits in the tree drawn in
ivr/errors.py: one ``except IvrError`` (or ``AgiError``) catches it."""

import pytest

from ivr.agi.protocol import AgiParseError, parse_response
from ivr.audit.chain import AuditContended, StaleState
from ivr.errors import AgiError, IvrError
from ivr.flow.interpreter import MenuExhausted, StepBudgetExceeded
from ivr.redisdb.durable import NotReplicated


@pytest.mark.parametrize("exc", [AuditContended, StaleState, NotReplicated, MenuExhausted, StepBudgetExceeded])
def test_project_errors_are_ivr_errors(exc):
    assert issubclass(exc, IvrError)


def test_a_malformed_agi_answer_is_an_agi_error_and_still_a_value_error():
    with pytest.raises(AgiError):
        parse_response("garbage")
    assert issubclass(AgiParseError, ValueError)     # a step failure, as before


def test_every_error_class_is_drawn_in_the_tree():
    import ivr.errors
    tree = ivr.errors.__doc__
    for exc in (AuditContended, StaleState, NotReplicated, MenuExhausted, StepBudgetExceeded, AgiParseError):
        assert f" {exc.__name__} " in tree

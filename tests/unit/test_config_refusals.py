"""Settings that would be ignored silently are refused in one line naming the field, its value and what works."""

import pytest

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from tests.helpers import tiny_raw

RATES = {"strong": 1.0, "medium": 0.5, "weak": 0.25}


@pytest.mark.parametrize(
    "sections, expected",
    [
        (
            {"strategy": {"name": "heterofl", "rates": RATES, "rate_by": "budget"}},
            "strategy.rate_by = 'budget': needs devices.deadline in seconds (a device's budget is the work that fits "
            "before it); set devices.deadline, or use rate_by: tier",
        ),
        (
            {"devices": {"count": 6, "per_round": 4, "round_ends": "deadline", "deadline": 5.0}},
            "devices.round_ends = 'deadline': devices.stragglers = 'wait' waits for every device, so rounds would end at "
            "the last finish; use stragglers drop or partial, or round_ends: last_finish",
        ),
        (
            {"devices": {"count": 6, "per_round": 4, "round_ends": "deadline"}},
            "devices.round_ends = 'deadline': devices.stragglers = 'wait' waits for every device",
        ),
    ],
)
def test_settings_that_would_be_ignored_are_refused(tmp_path, sections, expected):
    with pytest.raises(UserError) as err:
        build_config(tiny_raw(tmp_path, **sections))
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "sections",
    [
        {
            "strategy": {"name": "heterofl", "rates": RATES, "rate_by": "budget"},
            "devices": {"count": 6, "per_round": 4, "deadline": 5.0},
        },
        {"devices": {"count": 6, "per_round": 4, "round_ends": "deadline", "deadline": 5.0, "stragglers": "partial"}},
        {"devices": {"count": 6, "per_round": 4, "round_ends": "deadline", "deadline": 5.0, "stragglers": "drop"}},
    ],
)
def test_the_working_combinations_still_validate(tmp_path, sections):
    build_config(tiny_raw(tmp_path, **sections))

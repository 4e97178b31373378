"""A rank option above the model's width is refused before any parameter exists (a rank of 100,000 on
a 384-wide encoder asked for 1.8B parameters and was killed for memory, not refused)."""

from __future__ import annotations

import pytest

from slopeft.errors import ConfigError
from slopeft.methods import METHODS
from slopeft.methods.base import RANK_OPTIONS, MethodContext

RANKED = {
    name: [option for option in RANK_OPTIONS if isinstance(getattr(METHODS.get(name)().config, option, None), int)]
    for name in METHODS.names()
}
RANKED = {name: options for name, options in RANKED.items() if options}
ORDERED = {
    "adalora": lambda v: {"init_r": v, "target_r": 8},
    "increlora": lambda v: {"init_r": 1, "target_rank": v, "max_rank": v},
}


def test_every_low_rank_method_has_its_rank_checked():
    assert set(RANKED) >= {"lora", "dora", "adalora", "increlora", "mola", "qa-lora", "qlora"}


@pytest.mark.parametrize("name", sorted(RANKED))
def test_a_rank_above_the_width_is_refused_and_the_width_itself_is_accepted(name):
    context = MethodContext("encoder", "bert", ["classifier"], "SEQ_CLS", width=16)
    def ranks(value: int) -> dict[str, int]:
        # AdaLoRA prunes init_r down to a smaller target_r; IncreLoRA grows init_r up to target_rank.
        return ORDERED.get(name, lambda v: dict.fromkeys(RANKED[name], v))(value)

    too_wide = ranks(17)
    with pytest.raises(ConfigError, match=rf"{name}\.\w+=17 exceeds this bert model's width \(16\)"):
        METHODS.get(name)(too_wide).check(context)
    METHODS.get(name)(ranks(16)).check(context)  # the width itself fits
    METHODS.get(name)(too_wide).check(MethodContext("encoder", "bert", ["classifier"], "SEQ_CLS"))  # width unknown

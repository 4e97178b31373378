"""What the command drops from its libraries' logging: one bitsandbytes notice, nothing else."""

from __future__ import annotations

import logging

import slopeft.cli  # noqa: F401  (installs the filter)


def test_the_bitsandbytes_kernel_notice_is_dropped_and_its_other_messages_pass(caplog):
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger="bitsandbytes.backends.cpu.ops"):
        logger.warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure ...", "no trust"
        )
        logger.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes warning"]

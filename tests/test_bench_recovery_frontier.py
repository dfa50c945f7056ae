"""The frontier bench's own logic: how it reads a recovery, and which CR it calls the frontier."""

from __future__ import annotations

import pytest

from bench.recovery_frontier import largest_within, parse_recovery
from envs.settings import EnvSection


def test_recoveries_read_as_the_env_settings_they_stand_for():
    assert parse_recovery("bn").env == {"recovery": "bn", "finetune_steps": 0}
    spec = parse_recovery("finetune:20:loss=distill,images=2048,batch_size=32,lr=0.003,bn=frozen,params=pruned")
    assert spec.env == {"recovery": "finetune", "finetune_steps": 20, "finetune_loss": "distill",
                        "finetune_images": 2048, "finetune_batch_size": 32, "finetune_lr": 0.003,
                        "finetune_bn": "frozen", "finetune_params": "pruned"}
    known = {f.name for f in EnvSection.__dataclass_fields__.values()}
    assert set(spec.env) <= known  # every key is a real env setting


@pytest.mark.parametrize("text", ["finetune", "finetune:0", "finetune:x", "finetune:5:depth=3", "finetune:5:lr",
                                  "sgd:5"])
def test_a_malformed_recovery_is_refused_naming_it(text):
    with pytest.raises(ValueError, match="--recoveries"):
        parse_recovery(text)


def test_the_frontier_is_the_largest_cr_within_epsilon():
    points = [(0.002, 1.4), (0.012, 2.0), (0.009, 1.7), (0.03, 2.5)]
    assert largest_within(points, 0.01) == 1.7
    assert largest_within(points, 0.001) is None

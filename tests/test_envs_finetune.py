"""Masked fine-tuning: distillation's loss and targets, and which parameters the cheaper variants train."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from envs.workload.finetune import distillation_loss, finetune_masked, teacher_logits, trainable_parameters


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3),
                         nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_the_distillation_loss_is_the_kl_divergence_by_hand():
    student = torch.tensor([[1.0, 0.0, -1.0]])
    teacher = torch.tensor([[0.0, 2.0, 0.0]])
    p = torch.softmax(teacher, 1)[0]
    q = torch.softmax(student, 1)[0]
    expected = sum(float(p[i]) * math.log(float(p[i]) / float(q[i])) for i in range(3))
    assert distillation_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    assert distillation_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_teacher_logits_are_the_eval_mode_outputs_and_leave_the_mode_alone():
    model = small_net().train()
    images = torch.randn(10, 1, 8, 8)
    logits = teacher_logits(model, images, batch_size=4)
    assert model.training  # restored
    with torch.no_grad():
        expected = model.eval()(images)
    assert torch.allclose(logits, expected, atol=1e-6)  # batched 4 at a time: rounding may differ
    assert not logits.is_inference()


def test_pruned_parameters_are_the_pruned_layers_and_batchnorm_only():
    model = small_net()
    masks = {"0": torch.ones_like(model[0].weight), "3": torch.ones_like(model[3].weight),
             "7": torch.ones_like(model[7].weight)}
    masks["3"][0] = 0  # only layer "3" is pruned
    chosen = {id(p) for p in trainable_parameters(model, masks, "pruned")}
    expected = {id(p) for p in [model[3].weight, model[3].bias, model[1].weight, model[1].bias,
                                model[4].weight, model[4].bias]}
    assert chosen == expected
    assert len(trainable_parameters(model, masks, "all")) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="env.finetune_params"):
        trainable_parameters(model, masks, "half")


def test_pruned_only_fine_tuning_leaves_unpruned_layers_and_restores_requires_grad():
    model = small_net()
    masks = {"3": torch.ones_like(model[3].weight)}
    masks["3"][1] = 0
    untouched = model[0].weight.detach().clone()
    before = model[3].weight.detach().clone()
    images, labels = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    finetune_masked(model, masks, images, labels, steps=3, lr=0.1, batch_size=8, params="pruned")
    assert torch.equal(model[0].weight, untouched)
    assert not torch.equal(model[3].weight, before)
    assert torch.all(model[3].weight[1] == 0)  # the pruned filter stays pruned
    assert all(p.requires_grad for p in model.parameters())


def test_distillation_fine_tuning_moves_the_student_towards_the_teacher():
    def net(seed: int) -> nn.Sequential:  # no BatchNorm: eval and train outputs coincide
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    images = torch.randn(64, 1, 8, 8)
    targets = teacher_logits(net(0), images, batch_size=32)
    student = net(1)
    masks = {"0": torch.ones_like(student[0].weight)}
    masks["0"][:2] = 0
    with torch.no_grad():
        student[0].weight.mul_(masks["0"])
        before = distillation_loss(student(images), targets).item()
    losses = finetune_masked(student, masks, images, targets, steps=30, lr=0.05, batch_size=16, loss="distill")
    with torch.no_grad():
        after = distillation_loss(student(images), targets).item()
    assert len(losses) == 30 and after < 0.5 * before
    assert torch.all(student[0].weight[:2] == 0)


def test_bad_fine_tuning_inputs_are_named():
    model = small_net()
    with pytest.raises(ValueError, match="env.finetune_loss"):
        finetune_masked(model, {}, torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), 1, 0.1, loss="l2")
    with pytest.raises(ValueError, match="4 images but 3 targets"):
        finetune_masked(model, {}, torch.randn(4, 1, 8, 8), torch.zeros(3, dtype=torch.long), 1, 0.1)

"""The training loss: the head runs on the labelled positions only, and that is the same loss."""

import torch
import torch.nn.functional as F

from evaluator.backbone import LanguageModel
from evaluator.tasks.mqar import MQARSpec, generate
from evaluator.train import IGNORE, loss_fn
from tests.baseline_modules import load_design


def full_loss(model, inputs, labels):
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE)


def loss_and_grads(loss, model):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_the_loss_on_labelled_positions_equals_the_full_loss_with_its_gradients():
    torch.manual_seed(0)
    model = LanguageModel(load_design("linear_attention").Mixer, 256, 32, 2, 2).double()
    inputs, labels = generate(MQARSpec(256, 64, 8), 6, torch.Generator().manual_seed(1))
    labelled = labels != IGNORE
    assert 0 < labelled.sum() < labelled.numel() / 4  # MQAR labels its queries only
    torch.testing.assert_close(model(inputs, labelled), model(inputs)[labelled])
    loss, grads = loss_and_grads(loss_fn(model, inputs, labels), model)
    expected, expected_grads = loss_and_grads(full_loss(model, inputs, labels), model)
    torch.testing.assert_close(loss, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)
    every = torch.randint(0, 256, inputs.shape)  # every position labelled (the LM): the usual full loss
    torch.testing.assert_close(loss_fn(model, inputs, every), full_loss(model, inputs, every))

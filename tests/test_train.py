"""The training loss: the head runs on the labelled positions only, and that is the same loss. The optimizer's
settings: weight decay on every parameter or on matrices only, and AdamW's second-moment decay."""

import torch
import torch.nn.functional as F

from evaluator.backbone import LanguageModel
from evaluator.tasks.mqar import MQARSpec, generate
from evaluator.train import IGNORE, Optim, loss_fn, lr_at, train
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


def one_step(optim: Optim) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = LanguageModel(load_design("linear_attention").Mixer, 64, 16, 1, 2)
    inputs, labels = generate(MQARSpec(64, 32, 4), 4, torch.Generator().manual_seed(1))
    train(model, inputs, labels, optim, "mqar")
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_decay_all_decays_embeddings_and_gains_too_and_nothing_else_changes():
    """AdamW's decay is decoupled, p <- p (1 - lr wd) before the Adam step, so after one step the two settings
    differ on the parameters decay_all adds, by lr wd p0, and agree on every matrix."""
    optim = Optim(steps=1, batch=4, lr=1e-2, weight_decay=0.5)
    torch.manual_seed(0)
    start = {n: p.detach().clone()
             for n, p in LanguageModel(load_design("linear_attention").Mixer, 64, 16, 1, 2).named_parameters()}
    some, every = one_step(optim), one_step(Optim(steps=1, batch=4, lr=1e-2, weight_decay=0.5, decay_all=True))
    shrink = lr_at(0, optim) * optim.weight_decay
    added = {n for n, p in start.items() if p.dim() < 2 or "embed" in n}
    assert "embed.weight" in added and any(n.endswith("norm.weight") for n in added)
    for name, p0 in start.items():
        if name in added:
            torch.testing.assert_close(some[name] - every[name], shrink * p0 * torch.ones_like(p0))
            assert not torch.equal(some[name], every[name])
        else:
            assert torch.equal(some[name], every[name]), name


def test_beta2_reaches_the_optimizer():
    """Adam's first step is about lr * sign(g) whatever beta2 is; from the second on beta2 weighs the gradients."""
    first = one_step(Optim(steps=1, batch=2)), one_step(Optim(steps=1, batch=2, beta2=0.5))
    for name in first[0]:
        torch.testing.assert_close(first[0][name], first[1][name])
    second = one_step(Optim(steps=2, batch=2)), one_step(Optim(steps=2, batch=2, beta2=0.5))
    assert max((second[0][n] - second[1][n]).abs().max().item() for n in second[0]) > 1e-4

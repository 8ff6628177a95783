"""Hostile designs against the measurement: each tries to write, fake or see its own score.

Every one passes the static scan unless its entry says otherwise (names built at run time, modules
reached through attributes of torch), so what stops it is the measurement's design and the OS.
Each is a small linear-attention design (``tests/designs/good_linear.py``) with an attack woven in;
``HONEST`` is the same design without one, so an attack that changes nothing can be compared with it.
"""

from __future__ import annotations

# torch's own references to os and sys, reached through a list so that no name-based scan can follow them
OS = 'getattr([torch][0], "os")'
SYS = 'getattr([torch][0], "sys")'

TEMPLATE = '''"""Hostile design

Written to attack the measurement.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

{prelude}

def in_a_query(x):
    """The trusted side's query processes ask without gradients and with batches of 4 rows or more;
    the in-process checks use 1 or 2 rows."""
    return not torch.is_grad_enabled() and x.shape[0] >= 4


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.layer_idx = layer_idx
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
{init}
    def honest(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=1)
        z = torch.cumsum(k, dim=1)
        y = torch.einsum("btd,btde->bte", q, kv) / (q * z).sum(-1, keepdim=True)
        return self.out(y)

    def leak(self, x):
        """The honest output plus the next token's input: a look into the future."""
        future = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)
        return self.honest(x) + future

    def forward(self, x):
{forward}

    def init_state(self, batch):
        d = self.out.in_features
        return (torch.zeros(batch, d, d), torch.zeros(batch, d))

    def honest_step(self, x_t, state):
        kv, z = state
        q, k, v = self.qkv(x_t).chunk(3, dim=-1)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = kv + k.unsqueeze(-1) * v.unsqueeze(-2)
        z = z + k
        y = torch.einsum("bd,bde->be", q, kv) / (q * z).sum(-1, keepdim=True)
        return self.out(y), (kv, z)

    def step(self, x_t, state):
{step}
'''

HONEST_FORWARD = "        return self.honest(x)"
HONEST_STEP = "        return self.honest_step(x_t, state)"


def design(prelude: str = "", init: str = "", forward: str = HONEST_FORWARD, step: str = HONEST_STEP) -> str:
    return TEMPLATE.format(prelude=prelude, init=init, forward=forward, step=step)


HONEST = design()


def forge(frame: str, when: str = "True") -> str:
    """Module-level code that writes ``frame`` (a Python expression) to the result channel and exits."""
    return (f"if {when}:\n"
            f"    _frame = {SYS}.modules['json'].dumps({frame}) + '\\n'\n"
            f"    {OS}.write(3, _frame.encode())\n"
            f"    {OS}._exit(0)\n")


def forge_in_query(frame: str) -> str:
    """Forward code that writes ``frame`` from a query process and exits."""
    return (f"        if in_a_query(x):\n"
            f"            {OS}.write(3, ({SYS}.modules['json'].dumps({frame}) + '\\n').encode())\n"
            f"            {OS}._exit(0)\n"
            f"        return self.honest(x)")


def patch(target: str, value: str, where: str = "init") -> dict:
    """Replace ``target`` (``module:attribute.path``) with ``value``, at build time or in a query."""
    module, _, attribute = target.partition(":")
    owner, _, name = attribute.rpartition(".")
    obj = f"{SYS}.modules[{module!r}]" + (f".{owner}" if owner else "")
    line = f"{obj}.{name} = {value}"
    if where == "init":
        return {"init": f"        {line}\n"}
    return {"forward": f"        if in_a_query(x):\n            {line}\n        return self.honest(x)"}


def attempt(action: str) -> dict:
    """Build-time code that runs ``action`` (statements setting ``result``) and reports it in an exception,
    so the test reads what happened in the design's process from the failure's reason."""
    body = "".join(f"            {line}\n" for line in action.splitlines())
    return {"init": ("        try:\n" + body +
                     "        except BaseException as exc:\n"
                     "            result = 'blocked: ' + type(exc).__name__ + ': ' + str(exc)[:200]\n"
                     "        raise ValueError('attempt -> ' + str(result))\n")}


def read(path: str) -> dict:
    return attempt(f"_fd = {OS}.open({path!r}, 0)\n"
                   f"result = 'read: ' + {OS}.read(_fd, 1 << 16).decode(errors='replace')")


def write(path: str) -> dict:
    return attempt(f"_fd = {OS}.open({path!r}, {OS}.O_WRONLY | {OS}.O_CREAT | {OS}.O_APPEND)\n"
                   f"{OS}.write(_fd, b'planted')\nresult = 'written'")


# status, reason words (all must appear), and what must hold of the metrics ("honest": the measured
# metrics equal the honest design's; "not scored": no measured metric at all).
SHELL_RAN = "exit status 7"  # what a shell that ran `exit 7` would report

ATTACKS: dict[str, tuple[dict, str, tuple[str, ...]]] = {
    # -- a forged result channel --------------------------------------------------------------------
    "forged-training-reply-via-typing": (
        {"prelude": "import typing\n\n" + forge(
            "{'returned': {'status': 'ok', 'reason': '', 'log': '', 'models': {}, "
            "'metrics': {'mqar_acc': 0.999, 'bonus': 1.0}}}").replace(SYS, "typing.sys")},
        "protocol", ("models",)),
    "forged-training-reply-blaming-the-harness": (
        {"prelude": forge("{'returned': {'status': 'harness', 'reason': 'not my fault', 'metrics': {}, "
                          "'models': {}, 'log': ''}}")},
        "protocol", ("status",)),
    "forged-answers-of-the-wrong-shape": (
        {"forward": forge_in_query("{'returned': {'answers': [{'argmax': {'dtype': 'int32', 'shape': [1, 1], "
                                   "'data': 'AAAAAA=='}, 'top': {'dtype': 'float32', 'shape': [1, 1], "
                                   "'data': 'AAAAAA=='}}] * 64}}")},
        "protocol", ()),
    "forged-query-failure-blaming-the-harness": (
        {"forward": forge_in_query("{'returned': {'failed': {'status': 'harness', 'reason': 'not me'}}}")},
        "protocol", ("failure report",)),
    "forged-empty-answers-through-json": (
        patch("json:dumps", "lambda *a, **k: '{\"returned\": {\"answers\": []}}'", where="query"),
        "protocol", ("answered",)),
    "a-reply-over-the-size-cap": (
        {"init": "        self.register_buffer('hoard', torch.ones(20_000_000))\n"},
        "protocol", ("larger than",)),
    "non-finite-answers-in-queries": (
        {"forward": "        y = self.honest(x)\n        return y * float('nan') if in_a_query(x) else y"},
        "nan", ("non-finite outputs",)),
    # -- patched metric, loss and answer functions, wherever they are bound ----------------------------
    "patched-cross-entropy": (
        patch("torch.nn.functional:cross_entropy", "lambda *a, **k: torch.zeros((), requires_grad=True)"),
        "tamper", ("cross_entropy",)),
    "patched-loss-binding-of-the-training-loop": (
        patch("evaluator.train:loss_fn", "lambda *a, **k: torch.zeros((), requires_grad=True)"),
        "tamper", ("loss_fn",)),
    "patched-answer-function": (
        patch("evaluator.harness:_answer", "lambda *a, **k: {}", where="query"), "tamper", ("_answer",)),
    # the training loss runs the model on its labelled positions (``positions``): a model that trains from the
    # embeddings alone, bypassing the mixers, is named in the phase that swapped it in, before any training
    "patched-model-forward-in-training": (
        patch("evaluator.backbone:LanguageModel.forward",
              "lambda self, t, positions=None: self.head(self.norm(self.embed(t)[positions] "
              "if positions is not None else self.embed(t)))"),
        "tamper", ("after checks", "LanguageModel.forward")),
    "patched-model-forward-in-queries": (
        patch("evaluator.backbone:LanguageModel.forward", "lambda self, t: torch.zeros(*t.shape, 300)",
              where="query"), "tamper", ("forward",)),
    "patched-log-softmax-in-queries": (
        patch("torch:log_softmax", "lambda x, dim: torch.zeros_like(x)", where="query"), "tamper", ("log_softmax",)),
    "patched-wire-encoding-in-queries": (
        patch("evaluator.wire:encode", "lambda t: {}", where="query"), "tamper", ("encode",)),
    "patched-flop-counter-in-queries": (
        patch("torch.utils.flop_counter:FlopCounterMode.get_total_flops", "lambda self: 0", where="query"),
        "tamper", ("get_total_flops",)),
    "cleared-flop-formulas-in-queries": (
        {"forward": (f"        if not torch.is_grad_enabled():\n"
                     f"            {SYS}.modules['torch.utils.flop_counter'].flop_registry.clear()\n"
                     "        return self.honest(x)")},
        "tamper", ("flop_registry",)),
    "patched-check-that-reports-metrics": (
        patch("evaluator.checks:check_params",
              "lambda mixers, spec: {'mqar_acc': 1.0, 'parity_acc': 1.0, 'lm_bpb': 0.01, 'bonus_metric': 5.0}"),
        "ok", ("honest",)),
    # -- evading the checks by shape, call stack or process -----------------------------------------
    "leak-except-at-the-check-lengths": (
        {"forward": "        return self.honest(x) if x.shape[1] in (70, 75, 512, 1024, 2048, 4096) else self.leak(x)"},
        "causality", ("changing tokens",)),
    "leak-unless-a-caller-says-causal": (
        {"forward": ("        depth = 1\n"
                     "        while True:\n"
                     "            try:\n"
                     f"                caller = {SYS}._getframe(depth).f_code.co_name\n"
                     "            except ValueError:\n"
                     "                return self.leak(x)\n"
                     "            if 'causal' in caller or 'check' in caller:\n"
                     "                return self.honest(x)\n"
                     "            depth += 1")},
        "causality", ("changing tokens",)),
    "leak-only-in-a-process-that-never-trained": (
        {"prelude": "TRAINED = []\n",
         "forward": ("        if torch.is_grad_enabled():\n            TRAINED.append(1)\n"
                     "        return self.honest(x) if TRAINED else self.leak(x)")},
        "causality", ("changing tokens",)),
    "leak-only-after-loading-weights": (
        {"prelude": "def mark_loaded(module, keys):\n    module.loaded = True\n",
         "init": "        self.loaded = False\n        self.register_load_state_dict_post_hook(mark_loaded)\n",
         "forward": "        return self.leak(x) if self.loaded else self.honest(x)"},
        "causality", ("changing tokens",)),
    "leak-only-in-query-sized-batches": (
        {"forward": "        return self.leak(x) if in_a_query(x) else self.honest(x)"},
        "causality", ("changing tokens",)),
    "step-honest-only-for-the-check-batch": (
        {"step": ("        y, state = self.honest_step(x_t, state)\n"
                  "        return (y if x_t.shape[0] == 2 else -y), state")},
        "recurrent-mismatch", ("step()",)),
    "random-outputs-in-queries": (
        {"forward": "        y = self.honest(x)\n        return y + torch.randn_like(y) if in_a_query(x) else y"},
        "inconsistent", ("asked twice",)),
    "leak-only-in-the-first-query-process-by-a-marker-file": (
        {"forward": ("        if in_a_query(x):\n"
                     "            try:\n"
                     f"                {OS}.close({OS}.open('/tmp/hostile-first-query', {OS}.O_CREAT | {OS}.O_EXCL))\n"
                     "                first = True\n"
                     "            except FileExistsError:\n"
                     "                first = False\n"
                     "            except OSError:\n"
                     "                first = True  # cannot coordinate: behave as the first process everywhere\n"
                     "            return self.leak(x) if first else self.honest(x)\n"
                     "        return self.honest(x)")},
        "causality", ("changing tokens",)),
    # -- resources ---------------------------------------------------------------------------------
    "memory-bomb-in-a-query": (
        {"forward": ("        if in_a_query(x):\n            self.hoard = [torch.ones(2**27) for _ in range(1000)]\n"
                     "        return self.honest(x)")},
        "oom", ("answering queries",)),
    # -- a valid pattern: a module some layers declare and do not use --------------------------------
    "module-used-only-in-odd-layers": (
        {"init": "        self.extra = nn.Linear(d_model, d_model, bias=False)\n",
         "forward": ("        y = self.honest(x)\n"
                     "        return y + self.extra(y) if self.layer_idx % 2 == 1 else y"),
         "step": ("        y, state = self.honest_step(x_t, state)\n"
                  "        return (y + self.extra(y) if self.layer_idx % 2 == 1 else y), state")},
        "ok", ()),
}

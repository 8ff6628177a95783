"""discover export and import: standalone modules that need only torch, and user designs entering memory."""

import ast
import importlib
import importlib.metadata
import json
import random
import re
import subprocess
import sys
import types
from pathlib import Path

import einops
import pytest
import torch

from agents.offline.render import render_point
from agents.offline.space import canonical, random_point
from discover.cli import main
from evaluator.run import EvalResult
from memory import DesignArchive, ExperienceDB
from memory.baselines import BASELINE_POINTS, BASELINES
from memory.export import ExportError, einops_lite, export_design, standalone, torch_paths, triton_absent
from memory.importer import import_design

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
STDLIB_OR_TORCH = set(sys.stdlib_module_names) | {"torch"}


def load(code: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    return module


def outputs(module: types.ModuleType, d_model: int = 32, T: int = 37) -> list[torch.Tensor]:
    """Each layer of a 4-layer stack (hybrids differ per layer) applied to one input, from one seed."""
    torch.manual_seed(0)
    layers = [module.Mixer(d_model, 2, i, 4) for i in range(4)]
    x = torch.randn(2, T, d_model)
    return [layer(x) for layer in layers]


def imported_roots(code: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "an exported module has no relative imports"
            roots.add((node.module or "").split(".")[0])
    return roots


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_exports_to_a_torch_only_module_with_identical_outputs(name):
    code = BASELINES[name].read_text()
    exported = standalone(code)
    assert imported_roots(exported.code) <= STDLIB_OR_TORCH and exported.requires == ()
    assert exported.code.startswith('"""' + code.split('"""')[1].strip().splitlines()[0])
    with torch.no_grad():
        for original, standalone_output in zip(outputs(load(code, "original")), outputs(load(exported.code, name))):
            assert torch.equal(original, standalone_output)


def torch_only_path(tmp_path: Path) -> Path:
    """A folder holding torch and the packages torch itself requires, and nothing else."""
    folder = tmp_path / "site"
    folder.mkdir()
    todo, seen = ["torch"], set()
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        if dist.metadata["Name"].lower() in seen:
            continue
        seen.add(dist.metadata["Name"].lower())
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[ ;<>=!~\[]", requirement, maxsplit=1)[0])
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source = Path(str(dist.locate_file(top)))
            if not top.endswith((".dist-info", ".pth")) and top != ".." and source.exists() \
                    and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


def rendered_designs() -> dict[str, str]:
    """A sample of what the offline coder writes: recurrent designs of both kernel families carrying their
    own Triton kernel and KERNELS declaration, a hybrid, designs rendered without kernels, GSA's and
    log-linear Mamba2's points, whose recurrences have no Triton kernel of their own, and gated PaTH attention."""
    rng = random.Random(5)
    recurrent = [p for p in (random_point(rng) for _ in range(40)) if canonical(p)["hybrid"] != "all"]
    with_kernel = [p for p in recurrent if "KERNELS" in render_point(p)]
    return {"gla_kernel": render_point(BASELINE_POINTS["gla"]),
            "gated_deltanet_kernel": render_point(BASELINE_POINTS["gated_deltanet"]),
            "deltanet_hybrid_kernel": render_point(BASELINE_POINTS["deltanet_hybrid"]),
            "retnet_plain": render_point(BASELINE_POINTS["retnet"], kernels=False),
            "random_kernel": render_point(with_kernel[0]), "random_plain": render_point(recurrent[1], kernels=False),
            "gsa_point": render_point(BASELINE_POINTS["gsa"]),
            "loglinear_point": render_point(BASELINE_POINTS["loglinear_mamba2"]),
            "path_point": render_point({**BASELINE_POINTS["path_attention"], "attn_gate": "sigmoid"})}


TORCH_ONLY_PROBE = """\
import sys, torch
for name in ('einops', 'kernels', 'discover', 'evaluator', 'triton'):
    try:
        __import__(name)
        sys.exit(f'{name} is importable')
    except ImportError:
        pass
torch.set_num_threads(1)
expected = torch.load('expected.pt')
for name, want in expected.items():
    module = __import__(name)
    torch.manual_seed(0)
    mixer = module.Mixer(64, 4, 0, 2)
    weights = mixer.state_dict()
    assert weights.keys() == want['weights'].keys(), name
    assert all(torch.equal(weights[k], want['weights'][k]) for k in weights), f'{name}: other weights'
    y = mixer(want['x'])
    assert torch.equal(y, want['y']), f'{name}: other output, max difference {(y - want["y"]).abs().max()}'
    y.sum().backward()
    assert all(p.grad is not None for p in mixer.parameters()), name
print(len(expected), 'ok')
"""


def test_every_exported_design_runs_in_a_python_with_only_torch_and_matches_the_original(tmp_path):
    designs = {f"baseline_{name}": path.read_text() for name, path in BASELINES.items()} | rendered_designs()
    expected, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, code in designs.items():
            (tmp_path / f"{name}.py").write_text(standalone(code).code)
            torch.manual_seed(0)
            mixer = load(code, name).Mixer(64, 4, 0, 2)  # the original, with kernels, einops and triton at hand
            x = torch.randn(2, 17, 64)
            with torch.no_grad():
                expected[name] = {"x": x, "y": mixer(x), "weights": mixer.state_dict()}
    finally:
        torch.set_num_threads(threads)
    torch.save(expected, tmp_path / "expected.pt")
    assert run_torch_only(tmp_path, TORCH_ONLY_PROBE) == f"{len(designs)} ok"


# Designs that import the kernels package's Triton modules themselves, rather than the chunked ops whose GPU path
# they are: each Triton entry point, every decay it takes, through its module and through kernels.<op>.triton.
TRITON_MODULE_DESIGNS = {
    "triton_chunk_design": ("kernels.triton_chunk", '''"""Linear attention on kernels.triton_chunk

Linear attention, simple GLA and GLA through chunked_recurrence, the chunked Triton kernel itself.
"""

import torch.nn.functional as F
from torch import nn

from kernels.triton_chunk import CHUNK_SIZE, chunked_recurrence


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gates = nn.Linear(d_model, n_heads + d_model // 2)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = (t.reshape(B, T, self.h, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        k = F.normalize(k, dim=-1)
        head, channel = F.logsigmoid(self.gates(x)).split([self.h, D // 2], -1)
        g_head = head.transpose(1, 2)  # (B, H, T)
        g_channel = channel.reshape(B, T, self.h, -1).transpose(1, 2)  # (B, H, T, K / 2)
        o = chunked_recurrence(q, k, v)[0] + chunked_recurrence(q, k, v, g=g_head, chunk_size=CHUNK_SIZE)[0]
        o = o + chunked_recurrence(q[..., ::2], k[..., ::2], v, g=g_channel, scale=0.5)[0]
        return self.out(o.transpose(1, 2).reshape(B, T, D))
'''),
    "triton_chunk_delta_design": ("kernels.triton_chunk_delta", '''"""DeltaNet on kernels.triton_chunk_delta

The delta rule and the gated delta rule through chunked_delta_recurrence, imported under another name.
"""

import torch
import torch.nn.functional as F
from torch import nn

from kernels.triton_chunk_delta import chunked_delta_recurrence as delta_kernel


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gates = nn.Linear(d_model, 2 * n_heads)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = (t.reshape(B, T, self.h, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        a, b = self.gates(x).transpose(1, 2).chunk(2, 1)  # (B, H, T) each
        beta, g = torch.sigmoid(b), F.logsigmoid(a)
        o = delta_kernel(q, k, v, beta)[0] + delta_kernel(q, k, v, beta, g=g)[0]
        return self.out(o.transpose(1, 2).reshape(B, T, D))
'''),
    "op_triton_design": ("kernels.gated_delta_rule.triton", '''"""Gated DeltaNet on kernels.<op>.triton

The per-op Triton modules, which call kernels.triton_chunk_delta and kernels.triton_recurrence.
"""

import torch
import torch.nn.functional as F
from torch import nn

from kernels.gated_delta_rule.triton import fused_recurrent_gated_delta_rule, triton_gated_delta_rule


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gates = nn.Linear(d_model, 2 * n_heads)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = (t.reshape(B, T, self.h, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        a, b = self.gates(x).transpose(1, 2).chunk(2, 1)
        beta, g = torch.sigmoid(b), F.logsigmoid(a)
        o = triton_gated_delta_rule(q, k, v, g, beta)[0] + fused_recurrent_gated_delta_rule(q, k, v, g, beta)[0]
        return self.out(o.transpose(1, 2).reshape(B, T, D))
'''),
}

TRITON_ABSENT_PROBE = """\
import sys, torch
for name in ('einops', 'kernels', 'discover', 'evaluator', 'triton', 'memory'):
    try:
        __import__(name)
        sys.exit(f'{name} is importable')
    except ImportError:
        pass
torch.set_num_threads(1)
expected = torch.load('expected.pt')
close = {'rtol': 1e-4, 'atol': 1e-5}  # the PyTorch forms, not the Triton kernels: equal up to rounding
for name, want in expected.items():
    module = __import__(name)
    assert isinstance(module.triton, module.MissingTriton), name
    torch.manual_seed(0)
    mixer = module.Mixer(32, 2, 0, 2)
    weights = mixer.state_dict()
    assert all(torch.equal(weights[k], want['weights'][k]) for k in want['weights']), f'{name}: other weights'
    x = want['x'].clone().requires_grad_()
    y = mixer(x)
    torch.testing.assert_close(y, want['y'], **close, msg=lambda m: f'{name}: {m}')
    y.backward(want['dy'])
    torch.testing.assert_close(x.grad, want['dx'], **close, msg=lambda m: f'{name} dx: {m}')
    for key, p in mixer.named_parameters():
        torch.testing.assert_close(p.grad, want['grads'][key], **close, msg=lambda m: f'{name} {key}: {m}')
print(len(expected), 'ok')
"""


def run_torch_only(tmp_path: Path, probe: str) -> str:
    """Run `probe` in tmp_path in a Python that sees only the standard library, torch and tmp_path's files."""
    site = torch_only_path(tmp_path)
    # -S: no site-packages, so only the standard library, torch with its requirements, and the files' folder.
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": f"{tmp_path}:{site}", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def forward_and_backward(module: types.ModuleType) -> dict:
    """A Mixer's output and every gradient on one input and one output gradient, from one seed."""
    torch.manual_seed(0)
    mixer = module.Mixer(32, 2, 0, 2)
    x = torch.randn(2, 37, 32, requires_grad=True)  # 37: two whole chunks of 16 and a ragged one
    y = mixer(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    return {"x": x.detach(), "y": y.detach(), "dy": dy, "dx": x.grad, "weights": mixer.state_dict(),
            "grads": {key: p.grad for key, p in mixer.named_parameters()}}


def test_designs_importing_the_triton_modules_export_and_run_with_torch_alone_within_float_tolerance(tmp_path):
    expected, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, (module, code) in TRITON_MODULE_DESIGNS.items():
            exported = standalone(code)
            assert module in exported.inlined
            assert (exported.requires, exported.optional) == ((), ("triton",))
            assert imported_roots(exported.code) <= STDLIB_OR_TORCH | {"triton"}
            assert exported.code.split("# --- the design\n")[1].strip() in code  # the design is as written
            (tmp_path / f"{name}.py").write_text(exported.code)
            original = forward_and_backward(load(code, name))  # on the Triton kernels (interpreted on a CPU)
            again = forward_and_backward(load(exported.code, f"{name}_exported"))  # triton is installed here
            assert torch.equal(again["y"], original["y"]) and torch.equal(again["dx"], original["dx"])
            expected[name] = original
    finally:
        torch.set_num_threads(threads)
    torch.save(expected, tmp_path / "expected.pt")
    assert run_torch_only(tmp_path, TRITON_ABSENT_PROBE) == f"{len(expected)} ok"


def test_without_triton_each_triton_entry_point_is_bound_to_its_pytorch_form_after_triton_is_chosen():
    exported = standalone(TRITON_MODULE_DESIGNS["triton_chunk_delta_design"][1]).code
    assert ("if isinstance(triton, MissingTriton):\n    chunked_delta_recurrence = torch_chunked_delta_recurrence\n"
            in exported)
    assert "delta_kernel = chunked_delta_recurrence\n" in exported  # the design's name, after the binding
    assert exported.index("chunked_delta_recurrence = torch_") < exported.index("delta_kernel = ") < exported.index(
        "# --- the design")
    # triton is imported once, where the first inlined module imported it: after the interpreter is chosen,
    # before the first kernel is decorated.
    assert exported.count("import triton\n") == 1 and "# --- triton, where it is installed" not in exported
    assert exported.index("use_interpreter_without_gpu()\n") < exported.index("try:\n    import triton\n") \
        < exported.index("@triton.jit")
    op = standalone(TRITON_MODULE_DESIGNS["op_triton_design"][1]).code
    assert ("if isinstance(triton, MissingTriton):\n    chunked_delta_recurrence = torch_chunked_delta_recurrence\n"
            "    fused_recurrence = torch_fused_recurrence\n") in op


@pytest.mark.parametrize("module, gates", [
    ("triton_chunk", ()), ("triton_chunk", ("g_head",)), ("triton_chunk", ("g_channel",)),
    ("triton_chunk_delta", ("beta",)), ("triton_chunk_delta", ("beta", "g_head")),
    ("triton_recurrence", ("g_channel",)), ("triton_recurrence", ("beta", "g_head")),
    ("triton_recurrence", ("beta", "g_channel")),
])
def test_each_pytorch_form_keeps_its_triton_entry_points_contract(module, gates):
    kernels_module = f"kernels.{module}"
    entry, stand_in = torch_paths.STANDS_IN[kernels_module]
    kernel = getattr(importlib.import_module(kernels_module), entry)
    torch_form = getattr(importlib.import_module(torch_paths.module_for(kernels_module)), stand_in)
    gen = torch.Generator().manual_seed(1)
    B, H, T, K, V = 1, 2, 21, 16, 24
    q, k, v = (torch.randn(B, H, T, d, generator=gen) for d in (K, K, V))
    k = torch.nn.functional.normalize(k, dim=-1)
    drawn = {"beta": torch.rand(B, H, T, generator=gen),
             "g_head": torch.nn.functional.logsigmoid(torch.randn(B, H, T, generator=gen) + 2),
             "g_channel": torch.nn.functional.logsigmoid(torch.randn(B, H, T, K, generator=gen) + 2)}
    gate = {("g" if name.startswith("g_") else name): drawn[name] for name in gates}
    h0 = torch.randn(B, H, K, V, generator=gen)
    results = []
    for fn in (kernel, torch_form):
        inputs = [t.clone().requires_grad_() for t in (q, k, v, h0, *gate.values())]
        o, final = fn(*inputs[:3], **dict(zip(gate, inputs[4:])), scale=0.3, initial_state=inputs[3],
                      output_final_state=True)
        (o * torch.cos(o)).sum().backward(retain_graph=True)
        final.sum().backward()
        results.append([o, final] + [t.grad for t in inputs])
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_a_design_with_its_own_triton_kernel_exports_without_its_kernel_check():
    code = render_point(BASELINE_POINTS["gla"])
    exported = standalone(code)
    assert "recurrence = gla_kernel if q.is_cuda else chunk_gla" in exported.code  # the design is as written
    assert "KERNELS =" not in exported.code and "recurrence_spec" not in exported.code
    assert "kernels.spec" not in exported.inlined and "kernels.harness.flops" not in exported.inlined
    assert (exported.requires, exported.optional) == ((), ("triton",))
    assert "if isinstance(triton, MissingTriton):\n    gla_kernel = naive_recurrent_gla\n" in exported.code
    stand_in = triton_absent.MissingTriton()
    kernel = stand_in.jit(lambda x: x)  # decorating loads; launching names what is missing
    with pytest.raises(ModuleNotFoundError, match="triton is not installed"):
        kernel[(1,)](torch.zeros(1))


def test_kernels_spec_outside_the_kernels_declaration_is_refused_with_the_line():
    code = render_point(BASELINE_POINTS["gla"]) + "\nSPEC = recurrence_spec(\"gla\", gla_kernel)\n"
    line = len(code.splitlines())
    with pytest.raises(ExportError, match=f"design.py:{line}: kernels.spec's recurrence_spec is used outside"):
        standalone(code)


def test_names_that_clash_are_renamed_in_the_inlined_copy_and_the_design_stays_as_written():
    code = '''"""Clashing names

A design that reuses names the inlined blocks define.
"""

import torch
from torch import nn

from kernels.delta_rule import chunk_delta_rule as delta
from kernels.linear_attn import chunk_linear_attn

CHUNK_SIZE = 7  # also defined, with other values, by both recurrences


def to_chunks(x):  # also a helper in kernels/utils.py
    return x * CHUNK_SIZE


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = (t.reshape(B, T, self.h, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        k = torch.nn.functional.normalize(k, dim=-1)
        beta = torch.sigmoid(q[..., 0])
        o = delta(q, k, v, beta)[0] + chunk_linear_attn(q, k, v)[0]
        return to_chunks(o.transpose(1, 2).reshape(B, T, D))
'''
    exported = standalone(code)
    design_part = exported.code.split("# --- the design\n")[1]
    assert design_part.strip() in code  # the design's own code is untouched
    assert "delta = chunk_delta_rule" in exported.code
    assert "delta_rule_chunk_CHUNK_SIZE = 16" in exported.code and "linear_attn_chunk_CHUNK_SIZE = 32" in exported.code
    assert "def utils_to_chunks(" in exported.code
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(outputs(load(code, "o")), outputs(load(exported.code, "e"))))


def test_what_cannot_be_inlined_is_refused_with_the_line():
    with pytest.raises(ExportError, match="design.py:3: `import kernels"):
        standalone('"""X"""\n\nimport kernels.conv\n')
    with pytest.raises(ExportError, match="design.py:5: an import of 'kernels.conv' inside a function"):
        standalone('"""X"""\n\n\ndef f():\n    from kernels.conv import ShortConvolution\n')
    with pytest.raises(ExportError, match="defines no 'nothing'"):
        standalone('"""X"""\n\nfrom kernels.conv import nothing\n')
    kept = standalone('"""X"""\n\nfrom einops import rearrange, reduce\n')
    assert kept.requires == ("einops",) and "from einops import reduce" in kept.code


@pytest.mark.parametrize("pattern, sizes, shape", [
    ("b t (h d) -> b h t d", {"h": 4}, (2, 3, 12)), ("b h t d -> b t (h d)", {}, (2, 4, 3, 5)),
    ("... (h p) -> ... h p", {"h": 2}, (2, 3, 8)), ("b (h d) -> b h 1 d", {"h": 2}, (2, 6)),
    ("b t c -> (b t) c", {}, (2, 3, 4)), ("b h n w d -> b h (n w) d", {}, (1, 2, 3, 4, 5)),
])
def test_einops_lite_rearranges_like_einops(pattern, sizes, shape):
    x = torch.randn(shape)
    expected = einops.rearrange(x, pattern, **sizes)
    actual = einops_lite.rearrange(x, pattern, **sizes)
    assert torch.equal(actual, expected) and actual.stride() == expected.stride()


def test_einops_lite_repeats_like_einops_and_names_bad_patterns():
    x = torch.randn(2, 3)
    for pattern, sizes in [("b h -> b h r", {"r": 4}), ("b h -> b (h r)", {"r": 2}), ("b h -> (r b) h", {"r": 2}),
                           ("b h -> b 2 h", {})]:
        assert torch.equal(einops_lite.repeat(x, pattern, **sizes), einops.repeat(x, pattern, **sizes))
    for pattern, sizes, message in [("b t -> t", {}, "differ"), ("b (h d) -> b h d", {}, "infer"),
                                    ("b t c -> b c t", {}, "3 axes on the left; the tensor has 2"),
                                    ("b h -> b h r", {}, "new")]:
        with pytest.raises(einops_lite.EinopsPatternError, match=message):
            (einops_lite.repeat if "r" in pattern else einops_lite.rearrange)(x, pattern, **sizes)


def test_export_writes_a_card_and_import_records_a_user_design_once(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    design_file = tmp_path / "mine.py"
    design_file.write_text(GOOD)
    assert main(["import", str(design_file), "--tier", "check", "--workspace", ws, "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["status"] == "ok" and imported["name"] == "Tiny linear attention"
    with ExperienceDB(Path(ws) / "experience.db") as db:
        design = db.records.design(imported["design_id"])
        assert (design.origin, design.run_id) == ("user", None)
        assert DesignArchive(Path(ws) / "archive").code(design.archive_commit) == GOOD
        [evaluation] = db.records.evaluations(design.id)
        assert (evaluation.tier, evaluation.status, evaluation.id) == ("check", "ok", imported["evaluation_id"])
    renamed = tmp_path / "renamed.py"
    renamed.write_text(GOOD.replace("self.qkv", "self.in_proj").replace('"""Tiny', '"""Renamed tiny'))
    for path, kind in [(design_file, "exact"), (renamed, "structural")]:
        assert main(["import", str(path), "--tier", "check", "--workspace", ws, "--json"]) == 0
        outcome = json.loads(capsys.readouterr().out)
        assert (outcome["status"], outcome["duplicate_of"], outcome["evaluation_id"]) == ("duplicate", kind, None)
    unsafe = tmp_path / "unsafe.py"
    unsafe.write_text(GOOD + "\nimport os\n")
    assert main(["import", str(unsafe), "--tier", "check", "--workspace", ws]) == 1
    assert main(["import", str(tmp_path / "missing.py"), "--workspace", ws]) == 2
    with ExperienceDB(Path(ws) / "experience.db") as db:
        assert len(db.records.designs()) == 1 and len(db.records.duplicates()) == 2

    out = tmp_path / "exported.py"
    assert main(["export", str(imported["design_id"]), "-o", str(out), "--workspace", ws]) == 0
    text = out.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc.startswith("Tiny linear attention\n")
    assert f"Exported from Discover: design {imported['design_id']} (user)" in doc
    assert "Lineage: a root design" in doc and "check v" in doc and "init_loss=" in doc
    assert "Replay: never replayed." in doc and "Verification: not verified" in doc
    assert outputs(load(text, "exported"))[0].shape == (2, 37, 32)
    capsys.readouterr()
    assert main(["import", str(out), "--tier", "check", "--workspace", ws]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert f"an unchanged export of design {imported['design_id']} (Tiny linear attention)" in said
    assert main(["export", "999", "-o", str(out), "--workspace", ws]) == 2


def test_an_exported_baseline_imports_back_as_a_valid_design(tmp_path, capsys):
    exported = tmp_path / "deltanet_standalone.py"
    exported.write_text(standalone(BASELINES["deltanet"].read_text()).code)
    assert main(["import", str(exported), "--tier", "check", "--workspace", str(tmp_path / "ws"), "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert (outcome["status"], outcome["name"]) == ("ok", "DeltaNet")


def must_not_run(code, tier, seed, key=None):
    raise AssertionError("an unchanged export costs no evaluation")


def test_an_unchanged_export_imports_as_a_duplicate_of_its_source_and_a_changed_line_makes_a_new_design(
        store, tmp_path):
    db, recorder = store
    source = recorder.design(render_point(BASELINE_POINTS["gla"]), name="GLA", motivation="", origin="offline")
    path = tmp_path / "gla_standalone.py"
    export_design(db, source.design_id, path)
    assert f"code hash {db.records.design(source.design_id).code_hash}" in " ".join(path.read_text().split())
    outcome = import_design(recorder, path, tier="check", evaluate=must_not_run)
    assert (outcome.status, outcome.duplicate_of, outcome.design_id) == ("duplicate", "export", source.design_id)
    assert outcome.reason == f"an unchanged export of design {source.design_id} (GLA)"
    [duplicate] = db.records.duplicates()
    assert (duplicate["kind"], duplicate["original_id"], duplicate["origin"]) == ("export", source.design_id, "user")

    evaluated = []
    path.write_text(path.read_text().replace("self.o_proj = nn.Linear(d_model, d_model, bias=False)",
                                             "self.o_proj = nn.Linear(d_model, d_model, bias=True)"))
    changed = import_design(recorder, path, tier="check", evaluate=lambda code, tier, seed, key=None: evaluated.append(
        code) or EvalResult("error", "not evaluated here", tier, 1, seed))
    assert changed.duplicate_of is None and changed.design_id != source.design_id and len(evaluated) == 1
    assert len(db.records.duplicates()) == 1  # the card names design 1, but the code is no longer its export


def test_the_card_leads_with_the_score_over_seeds_not_the_luckiest_seed(tmp_path):
    from memory.export.card import card

    with ExperienceDB(tmp_path / "experience.db") as db:
        design_id = db.records.add_design("lucky", "one good seed", GOOD, origin="offline")
        for seed, score in [(0, 0.2), (1, 0.9), (2, 0.4)]:
            eval_id = db.records.begin_evaluation(design_id, None, "search", "smoke", 6, seed)
            db.records.finish_evaluation(eval_id, "ok", metrics={"mqar_acc": score}, score=score)
        replay = db.records.begin_evaluation(design_id, None, "replay", "smoke", 6, 0)
        db.records.finish_evaluation(replay, "ok", metrics={"mqar_acc": 0.99}, score=0.99)
        text = " ".join(card(db, design_id).split())
    assert "smoke v6: score 0.5 ± " in text and "over 3 seeds (seed 0: 0.2, seed 1: 0.9, seed 2: 0.4)" in text
    assert text.index("score 0.5 ±") < text.index("seed 1: score=0.9") and "0.99" not in text  # replays stand aside

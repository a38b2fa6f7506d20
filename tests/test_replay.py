"""Launch plans (`vssm.kernels.replay`) under TRITON_INTERPRET=1 (in a child process, as in test_direction_sum.py):
a recorded region replays to the region's own result for new inputs laid out the same way (intermediate buffers
sharing bytes where their launches allow, views of the result, constants, offset inputs, an aten op writing into a
given tensor); what it cannot replay is refused with the reason (torch ops making tensors, a random draw, a result
that is an input, no launches, a kernel leaving part of its result unwritten: caught by the NaN-filled validation
replay); and the Vim mixer's inference paths (`Mamba._mix_planned`: the conv-projection kernel; the conv kernel,
bmm(out=) and the walking scan) equal the unplanned ones bit for bit, record at the second call of a layout and
re-record when the layout or a direction parameter changes."""

from __future__ import annotations

import json
import os

import pytest
import torch
from interpreted import run_as_script

import vssm.kernels.conv1d.op as conv_op
import vssm.mamba as vm
from vssm.kernels import replay


def _kernel():
    import triton
    import triton.language as tl

    from vssm.kernels.launch import fast_launch

    @triton.jit
    def scale_add(x_ptr, w_ptr, out_ptr, n, s, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = offs < n
        x = tl.load(x_ptr + offs, mask=m)
        w = tl.load(w_ptr + offs % 8, mask=m)
        tl.store(out_ptr + offs, x * s + w, mask=m)

    return fast_launch(scale_add)


def _regions(k):
    """Regions around the kernel (out = 2 x + w[i % 8], w a constant of the plans) and their value in torch."""
    w = torch.arange(8, dtype=torch.float32) / 3

    def launch(src, dst, n):
        k[(-(-n // 16),)](src, w, dst, n, 2.0, BLOCK=16)

    def one(x):  # one allocation, the result
        out = torch.empty_like(x)
        launch(x, out, x.numel())
        return out

    def two(x):  # an intermediate buffer, the result a view of its allocation
        tmp = torch.empty(x.numel(), dtype=x.dtype)
        out = torch.empty(x.numel() + 5, dtype=x.dtype)
        launch(x, tmp, x.numel())
        launch(tmp, out[5:], x.numel())
        return out[5:].view(x.shape).transpose(0, 1)

    def chain(x):  # intermediates freed on the way (their addresses may come back): four applications
        a = torch.empty_like(x)
        launch(x, a, x.numel())
        b = torch.empty_like(x)
        launch(a, b, x.numel())
        del a
        c = torch.empty_like(x)
        launch(b, c, x.numel())
        del b
        out = torch.empty_like(x)
        launch(c, out, x.numel())
        return out

    def half(x):  # leaves the second half of its result unwritten
        out = torch.empty_like(x)
        launch(x, out, x.numel() // 2)
        return out

    def op(x):  # a torch op between launches
        out = torch.empty_like(x)
        launch(x * 2, out, x.numel())
        return out

    def into(x):  # an aten op writing into a tensor it is given, then a launch: 2 (2 x) + w
        tmp = torch.empty_like(x)
        torch.mul(x, 2.0, out=tmp)
        out = torch.empty_like(x)
        launch(tmp, out, x.numel())
        return out

    def grow(x):  # an out= tensor grown by the op: new storage the recorder did not see made
        tmp = torch.empty(0, dtype=x.dtype)
        torch.mul(x, 2.0, out=tmp)
        out = torch.empty_like(x)
        launch(tmp, out, x.numel())
        return out

    def draw(x):  # a random draw
        out = torch.empty_like(x)
        launch(x, out, x.numel())
        return out.normal_()

    def same(x):  # returns its input
        launch(x, x, x.numel())
        return x

    def nothing(x):
        return torch.empty_like(x)

    def ref(x, times=1):
        flat = w.repeat(x.numel() // 8 + 1)[: x.numel()].view(x.shape)
        for _ in range(times):
            x = x * 2.0 + flat
        return x

    def value(name, x):
        if name == "into":
            return ref(x * 2.0)
        return ref(x, 2).transpose(0, 1) if name == "two" else ref(x, 4 if name == "chain" else 1)

    regions = dict(one=one, two=two, chain=chain, into=into, half=half, op=op, grow=grow, draw=draw, same=same,
                   nothing=nothing)
    return regions, value


def _plans() -> dict:
    k = _kernel()
    regions, ref = _regions(k)
    res = {}
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, generator=g)[7:103].view(4, 24)  # an input at an offset in its storage
    for name, region in regions.items():
        x = base.clone() if name == "same" else base
        y, plan, why = replay.record(region, (x,))
        entry = {"planned": plan is not None, "why": why}
        if plan is not None:
            news = [torch.randn(200, generator=g)[7:103].view(4, 24) for _ in range(2)]
            outs = [plan.run((n,)) for n in news]
            entry["equal"] = all(torch.equal(o, region(n)) for o, n in zip(outs, news))
            entry["value"] = all(torch.equal(o, ref(name, n)) for o, n in zip(outs, news))
            entry["buffer"] = plan._nbytes
            entry["layout"] = all(o.shape == y.shape and o.stride() == y.stride() for o in outs)
            entry["own_storage"] = outs[0].untyped_storage().data_ptr() != outs[1].untyped_storage().data_ptr()
        res[name] = entry
    nan = base.clone()
    nan[1, 2] = float("nan")  # a NaN the region computes is reproduced, not a mismatch
    y, plan, why = replay.record(regions["one"], (nan,))
    res["nan"] = {"planned": plan is not None, "why": why, "nan": bool(y[1, 2].isnan())}
    try:
        replay.record(lambda x: replay.record(regions["one"], (x,))[0], (base,))
        res["nested"] = "no error"
    except RuntimeError as e:
        res["nested"] = str(e)
    return res


def _mamba() -> dict:
    """Mamba(x, residual) at inference on the kernels' path (has_fast_kernel standing in for CUDA), plans on and
    off, over calls, layouts and a parameter change."""
    vm.has_fast_kernel = lambda t: isinstance(t, torch.Tensor)
    runs = []
    real_run = replay.Plan.run

    def counted(self, *a, **kw):
        if not kw.get("poison"):  # not the recording's validation
            runs.append(1)
        return real_run(self, *a, **kw)

    replay.Plan.run = counted
    res = {}
    torch.manual_seed(0)
    real_walks, real_conv = vm.scan_walks, conv_op._use_triton
    for name, dtype, walks in (("float32", torch.float32, False), ("bfloat16", torch.bfloat16, False),
                               ("walks", torch.bfloat16, True)):
        if walks:  # the path of large batches: the conv kernel, x_proj / dt_proj as bmm(out=), the walking scan
            vm.scan_walks = lambda *a: True
            conv_op._use_triton = lambda x, offsets: len(offsets) <= conv_op.MAX_TAP_SETS
        m = vm.Mamba(16, d_state=4, d_conv=3, bidirectional=True).to(dtype).eval()
        seen = []
        with torch.inference_mode():
            for step, L in enumerate((7, 7, 7, 7, 1, 1, 1, 7, 7, 7)):
                if step == 7:  # a parameter changed in place: the plans of the old values are dropped
                    m.D.add_(0.5)
                x = torch.randn(2, L, 16).to(dtype)
                r = torch.randn(2, L, 16)
                vm.LAUNCH_PLANS = False
                want = m(x, r)
                vm.LAUNCH_PLANS = True
                n = len(runs)
                got = m(x, r)
                entries = vm._PLANS.get(m, {})
                seen.append({"equal": torch.equal(got, want), "replayed": len(runs) - n,
                             "plans": sum(e[1] is not None for e in entries.values()),
                             "refused": [e[2] for e in entries.values() if e[2]]})
        res[name] = seen
    replay.Plan.run = real_run
    vm.scan_walks, conv_op._use_triton = real_walks, real_conv
    # writes the version counters miss: through .data and then param_cache.clear() (as the README says), and an
    # optimizer step writing through .data after a training forward; each followed by calls that must see them
    from vssm import param_cache

    m = vm.Mamba(16, d_state=4, bidirectional=True).eval()
    x, r = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    seen = []
    for write in ("clear", "train"):
        with torch.inference_mode():
            for _ in range(3):
                m(x, r)  # planned by the third call
        if write == "clear":
            m.D.data.add_(0.25)
            param_cache.clear()
        else:
            m.train()
            m(x.clone().requires_grad_(True), r).sum().backward()
            m.A_b_log.data.mul_(0.5)
            m.eval()
        with torch.inference_mode():
            vm.LAUNCH_PLANS = False
            want = m(x, r)
            vm.LAUNCH_PLANS = True
            seen.append(all(torch.equal(m(x, r), want) for _ in range(3)))
    res["data_writes"] = seen
    with torch.inference_mode():  # a mixer made under inference mode: its parameters count no writes, no plans
        m = vm.Mamba(16, d_state=4, bidirectional=True).eval()
        x, r = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
        vm.LAUNCH_PLANS = False
        want = m(x, r)
        vm.LAUNCH_PLANS = True
        outs = [m(x, r) for _ in range(3)]
    res["inference_params"] = {"equal": all(torch.equal(o, want) for o in outs), "plans": len(vm._PLANS.get(m, {}))}
    return res


if __name__ == "__main__":  # the child: TRITON_INTERPRET=1 (run_as_script)
    os.environ["VSSM_SCAN_BACKEND"] = "triton"
    print(json.dumps({"plans": _plans(), "mamba": _mamba()}))


@pytest.fixture(scope="module")
def interpreted():
    return run_as_script(__file__, timeout=900)


@pytest.mark.parametrize("name", ["one", "two", "chain", "into"])
def test_plan_replays_region(interpreted, name):
    res = interpreted["plans"][name]
    assert res["planned"] and res["equal"] and res["value"] and res["layout"] and res["own_storage"], res
    # the intermediates (96 float32, 384 bytes each) in one buffer of whole 512-byte units: none in "one"; in
    # "chain", a and c share bytes (a's last launch precedes c's first) and b lies apart at the next aligned offset
    assert res["buffer"] == {"one": 0, "two": 1, "chain": 2, "into": 1}[name] * replay._ALIGN, res


@pytest.mark.parametrize("name, why", [("half", "did not reproduce"), ("op", "aten.mul.Tensor"),
                                       ("draw", "aten.normal_"), ("grow", "aten.mul.out"),
                                       ("same", "not one of its allocations"), ("nothing", "launches nothing")])
def test_plan_refused(interpreted, name, why):
    res = interpreted["plans"][name]
    assert not res["planned"] and why in res["why"], res


def test_plan_of_a_region_computing_nan(interpreted):
    res = interpreted["plans"]["nan"]
    assert res["planned"] and res["nan"], res


def test_record_does_not_nest(interpreted):
    assert "do not nest" in interpreted["plans"]["nested"]


@pytest.mark.parametrize("case", ["float32", "bfloat16", "walks"])
def test_mamba_plans(interpreted, case):
    seen = interpreted["mamba"][case]
    assert all(s["equal"] for s in seen), seen
    assert not any(s["refused"] for s in seen), seen
    # L=7: seen, recorded, replayed twice; L=1: seen, recorded, replayed; after the change to D, L=7 again: seen
    # (its plan dropped), recorded, replayed
    assert [s["replayed"] for s in seen] == [0, 0, 1, 1, 0, 0, 1, 0, 0, 1], seen
    assert [s["plans"] for s in seen] == [0, 1, 1, 1, 1, 2, 2, 1, 2, 2], seen


def test_plans_follow_writes_through_data(interpreted):
    assert interpreted["mamba"]["data_writes"] == [True, True]


def test_no_plans_for_inference_tensor_parameters(interpreted):
    res = interpreted["mamba"]["inference_params"]
    assert res["equal"] and res["plans"] == 0, res


def test_plans_off_the_kernels_path():
    """On the CPU without the kernels' path the mixer records nothing."""
    torch.manual_seed(0)
    m = vm.Mamba(16, d_state=4, bidirectional=True).eval()
    x, r = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    with torch.inference_mode():
        a, b = m(x, r), m(x, r)
    assert torch.equal(a, b) and m not in vm._PLANS


def test_pack_shares_bytes_of_disjoint_spans():
    """Allocations live over overlapping launch spans get disjoint, aligned bytes; the others share."""
    sizes = {0: 1000, 1: 600, 2: 1000, 3: 10}
    spans = {0: (0, 1), 1: (1, 2), 2: (2, 3), 3: (0, 3)}
    offsets, total = replay._pack(sizes, spans)
    for i in sizes:
        assert offsets[i] % replay._ALIGN == 0 and offsets[i] + sizes[i] <= total
        for j in sizes:
            if i < j and spans[i][0] <= spans[j][1] and spans[j][0] <= spans[i][1]:
                assert offsets[i] + sizes[i] <= offsets[j] or offsets[j] + sizes[j] <= offsets[i], (i, j, offsets)
    assert offsets[0] == offsets[2]  # 0 and 2 never live together
    assert total < sum(sizes.values())


@pytest.mark.parametrize("src_kind", ["contiguous", "offset", "strided"])
def test_view_rebuilds_tensors_of_any_dtype(src_kind):
    """`_view`: a tensor at a byte offset from a source's first element, in the source's dtype or another, whatever
    the source's strides (the replay's path through Triton's launch rebuilds each argument this way)."""
    base = torch.arange(64, dtype=torch.float32)
    src = {"contiguous": base, "offset": base[6:], "strided": base.view(8, 8)[:, 2:5]}[src_kind]
    t = replay._view(src, 8, (2, 3), (3, 1), torch.float32)
    assert torch.equal(t, base[src.storage_offset() + 2:][:6].view(2, 3))
    w = replay._view(src, 4, (4,), (2,), torch.int16)
    raw = base.view(torch.int16)[2 * src.storage_offset() + 2:][:8:2]
    assert w.dtype == torch.int16 and torch.equal(w, raw)
    assert w.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()

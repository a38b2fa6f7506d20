"""ONNX export of the families: the selective scan as one ONNX ``Scan`` over time, the conv op as ``Conv``.

``torch.onnx.export(..., dynamo=True)`` sees each call of the scan as one ``vssm::selective_scan_fwd`` node
(its normal form: u, delta, z (batch, K, D, L); A (K, D, N); B, C (batch, K, G, N, L); D, delta_bias (K, D);
index (K, L) or None). `selective_scan_onnx` translates it: everything that does not depend on the previous
state (the visiting-order gathers, softplus, the decays exp(dt A) and inputs dt B u) is computed for all steps
at once, and only the recurrence ``h_t = decay_t h_{t-1} + drive_t``, ``y_t = sum_n C_t h_t`` runs in a
``Scan`` whose body holds three nodes, so the graph is the same size for any L. The outputs go back to natural
token order with ``ScatterElements`` and the directions are summed. `depthwise_conv1d_onnx` translates
``vssm::dwconv1d_fwd`` (which the models call only on CUDA tensors) as one grouped ``Conv`` per tap set, and
`layer_norm_onnx` ``vssm::layernorm_fwd`` (the fused LayerNorm, also CUDA only) as ``LayerNormalization``.

    from vssm.onnx import export_onnx
    export_onnx(timm.create_model("vmamba_tiny_s1l8").eval(), "vmamba_t.onnx", img_size=224)
"""

from __future__ import annotations

import os
from typing import Sequence

import onnx_ir
import onnx_ir.passes.common
import onnxscript
import onnxscript.optimizer
import torch
from onnxscript import FLOAT
from onnxscript import opset18 as op

__all__ = ["OPSET", "selective_scan_onnx", "depthwise_conv1d_onnx", "layer_norm_onnx", "translation_table", "optimize",
           "export_onnx"]

OPSET = 18
INT32 = onnxscript.ir.DataType.INT32


# ------------------------------------------------------------------------------------------------ the scan


@onnxscript.script(default_opset=op)
def _recurrence(h0: FLOAT, decay: FLOAT, drive: FLOAT, readout: FLOAT) -> tuple[FLOAT, FLOAT]:
    """h_t = decay_t h_{t-1} + drive_t and y_t = sum_n readout_t h_t over the last axis (time) of decay, drive
    (batch, D, N, K, L) and readout (batch, D or G, N, K, L): the last state (batch, D, N, K), y (batch, D, K, L)."""

    @onnxscript.graph()
    def step(h, a, b, c):
        h_next = a * h + b
        y = op.ReduceSum(h_next * c, op.Constant(value_ints=[2]), keepdims=0)
        return h_next, y

    last, y = op.Scan(h0, decay, drive, readout, body=step, num_scan_inputs=3,
                      scan_input_axes=[4, 4, 4], scan_output_axes=[3])
    return last, y


def _softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|))."""
    return op.Add(op.Relu(x), op.Log(op.Add(op.Exp(op.Neg(op.Abs(x))), op.CastLike(1.0, x))))


def _axes(*axes: int):
    return op.Constant(value_ints=list(axes))


def _ints(*values: int):
    return op.Constant(value_ints=list(values))


def _range(n: int):
    """0, 1, ..., n - 1 as int32."""
    return op.Range(*(op.Constant(value=onnxscript.ir.tensor(v, dtype=INT32)) for v in (0, n, 1)))


def _gather_tokens(x, flat, rank: int, K: int, L: int):
    """x (batch, ..., K, L) -> x[..., k, flat[k * L + t] - k * L]: one Gather over the flattened (K, L) axes,
    so the index is a (K L,) vector however large x is."""
    lead = [0] * (rank - 2)
    flat_x = op.Reshape(x, _ints(*lead, K * L))
    return op.Reshape(op.Gather(flat_x, flat, axis=len(lead)), _ints(*lead, K, L))


def selective_scan_onnx(u, delta, A, B, C, D, z, delta_bias, index, delta_softplus: bool, scale: float,
                        keep_states: bool, backend: str, backward: bool = True):
    """ONNX translation of ``vssm::selective_scan_fwd`` (same arguments; `keep_states`, `backend` and `backward` choose
    how the eager op runs and change nothing here). Returns out (batch, D, L) in u's dtype, the last states
    (batch, K, D, N) and an empty tensor (the states the eager op may keep for its backward).

    Works in the layout (batch, D, [N,] K, L): u, delta, z go (batch, K, D, L) -> (batch, D, K, L) and
    B, C (batch, K, G, N, L) -> (batch, G, N, K, L), so directions and tokens are the last two axes, the
    visiting orders are one Gather over them and a group axis G = 1 broadcasts against the channels."""
    dtype = u.dtype
    cd = dtype if dtype == onnxscript.ir.DataType.DOUBLE else onnxscript.ir.DataType.FLOAT
    K, dim, N, L = A.shape[0], A.shape[1], A.shape[2], u.shape[3]
    G = B.shape[2]

    def prepare(t, perm):
        if t is None:
            return None
        if t.dtype != cd:
            t = op.Cast(t, to=cd)
        return op.Transpose(t, perm=perm)

    u, delta, z = (prepare(t, [0, 2, 1, 3]) for t in (u, delta, z))
    B, C = (prepare(t, [0, 2, 3, 1, 4]) for t in (B, C))
    A = prepare(A, [1, 2, 0])  # (D, N, K)
    D, delta_bias = (prepare(t, [1, 0]) for t in (D, delta_bias))  # (D, K)
    if index is not None:
        # int32 throughout: the tables fold into (K L,) int32 constants, half the size of int64 ones
        offsets = op.Mul(_range(K), op.Constant(value=onnxscript.ir.tensor(L, dtype=INT32)))
        flat = op.Reshape(op.Add(index, op.Unsqueeze(offsets, _axes(1))), _ints(K * L))
        u, delta = _gather_tokens(u, flat, 4, K, L), _gather_tokens(delta, flat, 4, K, L)
        z = None if z is None else _gather_tokens(z, flat, 4, K, L)
        B, C = _gather_tokens(B, flat, 5, K, L), _gather_tokens(C, flat, 5, K, L)
    if G > 1:  # channel d reads group d // (D / G): (batch, G, N, K, L) -> (batch, D, N, K, L)
        tile, shape = _ints(1, 1, dim // G, 1, 1, 1), _ints(0, dim, N, K, L)
        B = op.Reshape(op.Expand(op.Unsqueeze(B, _axes(2)), tile), shape)
        C = op.Reshape(op.Expand(op.Unsqueeze(C, _axes(2)), tile), shape)
    dt = delta if delta_bias is None else op.Add(delta, op.Unsqueeze(delta_bias, _axes(0, 3)))
    if delta_softplus:
        dt = _softplus(dt)
    decay = op.Exp(op.Mul(op.Unsqueeze(dt, _axes(2)), op.Unsqueeze(A, _axes(0, 4))))  # (batch, D, N, K, L)
    drive = op.Mul(op.Unsqueeze(op.Mul(dt, u), _axes(2)), B)
    h0 = op.ConstantOfShape(op.Shape(decay, start=0, end=4), value=onnxscript.ir.tensor([0.0], dtype=cd))
    last, y = _recurrence(h0, decay, drive, C)  # (batch, D, N, K), (batch, D, K, L)
    if D is not None:
        y = op.Add(y, op.Mul(op.Unsqueeze(D, _axes(0, 3)), u))
    if z is not None:
        y = op.Mul(y, op.Mul(z, op.Sigmoid(z)))
    if index is not None:  # back to natural order: out[k, index[k, t]] = y[k, t], i.e. y[k, inverse[k, s]]
        steps = op.Expand(_range(L), _ints(K, L))
        inverse = op.ScatterElements(steps, index, steps, axis=1)
        inverse = op.Reshape(op.Add(inverse, op.Unsqueeze(offsets, _axes(1))), _ints(K * L))
        y = _gather_tokens(y, inverse, 4, K, L)
    out = op.ReduceSum(y, _axes(2), keepdims=0)
    if scale != 1.0:
        out = op.Mul(out, op.CastLike(scale, out))
    if dtype != cd:
        out = op.Cast(out, to=dtype)
    last = op.Transpose(last, perm=[0, 3, 1, 2])
    return out, last, op.Constant(value=onnxscript.ir.tensor([], dtype=cd))


# ------------------------------------------------------------------------------------------------ the conv


def depthwise_conv1d_onnx(x, weight, bias, offsets: Sequence[int], silu: bool, channel_major: bool):
    """ONNX translation of ``vssm::dwconv1d_fwd``: x (batch, L, C), weight (K, C, W), bias (K, C) or None ->
    (batch, K, L, C); tap set k pads the tokens so that out[t] = sum_j w[j] x[t + offsets[k] + j]."""
    C, W = weight.shape[1], weight.shape[2]
    xc = op.Transpose(x, perm=[0, 2, 1])  # (batch, C, L)
    outs = []
    for k, off in enumerate(offsets):
        pads = op.Constant(value_ints=[0, 0, -off, 0, 0, W - 1 + off])
        w = op.Unsqueeze(op.Gather(weight, op.Constant(value_int=k), axis=0), _axes(1))  # (C, 1, W)
        args = [op.Pad(xc, pads), w]
        if bias is not None:
            args.append(op.Gather(bias, op.Constant(value_int=k), axis=0))
        y = op.Conv(*args, group=C)
        if silu:
            y = op.Mul(y, op.Sigmoid(y))
        outs.append(op.Unsqueeze(op.Transpose(y, perm=[0, 2, 1]), _axes(1)))
    return outs[0] if len(outs) == 1 else op.Concat(*outs, axis=1)


_ONNX_TYPES = {torch.float32: onnxscript.ir.DataType.FLOAT, torch.float16: onnxscript.ir.DataType.FLOAT16,
               torch.bfloat16: onnxscript.ir.DataType.BFLOAT16, torch.float64: onnxscript.ir.DataType.DOUBLE}


def layer_norm_onnx(x, weight, bias, eps: float, out_dtype: torch.dtype):
    """ONNX translation of ``vssm::layernorm_fwd`` (which the models may call on CUDA tensors): x (M, C) -> y (M, C)
    in out_dtype and the (2, M) statistics, through one ``LayerNormalization`` (float32 statistics)."""
    if weight is None:  # LayerNormalization needs a scale: ones of x's type and width
        weight = op.Expand(op.CastLike(op.Constant(value_float=1.0), x), op.Shape(x, start=-1))
    args = [x, weight] if bias is None else [x, weight, bias]
    y, mean, rstd = op.LayerNormalization(*args, axis=-1, epsilon=float(eps))
    stats = op.Concat(op.Reshape(mean, _ints(1, -1)), op.Reshape(rstd, _ints(1, -1)), axis=0)
    # the exporter hands the dtype over as an ONNX data type already; a torch.dtype is mapped
    return op.Cast(y, to=_ONNX_TYPES.get(out_dtype, out_dtype)), stats


def translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``: the vssm ops."""
    return {
        torch.ops.vssm.selective_scan_fwd.default: selective_scan_onnx,
        torch.ops.vssm.dwconv1d_fwd.default: depthwise_conv1d_onnx,
        torch.ops.vssm.layernorm_fwd.default: layer_norm_onnx,
    }


# ------------------------------------------------------------------------------------------------ export


def optimize(model: onnx_ir.Model) -> None:
    """The exporter's clean-up (inline functions, fold constants, drop unused nodes, share equal initializers and
    subexpressions) without its pattern rewrites, one of which (Slice pairs to Split) is quadratic in the graph
    size: 40 s of Vim-T's export. onnxruntime fuses what those would at load time. Also drops the per-node
    metadata (source locations, FX names: ~1 kB a node)."""
    common = onnx_ir.passes.common
    onnx_ir.passes.Sequential(
        common.InlinePass(),
        common.RemoveUnusedFunctionsPass(),
    )(model)
    onnxscript.optimizer.fold_constants(model)
    onnx_ir.passes.Sequential(
        common.RemoveUnusedNodesPass(),
        common.RemoveUnusedOpsetsPass(),
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common.DeduplicateInitializersPass(),
        common.CommonSubexpressionEliminationPass(),
        common.RemoveUnusedNodesPass(),
        common.NameFixPass(),
    )(model)
    for node in model.graph.all_nodes():
        node.metadata_props.clear()


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, img_size: int | tuple[int, int] = 224,
                batch: int = 1, dynamic_batch: bool = True, opset: int = OPSET) -> str:
    """Export `model` (eval mode, CPU tensors) to `path`: one input ``x`` (batch, in_chans, H, W) with H, W fixed
    and the batch dynamic unless `dynamic_batch=False`, the model's outputs (a tensor or a list of feature
    maps), the weights inside the file. Returns the path."""
    import vssm.kernels  # noqa: F401  (registers the ops)

    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    in_chans = getattr(model, "in_chans", 3)
    x = torch.randn(max(batch, 2), in_chans, h, w)  # a size-1 dim would be specialised
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    program = torch.onnx.export(
        model, (x,), dynamo=True, opset_version=opset, custom_translation_table=translation_table(),
        dynamic_shapes=dynamic_shapes, input_names=["x"], optimize=False, verbose=False,
    )
    optimize(program.model)
    program.save(str(path), external_data=False)
    return str(path)

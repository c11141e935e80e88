"""An independent reference of the original DualStream-DFormer, written from its
specification (``tests/data/original/``, ORIGINAL_MODEL.md) with plain torch functions that
read the ORIGINAL state-dict names. Tests compare the project's modules against it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DATA = Path(__file__).parent / "data" / "original"
State = dict[str, Tensor]


def original_shapes() -> dict[str, tuple[int, ...]]:
    """The 462 (name, shape) entries of the original's state dict."""
    rows = (line.rstrip("\n").split("\t") for line in open(DATA / "original_state_dict.tsv"))
    return {r[0]: tuple(ast.literal_eval(r[1])) for r in rows}


def vision_key_map() -> dict[str, str]:
    """transformers 4.x key (with ``visual_encoder.``) -> 5.x key (bare)."""
    rows = (line.rstrip("\n").split("\t") for line in open(DATA / "vision_key_map_tf4_to_tf5.tsv"))
    return {r[0]: r[1] for r in rows}


def random_original_state(seed: int = 0) -> State:
    """Random weights of the listed shapes, scaled so activations stay moderate; norm
    affines perturbed around (1, 0) so that they matter."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in original_shapes().items():
        values = torch.randn(shape, generator=generator)
        if len(shape) > 1:
            fan_in = int(np.prod(shape[1:]))
            values = values / fan_in**0.5
        elif name.endswith("weight") and any(t in name for t in ("norm", ".bn.", ".1.weight")):
            values = 1 + 0.1 * values
        else:
            values = 0.1 * values
        state[name] = values
    return state


def gn(x: Tensor, sd: State, prefix: str) -> Tensor:
    return F.group_norm(x, 1, sd[prefix + "weight"], sd[prefix + "bias"], 1e-5)


def cnb(x: Tensor, sd: State, p: str) -> Tensor:
    y = F.conv2d(x, sd[p + "dwconv.weight"], sd[p + "dwconv.bias"], padding=3, groups=x.shape[1])
    y = gn(y, sd, p + "norm.")
    y = F.gelu(F.conv2d(y, sd[p + "pwconv1.weight"], sd[p + "pwconv1.bias"]))
    return x + F.conv2d(y, sd[p + "pwconv2.weight"], sd[p + "pwconv2.bias"])


def basic(x: Tensor, sd: State, p: str) -> Tensor:
    weight = sd[p + "conv.weight"]
    return F.gelu(gn(F.conv2d(x, weight, padding=weight.shape[-1] // 2), sd, p + "bn."))


def up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def to_size(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def air_encoder(x: Tensor, sd: State) -> list[Tensor]:
    p = "air_encoder."
    a2 = basic(x, sd, p + "stem_conv.")
    a2 = cnb(cnb(a2, sd, p + "stem_blocks.0."), sd, p + "stem_blocks.1.")
    a1 = basic(up2(a2), sd, p + "make_f1_conv.")
    a1 = cnb(cnb(a1, sd, p + "make_f1_blocks.0."), sd, p + "make_f1_blocks.1.")
    d = p + "make_f3_downsample."
    a3 = F.conv2d(gn(a2, sd, d + "norm."), sd[d + "conv.weight"], stride=2)
    a3 = cnb(cnb(a3, sd, p + "make_f3_blocks.0."), sd, p + "make_f3_blocks.1.")
    d = p + "make_f4_downsample."
    a4 = F.conv2d(gn(a3, sd, d + "norm."), sd[d + "conv.weight"], stride=2)
    a4 = cnb(cnb(a4, sd, p + "make_f4_blocks.0."), sd, p + "make_f4_blocks.1.")
    return [a1, a2, a3, a4]


def gate_fuse(v: Tensor, a: Tensor, sd: State, s: int) -> Tensor:
    g = f"film_f{s}.generator."
    film = F.conv2d(a, sd[g + "0.weight"], sd[g + "0.bias"])
    film = cnb(film, sd, g + "1.")
    film = F.conv2d(film, sd[g + "2.weight"], sd[g + "2.bias"])
    gamma, beta = film[:, : v.shape[1]], film[:, v.shape[1] :]
    modulated = v * (1 + gamma) + beta
    q = f"gate_f{s}.gate_generator."
    h = F.conv2d(torch.cat([v, a], 1), sd[q + "0.weight"], sd[q + "0.bias"], padding=1)
    h = F.gelu(gn(h, sd, q + "1."))
    gate = torch.sigmoid(F.conv2d(h, sd[q + "3.weight"], sd[q + "3.bias"]))
    return v * (1 - gate) + modulated * gate


def cross_attention(v: Tensor, a: Tensor, sd: State, s: int, heads: int = 8) -> Tensor:
    p = f"ca_f{s}."
    b, e, h, w = v.shape
    xv = v.flatten(2).transpose(1, 2)
    xa = a.flatten(2).transpose(1, 2)
    wq, wk, wv = sd[p + "attn.in_proj_weight"].chunk(3)
    bq, bk, bv = sd[p + "attn.in_proj_bias"].chunk(3)
    q, k, u = xv @ wq.T + bq, xa @ wk.T + bk, xa @ wv.T + bv
    d = e // heads
    outs = []
    for i in range(heads):
        part = slice(i * d, (i + 1) * d)
        scores = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / d**0.5, dim=-1)
        outs.append(scores @ u[..., part])
    o = torch.cat(outs, -1) @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
    r1 = (xv + o).transpose(1, 2).reshape(b, e, h, w)
    n1 = gn(r1, sd, p + "norm1.")
    ffn = F.conv2d(n1, sd[p + "ffn.0.weight"], sd[p + "ffn.0.bias"])
    ffn = F.conv2d(F.gelu(ffn), sd[p + "ffn.2.weight"], sd[p + "ffn.2.bias"])
    return gn(n1 + ffn, sd, p + "norm2.")


def seq_cna(x: Tensor, sd: State, p: str, dilation: int = 1) -> Tensor:
    """[0] conv no bias, [1] GN, [2] GELU."""
    weight = sd[p + "0.weight"]
    pad = dilation * (weight.shape[-1] // 2)
    return F.gelu(gn(F.conv2d(x, weight, padding=pad, dilation=dilation), sd, p + "1."))


def attention_gate(g: Tensor, x: Tensor, sd: State, p: str) -> Tensor:
    wg = gn(F.conv2d(g, sd[p + "W_g.0.weight"]), sd, p + "W_g.1.")
    wx = gn(F.conv2d(x, sd[p + "W_x.0.weight"]), sd, p + "W_x.1.")
    alpha = torch.sigmoid(F.conv2d(F.gelu(wg + wx), sd[p + "psi.0.weight"], sd[p + "psi.0.bias"]))
    return x * alpha


def refine(x: Tensor, sd: State, p: str) -> Tensor:
    return cnb(cnb(seq_cna(x, sd, p), sd, p + "3."), sd, p + "4.")


def decoder(f: list[Tensor], sd: State, boundary: bool = False) -> dict[str, Tensor]:
    p = "decoder."
    f1, f2, f3, f4 = f
    branches = [
        seq_cna(f4, sd, p + "conv_1x1.conv."),
        seq_cna(f4, sd, p + "atrous_6.conv.", 6),
        seq_cna(f4, sd, p + "atrous_12.conv.", 12),
        seq_cna(f4, sd, p + "atrous_18.conv.", 18),
        to_size(seq_cna(f4.mean((2, 3), keepdim=True), sd, p + "image_pool.conv."), f4),
    ]
    aspp = seq_cna(torch.cat(branches, 1), sd, p + "concat_conv.")
    g3 = to_size(aspp, f3)
    t3 = attention_gate(g3, seq_cna(f3, sd, p + "f3_conv."), sd, p + "att_f3.")
    r3 = refine(torch.cat([g3, t3], 1), sd, p + "refinement_conv_f3.")
    g2 = to_size(r3, f2)
    t2 = attention_gate(g2, seq_cna(f2, sd, p + "low_level_conv."), sd, p + "att_f2.")
    r2 = refine(torch.cat([g2, t2], 1), sd, p + "refinement_conv_f2.")
    g1 = to_size(r2, f1)
    t1 = attention_gate(g1, seq_cna(f1, sd, p + "f1_conv."), sd, p + "att_f1.")
    r1 = refine(torch.cat([g1, t1], 1), sd, p + "final_refinement_f1.")
    u2 = up2(basic(up2(basic(r1, sd, p + "up_conv_1.0.")), sd, p + "up_conv_2.0."))
    if boundary:
        b = p + "boundary_refine."
        u2 = basic(cnb(basic(u2, sd, b + "0."), sd, b + "1."), sd, b + "2.")

    def head(x: Tensor, name: str) -> Tensor:
        return F.conv2d(x, sd[p + name + ".weight"], sd[p + name + ".bias"])

    return {
        "final": head(u2, "final_classifier_v8"),
        "aux_f2": head(r2, "aux_classifier_f2"),
        "aux_f3": head(r3, "aux_classifier_f3"),
    }


def fused_logits(vision: list[Tensor], air: Tensor, sd: State) -> dict[str, Tensor]:
    """Everything after the vision encoder: air encoder, fusion, decoder."""
    a = air_encoder(air, sd)
    fused = [
        gate_fuse(vision[0], a[0], sd, 1),
        gate_fuse(vision[1], a[1], sd, 2),
        cross_attention(vision[2], a[2], sd, 3),
        cross_attention(vision[3], a[3], sd, 4),
    ]
    return decoder(fused, sd)


def scale_image(raw: np.ndarray) -> np.ndarray:
    """§8: uint16 -> (x / 256) truncated to uint8 -> / 255 (no resize at 512 px)."""
    return ((raw.astype(np.float64) / 256).astype(np.uint8).astype(np.float32)) / 255


def scale_air_file(raw: np.ndarray) -> np.ndarray:
    """§8: one min and one max over the file's 12 bands; zeros when flat or NaN."""
    low, high = float(np.min(raw)), float(np.max(raw))
    if high - low > 1e-6:
        return ((raw.astype(np.float64) - low) / (high - low)).astype(np.float32)
    return np.zeros(raw.shape, dtype=np.float32)

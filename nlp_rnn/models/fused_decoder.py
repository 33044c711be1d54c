"""The decoder recurrence of training as one autograd node, with a hand-written backward.

With input feeding (Luong) or Bahdanau attention, step t's input depends on step t-1's output, so the decoder
cannot run as one RNN kernel over the target. Run step by step under autograd, every step records ~40 small
operations and multiplies its own weight gradients over the B rows of one step. Here:

    forward, per step:   gates_l = [x_l; h_l] @ [W_ih | W_hh]ᵀ (the embedding half of layer 0's input was computed
                         for all T steps before the loop), cell arithmetic in fp32, attention products in fp32,
                         õ = tanh(Wo·[s; ctx]); the inputs of every product go into (T, B, ·) buffers as they are made
    backward, reversed:  only the products that carry gradient to the step before (dgates @ W); every weight's
                         gradient is one product at the end over the T·B rows of the buffers, dW = dGatesᵀ @ [x; h]

Rows are sorted by target length, longest first, so that step t runs on the n_t rows still inside their
sentence (a prefix of the batch): padding costs no recurrent work. The equations are torch's (nn.LSTM / nn.GRU /
nn.RNN gate order) and those of `seq2seq.Attention`; tests check loss and gradients against `Decoder.step`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .output import column_sum, dropout_mask


@dataclass(frozen=True)
class Plan:
    cell: str          # lstm | gru | rnn
    kind: str          # luong (with input feeding) | bahdanau
    layers: int
    dropout: float     # between layers, in training


def run(plan: Plan, pre, feed0, h0, c0, enc, keys, mask, lengths, weights: list[torch.Tensor]) -> torch.Tensor:
    """pre (B, T, G): layer 0's input projection of the embeddings, biases included; feed0 (B, H) or None;
    h0, c0 (L, B, H) (c0 None unless LSTM); enc, keys (B, S, H); mask (B, S) True on tokens; lengths (B,) or
    None: row b stops after lengths[b] steps (õ is 0 past it); weights: see `_unpack`. → õ (B, T, H), pre's dtype."""
    B, T = pre.shape[:2]
    order = None
    if lengths is not None:
        lengths = lengths.to(pre.device).clamp(1, T)
        order = torch.argsort(lengths, descending=True, stable=True)
        if bool((order == torch.arange(B, device=order.device)).all()):
            order = None
        else:
            pick = lambda t, dim=0: None if t is None else t.index_select(dim, order)  # noqa: E731
            pre, feed0, h0, c0, enc, keys, mask = (pick(pre), pick(feed0), pick(h0, 1), pick(c0, 1), pick(enc),
                                                   pick(keys), pick(mask))
            lengths = lengths[order]
        lens = lengths.tolist()
        active = tuple(sum(1 for n in lens if n > t) for t in range(T))
    else:
        active = (B,) * T
    mask_bias = torch.zeros(mask.shape, device=pre.device).masked_fill(~mask, float("-inf"))
    enc = enc.float()  # attention products run in fp32: at (B, 1, S) × (B, S, H) sizes they beat bf16 on a CPU
    keys = keys.float() if plan.kind == "luong" else keys.to(pre.dtype)
    if torch.is_grad_enabled():
        out = _FedBack.apply(plan, active, pre, feed0, h0, c0, enc, keys, mask_bias, *weights)
    else:
        out = _forward(plan, active, pre, feed0, h0, c0, enc, keys, mask_bias, weights, save=False)[0]
    return out if order is None else out.index_select(0, torch.argsort(order))


def _unpack(plan: Plan, weights):
    """The flat weight list as per-layer lists: wx (G, K) ([W_ih | W_hh] for LSTM/RNN, W_ih for GRU; layer 0
    without its embedding columns), wh (GRU: W_hh), bx (layers ≥ 1; LSTM/RNN: b_ih + b_hh), bh (GRU: b_hh),
    then the combine weight Wo (H, 2H) and Bahdanau's query weight (H, H), query bias (H,) and score vector (1, H)."""
    L, it = plan.layers, iter(weights)
    wx = [next(it) for _ in range(L)]
    wh = [next(it) for _ in range(L)] if plan.cell == "gru" else None
    bx = [None] + [next(it) for _ in range(L - 1)]
    bh = [next(it) for _ in range(L)] if plan.cell == "gru" else None
    wc = next(it)
    att = (next(it), next(it), next(it)) if plan.kind == "bahdanau" else None
    return wx, wh, bx, bh, wc, att


def _forward(plan: Plan, active, pre, feed0, h0, c0, enc, keys, mask_bias, weights, save: bool):
    wx, wh, bx, bh, wc, att = _unpack(plan, weights)
    B, T, _ = pre.shape
    L, H, S, dt, dev = plan.layers, h0.size(-1), enc.size(1), pre.dtype, pre.device
    f32 = dict(dtype=torch.float32, device=dev)
    lstm, gru = plan.cell == "lstm", plan.cell == "gru"
    k_in = [wx[i].size(1) - (0 if gru else H) for i in range(L)]
    out = pre.new_zeros(B, T, H)
    hs = [h.to(dt) for h in h0.unbind(0)]
    cs = [c.float() for c in c0.unbind(0)] if lstm else None
    feed = feed0.to(dt) if feed0 is not None else None
    masks = dropout_mask((L - 1, T, B, H), plan.dropout, dt, dev) if plan.dropout > 0 and L > 1 and save else None
    s = {}
    if save:  # what backward reads: (T, B, ·) buffers; zeros where rows have ended, as the weight products read all
        s["xh"] = [pre.new_zeros(T, B, wx[i].size(1)) for i in range(L)]  # [x; h_prev] (GRU: x)
        if gru:
            s["hprev"] = [pre.new_zeros(T, B, H) for _ in range(L)]
            s["rzn"] = [torch.empty(T, B, 3 * H, **f32) for _ in range(L)]
            s["ghn"] = [torch.empty(T, B, H, **f32) for _ in range(L)]
        elif lstm:
            s["act"] = [torch.empty(T, B, 4 * H, **f32) for _ in range(L)]
            s["c"] = [torch.empty(T + 1, B, H, **f32) for _ in range(L)]
            s["tc"] = [torch.empty(T, B, H, **f32) for _ in range(L)]
            for i in range(L):
                s["c"][i][0] = cs[i]
        else:
            s["h"] = [torch.empty(T, B, H, **f32) for _ in range(L)]
        s["a"] = torch.zeros(T, B, S, **f32)
        s["cmb"] = pre.new_zeros(T, B, 2 * H)  # [top; ctx], the input of the combine product
        if att is not None:
            s["q"] = pre.new_zeros(T, B, H)
            s["u"] = pre.new_empty(T, B, S, H)
    for t in range(T):
        n = active[t]
        if n < hs[0].size(0):  # rows past their length leave (they are last: sorted by length)
            hs = [h[:n] for h in hs]
            cs = [c[:n] for c in cs] if lstm else None
            feed = feed[:n] if feed is not None else None
        mb = mask_bias[:n]
        if att is not None:  # Bahdanau: this step's context, queried with the previous top state
            wq, bq, v = att
            q = hs[-1]
            u = torch.tanh(torch.addmm(bq, q, wq.t())[:, None] + keys[:n])  # (n, S, H)
            a = torch.softmax((u @ v.t())[..., 0].float() + mb, -1)
            feed = torch.bmm(a[:, None], enc[:n])[:, 0].to(dt)
            if save:
                s["q"][t, :n], s["u"][t, :n], s["a"][t, :n] = q, u, a
        x = feed
        for i in range(L):
            if masks is not None and i > 0:
                x = x * masks[i - 1, t, :n]
            bias = pre[:n, t] if i == 0 else bx[i]
            if gru:
                if save:
                    s["xh"][i][t, :n], s["hprev"][i][t, :n] = x, hs[i]
                gi = torch.addmm(bias, x, wx[i].t()).float()
                gh = torch.addmm(bh[i], hs[i], wh[i].t()).float()
                rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
                nn_ = torch.tanh(gi[:, 2 * H:] + rz[:, :H] * gh[:, 2 * H:])
                h = nn_ + rz[:, H:] * (hs[i].float() - nn_)
                if save:
                    s["rzn"][i][t, :n, :2 * H], s["rzn"][i][t, :n, 2 * H:], s["ghn"][i][t, :n] = rz, nn_, gh[:, 2 * H:]
            else:
                xh = s["xh"][i][t, :n] if save else pre.new_empty(n, k_in[i] + H)
                xh[:, :k_in[i]], xh[:, k_in[i]:] = x, hs[i]
                g = torch.addmm(bias, xh, wx[i].t()).float()
                if lstm:
                    act = s["act"][i][t, :n] if save else torch.empty_like(g)
                    torch.sigmoid(g, out=act)
                    torch.tanh(g[:, 2 * H:3 * H], out=act[:, 2 * H:3 * H])
                    cs[i] = act[:, H:2 * H] * cs[i] + act[:, :H] * act[:, 2 * H:3 * H]
                    tc = torch.tanh(cs[i])
                    h = act[:, 3 * H:] * tc
                    if save:
                        s["c"][i][t + 1, :n], s["tc"][i][t, :n] = cs[i], tc
                else:
                    h = torch.tanh(g)
                    if save:
                        s["h"][i][t, :n] = h
            hs[i] = x = h.to(dt)
        if att is None:  # Luong: attend with the new top state
            a = torch.softmax(torch.bmm(x.float()[:, None], keys[:n].transpose(1, 2))[:, 0] + mb, -1)
            ctx = torch.bmm(a[:, None], enc[:n])[:, 0]
            if save:
                s["a"][t, :n] = a
        else:
            ctx = feed
        cmb = s["cmb"][t, :n] if save else pre.new_empty(n, 2 * H)
        cmb[:, :H], cmb[:, H:] = x, ctx
        o = torch.tanh(cmb @ wc.t())
        out[:n, t] = o
        if att is None:
            feed = o  # input feeding
    return out, s, masks


class _FedBack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan, active, pre, feed0, h0, c0, enc, keys, mask_bias, *weights):
        with torch.autocast(pre.device.type, enabled=False):  # dtypes are chosen by the caller
            out, saved, masks = _forward(plan, active, pre, feed0, h0, c0, enc, keys, mask_bias, weights, save=True)
        ctx.plan, ctx.active, ctx.saved, ctx.masks = plan, active, saved, masks
        ctx.has_feed0, ctx.c0_dtype = feed0 is not None, None if c0 is None else c0.dtype
        ctx.save_for_backward(out, h0, enc, keys, *weights)
        return out

    @staticmethod
    def backward(ctx, d_out):
        with torch.autocast(d_out.device.type, enabled=False):
            grads = _backward(ctx, d_out)
        ctx.saved = ctx.masks = None
        return grads


def _backward(ctx, d_out):
    plan, active, s, masks = ctx.plan, ctx.active, ctx.saved, ctx.masks
    out, h0, enc, keys, *weights = ctx.saved_tensors
    wx, wh, bx, bh, wc, att = _unpack(plan, weights)
    B, T, H = out.shape
    L, S, dt, dev = plan.layers, enc.size(1), out.dtype, out.device
    lstm, gru = plan.cell == "lstm", plan.cell == "gru"
    k_in = [wx[i].size(1) - (0 if gru else H) for i in range(L)]
    zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float32, device=dev)  # noqa: E731
    dh = [zeros(B, H) for _ in range(L)]             # gradient reaching h_l of the step before
    dc = [zeros(B, H) for _ in range(L)] if lstm else None
    d_feed = zeros(B, H)                             # Luong: gradient reaching õ[t-1] through step t's input
    d_gx = [out.new_zeros(T, B, wx[i].size(0)) for i in range(L)]  # of each layer's input product
    d_gh = [out.new_zeros(T, B, 3 * H) for _ in range(L)] if gru else None
    d_z = out.new_zeros(T, B, H)                     # of the combine product
    d_s = zeros(T, B, S)                             # of the attention scores
    d_ctx = zeros(T, B, H)                           # of the contexts
    if att is not None:
        wq, bq, v = att
        d_keys, d_qp, d_v = zeros(B, S, H), out.new_zeros(T, B, H), zeros(1, H)
    for t in reversed(range(T)):
        n = active[t]
        o = out[:n, t].float()
        d_z[t, :n] = (d_out[:n, t].float() + d_feed[:n]) * (1 - o * o)
        d_cmb = (d_z[t, :n] @ wc).float()  # (n, 2H): top state and context
        dh[-1][:n] += d_cmb[:, :H]
        if att is None:  # Luong: scores = top · keys
            a = s["a"][t, :n]
            d_ctx[t, :n] = d_cmb[:, H:]
            da = torch.bmm(d_ctx[t, :n, None], enc[:n].transpose(1, 2))[:, 0]
            d_s[t, :n] = ds = a * (da - (a * da).sum(1, keepdim=True))
            dh[-1][:n] += torch.bmm(ds[:, None], keys[:n])[:, 0]
        d_x = None
        for i in reversed(range(L)):
            dhi = dh[i][:n]
            if lstm:
                act, c_prev, tc = s["act"][i][t, :n], s["c"][i][t, :n], s["tc"][i][t, :n]
                ig, fg, gg, og = act.chunk(4, 1)
                dct = dc[i][:n] + dhi * og * (1 - tc * tc)
                dg = torch.cat([dct * gg, dct * c_prev, dct * ig, dhi * tc], 1)
                dg *= torch.cat([act[:, :2 * H] * (1 - act[:, :2 * H]), 1 - gg * gg, og * (1 - og)], 1)
                dc[i][:n] = dct * fg
                d_gx[i][t, :n] = dg
                d_xh = d_gx[i][t, :n] @ wx[i]
                d_x, dh[i][:n] = d_xh[:, :k_in[i]], d_xh[:, k_in[i]:]
            elif gru:
                rzn, ghn, hprev = s["rzn"][i][t, :n], s["ghn"][i][t, :n], s["hprev"][i][t, :n].float()
                r, z, nn_ = rzn.chunk(3, 1)
                dnp = dhi * (1 - z) * (1 - nn_ * nn_)
                drp = dnp * ghn * r * (1 - r)
                dzp = dhi * (hprev - nn_) * z * (1 - z)
                d_gx[i][t, :n] = torch.cat([drp, dzp, dnp], 1)
                d_gh[i][t, :n] = torch.cat([drp, dzp, dnp * r], 1)
                d_x = d_gx[i][t, :n] @ wx[i]
                dh[i][:n] = dhi * z + d_gh[i][t, :n] @ wh[i]
            else:
                h = s["h"][i][t, :n]
                d_gx[i][t, :n] = dhi * (1 - h * h)
                d_xh = d_gx[i][t, :n] @ wx[i]
                d_x, dh[i][:n] = d_xh[:, :k_in[i]], d_xh[:, k_in[i]:]
            if i > 0:
                if masks is not None:
                    d_x = d_x * masks[i - 1, t, :n]
                dh[i - 1][:n] += d_x
        if att is None:
            d_feed[:n] = d_x  # layer 0's feed input is õ[t-1]
        else:  # Bahdanau: the feed is this step's context, queried with the previous top state
            a, u = s["a"][t, :n], s["u"][t, :n]
            d_ctx[t, :n] = d_cmb[:, H:] + d_x.float()
            da = torch.bmm(d_ctx[t, :n, None], enc[:n].transpose(1, 2))[:, 0]
            d_s[t, :n] = ds = a * (da - (a * da).sum(1, keepdim=True))
            d_v += ds.reshape(1, -1) @ u.reshape(-1, H).float()
            du = ds[..., None] * v.float() * (1 - u.float() ** 2)  # (n, S, H)
            d_keys[:n] += du
            d_qp[t, :n] = du.sum(1)
            dh[-1][:n] += d_qp[t, :n] @ wq
    # weight gradients: one product each over all T·B rows (rows of ended sentences are zeros)
    rows = lambda x: x.reshape(T * B, -1)  # noqa: E731
    g_wx = [rows(d_gx[i]).t() @ rows(s["xh"][i]) for i in range(L)]
    g_wh = [rows(d_gh[i]).t() @ rows(s["hprev"][i]) for i in range(L)] if gru else []
    g_bx = [column_sum(rows(d_gx[i])) for i in range(1, L)]
    g_bh = [column_sum(rows(d_gh[i])) for i in range(L)] if gru else []
    g_wc = rows(d_z).t() @ rows(s["cmb"])
    g_enc = torch.bmm(s["a"].permute(1, 2, 0), d_ctx.transpose(0, 1))  # Σ_t a ⊗ dctx: (B, S, H)
    if att is None:
        g_keys = torch.bmm(d_s.permute(1, 2, 0), s["cmb"][:, :, :H].transpose(0, 1).float())
        g_att = []
    else:
        g_keys = d_keys.to(dt)
        g_att = [rows(d_qp).t() @ rows(s["q"]), column_sum(rows(d_qp)), d_v.to(dt)]
    d_pre = d_gx[0].transpose(0, 1)
    dh0 = torch.stack(dh).to(h0.dtype)
    dc0 = torch.stack(dc).to(ctx.c0_dtype) if lstm and ctx.c0_dtype is not None else None
    d_feed0 = d_feed.to(dt) if ctx.has_feed0 and att is None else None
    return (None, None, d_pre, d_feed0, dh0, dc0, g_enc, g_keys, None,
            *g_wx, *g_wh, *g_bx, *g_bh, g_wc, *g_att)

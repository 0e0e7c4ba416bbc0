"""Text-aligned aggregator: Whisper-decoder layers whose queries are subword tokens, with cross-attention
KEYS from the last encoder layer and VALUES from a shallow one, pooled to exactly one vector per word."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taste.tokenizer.config import AggregatorConfig


def position_sinusoid(pos: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of normalised positions. pos: Tensor[...] in [0, 1] -> Tensor[..., dim]."""
    half = dim // 2
    freqs = math.pi * torch.exp(torch.arange(half, device=pos.device) * (math.log(64.0) / max(half - 1, 1)))
    angles = pos.unsqueeze(-1).float() * freqs  # (..., half)
    feats = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    return F.pad(feats, (0, dim - 2 * half))


def pool_words(hidden: Tensor, word_index: Tensor, n_words: int) -> tuple[Tensor, Tensor]:
    """Mean of the subword outputs of each word.

    hidden: Tensor[B, L, D]; word_index: LongTensor[B, L] (word of each token, -1 = no word / padding).
    Returns (vectors: Tensor[B, N, D], word_mask: BoolTensor[B, N]); N = n_words.
    """
    onehot = (word_index.unsqueeze(-1) == torch.arange(n_words, device=hidden.device)).to(hidden.dtype)  # (B, L, N)
    sums = onehot.transpose(1, 2) @ hidden  # (B, N, D)
    counts = onehot.sum(1)  # (B, N)
    return sums / counts.clamp(min=1).unsqueeze(-1), counts > 0


WIDTH_SCALE = math.log(512.0)  # entropies (nats) are divided by this before their sinusoid: ~1 at 512 uniform frames


def word_attention(attention: Tensor, word_index: Tensor, n_words: int) -> Tensor:
    """Each word's cross-attention over encoder frames: the mean of its subword tokens' distributions.

    attention: Tensor[B, L, T] (rows sum to 1, zero on padded frames); word_index: LongTensor[B, L] (-1 = none).
    Returns Tensor[B, N, T] (rows of absent words are zero), float32 whatever the attention's dtype (the frame
    assignment divides by column sums that are 0 on padded frames)."""
    attention = attention.float()
    onehot = (word_index.unsqueeze(-1) == torch.arange(n_words, device=attention.device)).to(attention.dtype)
    counts = onehot.sum(1).clamp(min=1)  # (B, N)
    return (onehot.transpose(1, 2) @ attention) / counts.unsqueeze(-1)


def word_attention_width(attention: Tensor, word_index: Tensor, n_words: int) -> Tensor:
    """Width of each word's cross-attention over encoder frames, in nats: the entropy H of the mean of its subword
    tokens' distributions (exp(H) = number of frames under uniform attention, so H ~ log duration).

    attention: Tensor[B, L, T] (rows sum to 1, zero on padded frames); word_index: LongTensor[B, L] (-1 = none).
    Returns Tensor[B, N] (0 for absent words)."""
    dist = word_attention(attention, word_index, n_words)
    return -(dist * dist.clamp(min=1e-12).log()).sum(-1)


def frame_assignment(word_att: Tensor) -> Tensor:
    """Which word each encoder frame belongs to, read off the cross-attention: every frame's column of the words'
    attention [B, N, T] normalised over the words -> Tensor[B, N, T] (each frame's column sums to 1, or to 0 where
    no word attends to it, e.g. a padded frame). Row-wise, attention says where a word looks; column-wise, which
    word a frame is heard as, so a word's frames can be counted however long it was spoken."""
    word_att = word_att.float()
    return word_att / word_att.sum(1, keepdim=True).clamp(min=1e-12)


def word_frame_counts(attention: Tensor, word_index: Tensor, n_words: int) -> Tensor:
    """Soft number of encoder frames of each word: its row of frame_assignment summed over frames -> Tensor[B, N]
    (over a word's frames and its share of pauses, leading and trailing silence mostly going to the first and last
    word; the counts of an utterance sum to its attended frames). Paired renditions that differ in one word share
    their pauses, so the difference of two counts is the word's own."""
    return frame_assignment(word_attention(attention, word_index, n_words)).sum(-1)


def word_monotonic_counts(attention: Tensor, word_index: Tensor, n_words: Tensor, frame_lengths: Tensor) -> Tensor:
    """Hard number of encoder frames of each word: the best monotonic segmentation of an utterance's frames into its
    words in order (every frame to exactly one word, every word at least one frame), scored by the log of
    frame_assignment -> Tensor[B, N] (float; 0 for absent words). A Viterbi search (like Glow-TTS's monotonic
    alignment search) over the same column-normalised attention that word_frame_counts sums: where the soft count
    spreads a long word's frames over its neighbours, the segmentation gives each frame to one word, so the count
    follows how long the word was spoken more closely. Pauses go to a neighbouring word, leading and trailing silence
    to the first and last. An utterance with fewer frames than words gets its soft counts (no segmentation exists).

    attention: Tensor[B, L, T]; word_index: LongTensor[B, L] (-1 = none); n_words, frame_lengths: LongTensor[B]."""
    n = int(n_words.max()) if n_words.numel() else 0
    soft = frame_assignment(word_attention(attention, word_index, n))  # (B, N, T), float32
    b, _, t_max = soft.shape
    if n == 0:
        return soft.new_zeros(b, 0)
    frames = frame_lengths.clamp(max=t_max)
    t_max = int(frames.max())  # frames past every utterance's end change nothing
    words = torch.arange(n, device=soft.device)
    blocked = -1e9
    score = soft.clamp(min=1e-12).log().masked_fill(~(words.view(1, -1, 1) < n_words.view(-1, 1, 1)), blocked)
    score = score.double()
    best = torch.full((b, n), blocked, dtype=torch.float64, device=soft.device)
    best[:, 0] = score[:, 0, 0]
    moved = torch.zeros(b, n, t_max, dtype=torch.bool, device=soft.device)  # frame t starts a new word
    for t in range(1, t_max):
        stay = best
        move = torch.cat([best.new_full((b, 1), blocked), best[:, :-1]], dim=1)
        step = move > stay
        updated = torch.where(step, move, stay) + score[:, :, t]
        live = (t < frames).unsqueeze(1)
        best = torch.where(live, updated, best)
        moved[:, :, t] = step & live
    counts = torch.zeros(b, n, dtype=torch.float32, device=soft.device)
    rows = torch.arange(b, device=soft.device)
    current = (n_words - 1).clamp(min=0)
    for t in range(t_max - 1, -1, -1):
        live = (t < frames) & (n_words > 0)  # an utterance without words counts nothing
        counts[rows, current] += live.float()
        current = current - (moved[rows, current, t] & live).long()
    fallback = frames < n_words  # too few frames to give every word one: keep the soft counts
    if bool(fallback.any()):
        counts[fallback] = soft.sum(-1)[fallback]
    return counts


class DurationEmbedding(nn.Module):
    """A word's duration statistic in nats of frames (attention width, or the log frame count) -> a vector added to
    the word vector before the RVQ: a sinusoid of the scaled statistic through a Linear that starts at zero (so a
    model starts exactly as without the feature)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        # nn.Linear's default init draws from the global RNG; its draws are zeroed right away, so restore the RNG
        # state afterwards: a model with the feature then initialises every other module (quantizer, decoder)
        # exactly as the same model without it (issue 13: the ablation row must differ only by the feature)
        with torch.random.fork_rng(devices=[]):
            self.proj = nn.Linear(d_model, d_model)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, width: Tensor) -> Tensor:  # [B, N] -> [B, N, D]
        return self.proj(position_sinusoid(width / WIDTH_SCALE, self.d_model))


class Attention(nn.Module):
    """Whisper-style multi-head attention (k_proj without bias), names match transformers for weight copying."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, D/H)
        b, t, d = x.shape
        return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None,
                need_weights: bool = False, bias: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """query: [B, L, D], key/value: [B, T, D], mask: Bool[B, 1 or L, T] (True = attend);
        bias: additive scores [B, H, L, T]. need_weights: also return the head-averaged weights [B, L, T]."""
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        attn_mask = None if mask is None else mask.unsqueeze(1)
        if bias is not None:  # additive score bias [B, H, L, T]; masked keys stay at -inf
            attn_mask = bias if attn_mask is None else bias.masked_fill(~attn_mask, float("-inf"))
        if not need_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, L, D/H)
            return self.out_proj(out.transpose(1, 2).reshape(query.shape))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, L, T)
        if attn_mask is not None:
            scores = scores + attn_mask if attn_mask.dtype != torch.bool else scores.masked_fill(~attn_mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        out = self.out_proj((weights @ v).transpose(1, 2).reshape(query.shape))
        return out, weights.mean(dim=1)


class AggregatorLayer(nn.Module):
    """Pre-LN Whisper decoder layer: causal self-attention, cross-attention (K and V from different layers), MLP."""

    def __init__(self, cfg: AggregatorConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.self_attn = Attention(d, cfg.n_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = Attention(d, cfg.n_heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        # Location prior of the cross-attention: score -= softplus(w_h) * (word-position distance)^2 per head
        # (distance in word widths under even pacing); the content scores refine where words really lie.
        self.location_weight = nn.Parameter(torch.zeros(cfg.n_heads))

    def forward(self, h: Tensor, self_mask: Tensor, query_pos: Tensor, keys: Tensor, values: Tensor,
                cross_mask: Tensor, need_weights: bool = False,
                distance: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """distance: [B, L, T] squared query-frame distance in word widths (None = no location prior).
        need_weights: also return the cross-attention weights [B, L, T] (head average)."""
        x = self.self_attn_layer_norm(h)
        h = h + self.self_attn(x, x, x, self_mask)
        x = self.encoder_attn_layer_norm(h)
        bias = None
        if distance is not None:
            bias = -F.softplus(self.location_weight)[None, :, None, None] * distance.unsqueeze(1)
        cross = self.encoder_attn(x + query_pos, keys, values, cross_mask, need_weights=need_weights, bias=bias)
        cross, weights = cross if need_weights else (cross, None)
        h = h + cross
        h = h + self.fc2(F.gelu(self.fc1(self.final_layer_norm(h))))
        return (h, weights) if need_weights else h


class Aggregator(nn.Module):
    """Subword queries x speech -> one vector per word."""

    def __init__(self, cfg: AggregatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.embed_positions = nn.Embedding(cfg.max_tokens, cfg.d_model)
        self.layers = nn.ModuleList(AggregatorLayer(cfg) for _ in range(cfg.layers))
        self.layer_norm = nn.LayerNorm(cfg.d_model)
        if cfg.duration_feature != "none":  # absent otherwise: a "none" model's weights are unchanged
            self.duration_embed = DurationEmbedding(cfg.d_model)
        self.reset_value_projections()

    def reset_value_projections(self) -> None:
        """v_proj of cross-attention = identity, so a word vector starts as an average of shallow-layer states."""
        with torch.no_grad():
            for layer in self.layers:
                layer.encoder_attn.v_proj.weight.copy_(torch.eye(self.cfg.d_model))
                layer.encoder_attn.v_proj.bias.zero_()

    def load_whisper_decoder(self, decoder: nn.Module) -> list[str]:
        """Copy matching weights from a transformers WhisperDecoder (embeddings, layers, final LN); returns names copied."""
        ours = self.state_dict()
        copied = []
        for name, tensor in decoder.state_dict().items():
            if name not in ours:
                continue
            target = ours[name]
            if name == "embed_positions.weight":
                tensor = tensor[: target.shape[0]]
            if tensor.shape == target.shape:
                ours[name] = tensor.clone()
                copied.append(name)
        self.load_state_dict(ours)
        self.reset_value_projections()
        return copied

    def forward(self, token_ids: Tensor, word_index: Tensor, n_words: Tensor, keys: Tensor, values: Tensor,
                frame_lengths: Tensor, return_attention: bool = False) -> tuple[Tensor, ...]:
        """token_ids, word_index: LongTensor[B, L] (-1 word index = padding); n_words: LongTensor[B];
        keys, values: Tensor[B, T, D] (last / shallow encoder layer); frame_lengths: LongTensor[B].
        Returns (word vectors Tensor[B, N, D], word_mask Bool[B, N]) with N = n_words.max(), plus the last layer's
        head-averaged cross-attention [B, L, T] when return_attention (what the alignment loss supervises).
        duration_feature "attention_width" / "frame_count" / "monotonic_count": each word vector also gets
        DurationEmbedding(width of its last-layer cross-attention / log of its frame count, word_frame_counts / log of
        its frames in the best monotonic segmentation, word_monotonic_counts), computed from the model's own
        attention (detached: a statistic, not a training path; no timings)."""
        b, length = token_ids.shape
        if length > self.cfg.max_tokens:
            raise ValueError(f"transcript has {length} subword tokens; the aggregator takes at most {self.cfg.max_tokens}")
        token_mask = token_ids >= 0
        positions = torch.arange(length, device=token_ids.device)
        h = self.embed_tokens(token_ids.clamp(min=0)) + self.embed_positions(positions)
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=h.device))
        self_mask = causal.unsqueeze(0) & token_mask.unsqueeze(1)
        self_mask = self_mask | torch.eye(length, dtype=torch.bool, device=h.device)  # padded rows attend to themselves
        t = keys.shape[1]
        frame_mask = torch.arange(t, device=h.device).unsqueeze(0) < frame_lengths.unsqueeze(1)  # (B, T)
        qpos = (word_index.clamp(min=0).float() + 0.5) / n_words.clamp(min=1).unsqueeze(1).float()
        kpos = torch.arange(t, device=h.device).unsqueeze(0).float() / frame_lengths.clamp(min=1).unsqueeze(1).float()
        query_pos = position_sinusoid(qpos, self.cfg.d_model)
        keys = keys + position_sinusoid(kpos, self.cfg.d_model)
        distance = ((qpos.unsqueeze(-1) - kpos.unsqueeze(1)) * n_words.view(-1, 1, 1).float()) ** 2  # (B, L, T)
        attention = None
        feature = self.cfg.duration_feature
        for i, layer in enumerate(self.layers):
            if (return_attention or feature != "none") and i == len(self.layers) - 1:
                h, attention = layer(h, self_mask, query_pos, keys, values, frame_mask.unsqueeze(1), need_weights=True,
                                     distance=distance)
            else:
                h = layer(h, self_mask, query_pos, keys, values, frame_mask.unsqueeze(1), distance=distance)
        h = self.layer_norm(h)
        vectors, word_mask = pool_words(h, word_index, int(n_words.max()))
        if feature != "none":
            n = int(n_words.max())
            if feature == "attention_width":
                stat = word_attention_width(attention.detach(), word_index, n)
            elif feature == "monotonic_count":
                stat = word_monotonic_counts(attention.detach(), word_index, n_words, frame_lengths).clamp(min=1.0).log()
            else:
                stat = word_frame_counts(attention.detach(), word_index, n).clamp(min=1.0).log()
            vectors = vectors + self.duration_embed(stat) * word_mask.unsqueeze(-1).to(vectors.dtype)
        return (vectors, word_mask, attention) if return_attention else (vectors, word_mask)

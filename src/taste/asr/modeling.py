"""Whisper that takes utterance-length inputs: transformers' Whisper with length-aware encoder and decoder.

transformers' `WhisperEncoder` insists on exactly `2 * max_source_positions` mel frames and has no padding mask,
and `WhisperDecoder` drops the encoder mask in cross-attention. On 2-10 s utterances, padding every batch to
the window costs several times the compute, and padding leaks into every state. `AsrWhisper` keeps the
weights, parameter names and `save_pretrained` format of `WhisperForConditionalGeneration` (a stock checkpoint
loads into it), but its encoder accepts any length up to the window and both parts mask padded frames, so an
utterance's states do not depend on what it is batched with. Models trained on the full 30 s window (pretrained
Whisper) set `config.pad_to_window = True` and get the stock behaviour (see `features.prepare_features`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
)
from transformers.models.whisper.modeling_whisper import WhisperDecoder, WhisperEncoder, sinusoids


class InputTooLongError(ValueError):
    """More mel frames than the encoder window holds."""


def key_padding_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """valid: Bool[B, S] -> additive attention mask [B, 1, 1, S] (0 where valid, dtype-min where padding)."""
    mask = torch.zeros(valid.shape, dtype=dtype, device=valid.device)
    mask = mask.masked_fill(~valid, torch.finfo(dtype).min)
    return mask[:, None, None, :]


def encoder_lengths(frame_lengths: torch.Tensor) -> torch.Tensor:
    """Mel-frame lengths [B] -> encoder-state lengths [B] (the second conv has stride 2: ceil(F / 2))."""
    return (frame_lengths + 1) // 2


class LengthAwareWhisperEncoder(WhisperEncoder):
    """Whisper encoder over [B, n_mels, F] with F <= 2 * max_source_positions and an optional frame mask."""

    def forward(  # type: ignore[override]
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> BaseModelOutput:
        """input_features: Tensor[B, n_mels, F]; attention_mask: Tensor[B, F] (1 = frame, 0 = padding).

        Returns last_hidden_state Tensor[B, ceil(F/2), D] (after the final LayerNorm) and, when asked,
        hidden_states = (embeddings, layer 1, ..., layer N after the final LayerNorm), transformers' convention.
        """
        n_frames = input_features.shape[-1]
        window = 2 * self.config.max_source_positions
        if n_frames > window:
            raise InputTooLongError(f"{n_frames} mel frames exceed the encoder window of {window} frames")
        x = nn.functional.gelu(self.conv1(input_features))  # (B, D, F)
        if attention_mask is not None:
            # zero the padded conv1 outputs, so conv2 sees what it sees at the end of an unpadded input
            x = x * attention_mask[:, None, :].to(x.dtype)
        x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)  # (B, S, D)
        hidden = x + self.embed_positions.weight[: x.shape[1]]
        hidden = nn.functional.dropout(hidden, p=self.dropout, training=self.training)
        mask = None
        if attention_mask is not None:
            valid = attention_mask[:, ::2].bool()  # frame 2s -> state s (stride-2 conv, padding 1)
            mask = key_padding_mask(valid, hidden.dtype)
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, mask)
            states.append(hidden)
        hidden = self.layer_norm(hidden)
        states[-1] = hidden
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=tuple(states) if output_hidden_states else None)


class LengthAwareWhisperDecoder(WhisperDecoder):
    """Whisper decoder whose cross-attention skips padded encoder states."""

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        use_cache: bool = False,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """input_ids: Long[B, L]; encoder_hidden_states: Tensor[B, S, D]; encoder_attention_mask: Tensor[B, S]
        (1 = state, 0 = padding); attention_mask: Tensor[B, L] over tokens. Returns last_hidden_state [B, L, D]."""
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        inputs_embeds = self.embed_tokens(input_ids)
        past = cache.get_seq_length() if cache is not None else 0
        if past + input_ids.shape[1] > self.max_target_positions:
            raise InputTooLongError(f"{past + input_ids.shape[1]} tokens exceed max_target_positions "
                                    f"{self.max_target_positions}")
        position_ids = (torch.arange(input_ids.shape[1], device=input_ids.device) + past).expand(input_ids.shape[0], -1)
        positions = self.embed_positions(input_ids, cache_length=past, position_ids=position_ids)
        hidden = inputs_embeds + positions.to(inputs_embeds.device)
        hidden = nn.functional.dropout(hidden, p=self.dropout, training=self.training)
        causal_mask = create_causal_mask(config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                         cache=cache, position_ids=position_ids)
        cross_mask = None
        if encoder_attention_mask is not None:
            cross_mask = key_padding_mask(encoder_attention_mask.bool(), hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, causal_mask, encoder_hidden_states, encoder_attention_mask=cross_mask,
                           cache=cache if use_cache else None, use_cache=use_cache)
        hidden = self.layer_norm(hidden)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden, cache=cache)


class AsrWhisper(WhisperForConditionalGeneration):
    """`WhisperForConditionalGeneration` with the length-aware encoder and decoder (same weights and names)."""

    def __init__(self, config: WhisperConfig):
        super().__init__(config)
        self.model.encoder = LengthAwareWhisperEncoder(config)
        self.model.decoder = LengthAwareWhisperDecoder(config)
        self.post_init()
        # The encoder's positions are fixed sinusoids (not trained). transformers writes them in _init_weights,
        # which skips modules swapped in after construction: without this the encoder gets frozen random
        # N(0, 0.02) positions, too weak to tell frames apart, and attention never learns to align.
        with torch.no_grad():
            self.model.encoder.embed_positions.weight.copy_(sinusoids(*self.model.encoder.embed_positions.weight.shape))

    def encode(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None,
               output_hidden_states: bool = False) -> BaseModelOutput:
        """input_features: Tensor[B, n_mels, F] (already normalised); attention_mask: Tensor[B, F]."""
        return self.model.encoder(input_features, attention_mask, output_hidden_states=output_hidden_states)

    def forward(  # type: ignore[override]
        self,
        input_features: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        """input_features: [B, n_mels, F]; attention_mask: frame mask [B, F]; decoder_input_ids: Long[B, L];
        labels: Long[B, L] with -100 where ignored. Returns logits [B, L, V] and the mean token cross-entropy."""
        enc = self.encode(input_features, attention_mask).last_hidden_state
        enc_mask = None if attention_mask is None else attention_mask[:, ::2]
        dec = self.model.decoder(decoder_input_ids, enc, encoder_attention_mask=enc_mask,
                                 attention_mask=decoder_attention_mask)
        logits = self.proj_out(dec.last_hidden_state)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=logits, encoder_last_hidden_state=enc)

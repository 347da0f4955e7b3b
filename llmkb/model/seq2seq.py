"""The original transformer ("Attention Is All You Need", 2017): a tiny encoder-decoder, from scratch.

In: a source string (a number in digits, ``"407"``). Out: the target string the decoder writes one
character at a time (``"four hundred seven"``). Training takes ``(source, target)`` pairs and
returns the model and its loss curve; :func:`exact_match` scores it on numbers it never saw.

The pieces, in the order a character meets them:

1. **Embedding plus sinusoidal positions**: one learned vector per character, scaled by
   ``sqrt(d_model)``, plus a fixed table of sines and cosines of the position. Nothing about
   position is learned. Encoder, decoder and output layer share one table (the paper does too).
2. **Encoder** (``n_layer`` blocks): *bidirectional* self-attention, where every source character
   sees every other one, then a ReLU feed-forward network. The blocks are *post-norm*:
   ``x = LayerNorm(x + sublayer(x))``, the paper's layout. Later models (GPT-2, Llama, see
   :mod:`llmkb.model.gpt`) moved the norm before the sublayer, which trains more stably when deep.
3. **Decoder** (``n_layer`` blocks), each with three sublayers:

   - **masked (causal) self-attention**: position ``t`` sees target positions ``<= t`` only, so
     training on a whole sentence at once cannot peek at the next character;
   - **cross-attention**: queries come from the decoder, keys and values from the encoder's
     output, so every output character can read every source character;
   - the ReLU feed-forward network.
4. **Output layer**: the shared embedding table, transposed, turns each decoder vector into
   logits over the characters.

BERT kept only the encoder (trained by filling in masked tokens), GPT only the decoder without
cross-attention (trained to predict the next token): :func:`objective_example` and
:func:`attention_masks` show the difference on one sentence.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmkb.checks import positive, require

# -- the toy task: numbers in digits -> English words --------------------------------------------

_ONES = "zero one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """``n`` (0..999) in English words, without "and"; 21..99 take a hyphen.

    Examples:
        >>> [number_to_words(n) for n in (0, 13, 40, 407, 999)]
        ['zero', 'thirteen', 'forty', 'four hundred seven', 'nine hundred ninety-nine']
    """
    if not 0 <= n <= 999:
        raise ValueError(f"{n} is outside 0..999")
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        words.append(_TENS[rest // 10] + (f"-{_ONES[rest % 10]}" if rest % 10 else ""))
    elif rest >= 10:
        words.append(_TEENS[rest - 10])
    elif rest or not hundreds:
        words.append(_ONES[rest])
    return " ".join(words)


def make_pairs(seed: int = 0, held_out: float = 0.2) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """All 1,000 ``("407", "four hundred seven")`` pairs, split into train and held-out numbers.

    The two sets share no number, so held-out exact match measures whether the model learned the
    rule, not a lookup table. The split depends on ``seed`` only.

    >>> train, test = make_pairs(seed=0)
    >>> len(train), len(test), len({s for s, _ in train} & {s for s, _ in test})
    (800, 200, 0)
    """
    pairs = [(str(n), number_to_words(n)) for n in range(1000)]
    random.Random(seed).shuffle(pairs)
    n_test = round(len(pairs) * held_out)
    return pairs[n_test:], pairs[:n_test]


# -- a character vocabulary with three special tokens --------------------------------------------

PAD, BOS, EOS = 0, 1, 2  # padding, begin-of-sequence (the decoder's first input), end-of-sequence
SPECIALS = ["<pad>", "<bos>", "<eos>"]
CHARS = sorted(set("0123456789 -" + "".join(number_to_words(n) for n in range(1000))))
VOCAB = SPECIALS + CHARS  # one vocabulary for both sides, so both can share one embedding table
STOI = {ch: i for i, ch in enumerate(VOCAB)}


def encode(text: str) -> list[int]:
    """Character ids (no specials).

    Examples:
        >>> encode("407"), decode(encode("407") + [EOS, PAD])
        ([9, 5, 12], '407')
    """
    return [STOI[ch] for ch in text]


def decode(ids) -> str:
    """The text of ``ids``, up to the first EOS; special tokens are dropped."""
    out = []
    for i in map(int, ids):
        if i == EOS:
            break
        if i >= len(SPECIALS):
            out.append(VOCAB[i])
    return "".join(out)


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long)


def teacher_forcing_batch(pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(encoder ids, decoder inputs, labels), each ``(B, length)``, padded with PAD.

    *Teacher forcing*: in training the decoder does not read its own guesses; it reads the true
    target shifted one place right, behind BOS, and must predict the character at each position.
    So ``decoder input[t] = target[t-1]`` and ``label[t] = target[t]``; the last label is EOS,
    which teaches the model when to stop. Every position trains at once, in one forward pass,
    and the causal mask keeps position ``t`` from reading ``label[t]`` in the input.

    Examples:
        >>> src, dec_in, labels = teacher_forcing_batch([("7", "seven")])
        >>> decode(src[0]), [VOCAB[i] for i in dec_in[0]], [VOCAB[i] for i in labels[0]]
        ('7', ['<bos>', 's', 'e', 'v', 'e', 'n'], ['s', 'e', 'v', 'e', 'n', '<eos>'])
    """
    src = _pad([encode(s) for s, _ in pairs])
    dec_in = _pad([[BOS] + encode(t) for _, t in pairs])
    labels = _pad([encode(t) + [EOS] for _, t in pairs])
    return src, dec_in, labels


# -- masks: who may attend to whom ---------------------------------------------------------------


def causal_mask(T: int, device=None) -> torch.Tensor:
    """``(T, T)`` bool, True where query ``i`` may read key ``j``: ``j <= i``."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(ids: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1, S)`` bool, True at real tokens: no query reads a PAD key."""
    return (ids != PAD)[:, None, None, :]


def attention_masks(T: int, S: int | None = None) -> dict[str, torch.Tensor]:
    """The three masks of the architecture, True = may attend, for ``T`` target and ``S`` source tokens.

    ``bidirectional`` ``(S, S)``: the encoder (and BERT), everyone sees everyone.
    ``causal`` ``(T, T)``: the decoder (and GPT), a token sees itself and what came before.
    ``cross`` ``(T, S)``: each decoder position sees every encoder position.

    >>> m = attention_masks(3)
    >>> m["causal"].int().tolist(), bool(m["bidirectional"].all()), tuple(m["cross"].shape)
    ([[1, 0, 0], [1, 1, 0], [1, 1, 1]], True, (3, 3))
    """
    S = T if S is None else S
    return {
        "bidirectional": torch.ones(S, S, dtype=torch.bool),
        "causal": causal_mask(T),
        "cross": torch.ones(T, S, dtype=torch.bool),
    }


# -- BERT's and GPT's training objectives on one sentence -----------------------------------------


def objective_example(
    tokens: list[str], seed: int = 0, vocab: list[str] | None = None, mask_token: str = "[MASK]"
) -> dict:
    """One sentence as BERT (masked LM) and as GPT (causal LM) see it in training.

    Masked LM (BERT): pick 15% of the positions (at least one); of those, 80% become
    ``[MASK]``, 10% a random token from ``vocab`` (default: the sentence's own tokens) and 10%
    stay as they are. The model predicts the original token at the picked positions only, from
    context on *both* sides. The random and unchanged 10% keep it from learning that only
    ``[MASK]`` positions matter, since ``[MASK]`` never appears when the model is used.

    Causal LM (GPT): the input is the sentence without its last token, the target the sentence
    without its first: every position predicts the next token, from the left context only.

    Returns ``mlm_input``, ``mlm_targets`` (the original token at picked positions, else None),
    ``mlm_rule`` (``"mask"``, ``"random"``, ``"keep"`` or None per position), ``clm_input`` and
    ``clm_targets``.

    Examples:
        >>> ex = objective_example("the cat sat on the mat".split(), seed=1)
        >>> ex["clm_input"], ex["clm_targets"]
        (['the', 'cat', 'sat', 'on', 'the'], ['cat', 'sat', 'on', 'the', 'mat'])
        >>> sum(t is not None for t in ex["mlm_targets"])
        1
    """
    rng = random.Random(seed)
    vocab = vocab or sorted(set(tokens))
    n_pick = max(1, round(0.15 * len(tokens)))  # BERT picks a fixed share of each sequence
    picked = set(rng.sample(range(len(tokens)), n_pick))
    mlm_input, targets, rules = list(tokens), [None] * len(tokens), [None] * len(tokens)
    for i in sorted(picked):
        targets[i] = tokens[i]
        r = rng.random()
        if r < 0.8:
            mlm_input[i], rules[i] = mask_token, "mask"
        elif r < 0.9:
            mlm_input[i], rules[i] = rng.choice(vocab), "random"
        else:
            rules[i] = "keep"
    return {
        "mlm_input": mlm_input,
        "mlm_targets": targets,
        "mlm_rule": rules,
        "clm_input": tokens[:-1],
        "clm_targets": tokens[1:],
    }


# -- the model -----------------------------------------------------------------------------------


@dataclass
class Seq2SeqConfig:
    d_model: int = 64  # width of every vector between the sublayers (the paper's base model: 512)
    n_head: int = 4  # attention heads; head size = d_model // n_head
    n_layer: int = 2  # blocks in the encoder, and again in the decoder (the paper: 6 and 6)
    d_ff: int = 256  # hidden width of the ReLU feed-forward network (4 x d_model, as in the paper)
    max_len: int = 64  # rows of the sinusoidal position table
    norm_eps: float = 1e-5
    # training: Adam with the paper's betas and its warmup-then-1/sqrt(step) learning rate
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3  # the peak, reached at the end of warmup
    warmup: int = 100

    def __post_init__(self) -> None:
        positive(self, "d_model", "n_head", "n_layer", "d_ff", "max_len", "norm_eps", "steps", "batch_size", "lr")
        positive(self, "warmup")  # the schedule divides by it
        require(self, "d_model", self.d_model % self.n_head == 0, f"divisible by n_head = {self.n_head}")

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoidal_positions(T: int, d_model: int) -> torch.Tensor:
    """``(T, d_model)``: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``.

    Each pair of dimensions is a clock at its own speed, from one turn every 2*pi positions to one
    every 10000*2*pi; a fixed offset ``k`` is a rotation of every pair, so attention can learn
    "k places back" as a linear map.

    >>> pe = sinusoidal_positions(4, 8)
    >>> tuple(pe.shape), float(pe[0, 0]), float(pe[0, 1]), round(float(pe[1, 0]), 4)
    ((4, 8), 0.0, 1.0, 0.8415)
    """
    pos = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    freq = 10_000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class MultiHeadAttention(nn.Module):
    """Queries from ``x``, keys and values from ``memory``: self-attention when ``memory is x``."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.d_model // config.n_head
        self.q_proj = nn.Linear(config.d_model, config.d_model)
        self.k_proj = nn.Linear(config.d_model, config.d_model)
        self.v_proj = nn.Linear(config.d_model, config.d_model)
        self.o_proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, return_weights: bool = False):
        B, T, _ = x.shape
        S = memory.shape[1]
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(memory).view(B, S, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, S, hs)
        v = self.v_proj(memory).view(B, S, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, S, hs)
        if return_weights:  # the explicit path, for plots of who attends to whom
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, nh, T, S)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = weights @ v
        else:
            weights = None
            # mask is bool, True = may attend; it broadcasts to (B, nh, T, S)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, -1)  # (B, T, d_model)
        return self.o_proj(y), weights


class FeedForward(nn.Module):
    """``max(0, x W1 + b1) W2 + b2``, applied to every position on its own."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.up = nn.Linear(config.d_model, config.d_ff)
        self.down = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.relu(self.up(x)))


class EncoderLayer(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(config)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.ffn = FeedForward(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor, return_weights: bool = False):
        attn, weights = self.self_attn(x, x, src_mask, return_weights)
        x = self.norm1(x + attn)  # post-norm: add, then normalise
        x = self.norm2(x + self.ffn(x))
        return x, weights


class DecoderLayer(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(config)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.cross_attn = MultiHeadAttention(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.ffn = FeedForward(config)
        self.norm3 = nn.LayerNorm(config.d_model, eps=config.norm_eps)

    def forward(self, x, memory, tgt_mask, src_mask, return_weights: bool = False):
        attn, self_weights = self.self_attn(x, x, tgt_mask, return_weights)  # causal: the past only
        x = self.norm1(x + attn)
        attn, cross_weights = self.cross_attn(x, memory, src_mask, return_weights)  # reads the source
        x = self.norm2(x + attn)
        x = self.norm3(x + self.ffn(x))
        return x, self_weights, cross_weights


class Seq2Seq(nn.Module):
    """The whole model. ``Seq2Seq(Seq2SeqConfig())``; ``model(src, dec_in, labels)`` -> (logits, loss)."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(len(VOCAB), config.d_model)
        # std 1/sqrt(d), times sqrt(d) in embed_tokens: unit-variance inputs, and logits of a
        # sensible size from the same table used as the output layer.
        nn.init.normal_(self.embed.weight, std=config.d_model**-0.5)
        self.register_buffer("pe", sinusoidal_positions(config.max_len, config.d_model), persistent=False)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layer))
        self.decoder = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_layer))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, d_model)``: scaled embedding plus position.

        Unlike RoPE, a position table has an end: a longer sequence is an error naming the setting.
        """
        if ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"a sequence of {ids.shape[1]} characters is longer than the model's {self.config.max_len} positions "
                f"(Seq2SeqConfig.max_len); shorten the text or train with a larger max_len"
            )
        return self.embed(ids) * math.sqrt(self.config.d_model) + self.pe[: ids.shape[1]]

    def _encode(self, src: torch.Tensor, with_weights: bool) -> tuple[torch.Tensor, list]:
        src_mask = padding_mask(src)  # (B, 1, 1, S): a PAD is never a key
        x = self.embed_tokens(src)
        weights = []
        for layer in self.encoder:
            x, w = layer(x, src_mask, with_weights)
            weights.append(w)
        return x, weights

    def _decode(self, memory, src, dec_in, with_weights: bool) -> tuple[torch.Tensor, list, list]:
        # (T, T). No padding mask needed: PADs only trail, and the causal mask already hides
        # every later position from a real one.
        tgt_mask = causal_mask(dec_in.shape[1], dec_in.device)
        src_mask = padding_mask(src)  # (B, 1, 1, S) for the cross-attention's keys
        x = self.embed_tokens(dec_in)
        self_weights, cross_weights = [], []
        for layer in self.decoder:
            x, sw, cw = layer(x, memory, tgt_mask, src_mask, with_weights)
            self_weights.append(sw)
            cross_weights.append(cw)
        logits = x @ self.embed.weight.T  # (B, T, vocab): the embedding table is the output layer
        return logits, self_weights, cross_weights

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """The encoder's output ``(B, S, d_model)``: one vector per source character, each one
        having read the whole source."""
        return self._encode(src, with_weights=False)[0]

    def decode(self, memory: torch.Tensor, src: torch.Tensor, dec_in: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, vocab)`` for each decoder position, given the encoder's ``memory``."""
        return self._decode(memory, src, dec_in, with_weights=False)[0]

    def forward(
        self, src: torch.Tensor, dec_in: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits (B, T, vocab), loss)``: the mean cross-entropy over non-PAD ``labels``, or None
        without labels. Attention weights come from :meth:`attention_maps`."""
        logits = self.decode(self.encode(src), src, dec_in)
        loss = None
        if labels is not None:  # PAD labels (past the EOS) count for nothing
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=PAD)
        return logits, loss

    def attention_maps(self, src: torch.Tensor, dec_in: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Every layer's attention weights, for plots: ``encoder`` ``(B, nh, S, S)``, ``decoder``
        ``(B, nh, T, T)`` and ``cross`` ``(B, nh, T, S)`` (row ``t``: what decoder position ``t`` read)."""
        memory, encoder = self._encode(src, with_weights=True)
        _, decoder, cross = self._decode(memory, src, dec_in, with_weights=True)
        return {"encoder": encoder, "decoder": decoder, "cross": cross}


# -- training and greedy decoding ----------------------------------------------------------------


def lr_at(step: int, config: Seq2SeqConfig) -> float:
    """The paper's schedule, scaled to peak at ``config.lr``: linear warmup, then ``1/sqrt(step)``.

    Post-norm transformers need the warmup: at full learning rate from step one they diverge.

    >>> cfg = Seq2SeqConfig(lr=1.0, warmup=100)
    >>> lr_at(50, cfg), lr_at(100, cfg), lr_at(400, cfg)
    (0.5, 1.0, 0.5)
    """
    step = max(step, 1)
    return config.lr * min(step / config.warmup, math.sqrt(config.warmup / step))


def train(
    config: Seq2SeqConfig | None = None,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    pairs: list[tuple[str, str]] | None = None,
) -> tuple[Seq2Seq, list[float]]:
    """Train on ``pairs`` (default: the training half of ``make_pairs()``); return (model, losses).

    Each step draws ``batch_size`` random pairs, runs one teacher-forced forward pass and one Adam
    step. ``steps`` defaults to ``config.steps``; ``seed`` fixes the initial weights and the batches.
    """
    from tqdm.auto import tqdm

    config = config or Seq2SeqConfig()
    steps = config.steps if steps is None else steps
    pairs = pairs if pairs is not None else make_pairs()[0]
    torch.manual_seed(seed)
    model = Seq2Seq(config)
    # Adam with the paper's beta2 = 0.98 and eps = 1e-9; the schedule sets the rate each step.
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    rng = random.Random(seed)
    losses = []
    model.train()
    for step in tqdm(range(1, steps + 1), desc="seq2seq", unit="step", disable=not progress):
        src, dec_in, labels = teacher_forcing_batch(rng.choices(pairs, k=config.batch_size))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        _, loss = model(src, dec_in, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return model, losses


@torch.no_grad()
def translate_batch(model: Seq2Seq, texts: list[str], max_len: int = 40) -> list[str]:
    """Greedy decoding: encode once, then feed the decoder its own output one character at a time.

    Start from BOS; at each step run the decoder on everything written so far, append the most
    likely next character, and stop when every row has written EOS. (Real systems keep a KV cache
    and often use beam search; recomputing is simpler and cheap at this size.)
    """
    model.eval()
    src = _pad([encode(t) for t in texts])
    memory = model.encode(src)  # (B, S, d_model), computed once for all steps
    out = torch.full((len(texts), 1), BOS, dtype=torch.long)  # (B, 1)
    done = torch.zeros(len(texts), dtype=torch.bool)
    for _ in range(min(max_len, model.config.max_len - 1)):
        logits = model.decode(memory, src, out)  # (B, t, vocab)
        nxt = logits[:, -1].argmax(dim=-1)  # (B,) only the last position is new
        nxt = nxt.masked_fill(done, PAD)  # finished rows just pad
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == EOS
        if done.all():
            break
    return [decode(row[1:]) for row in out]


def translate(model: Seq2Seq, text: str) -> str:
    """``translate(model, "407")`` -> ``"four hundred seven"`` (once trained)."""
    return translate_batch(model, [text])[0]


def exact_match(model: Seq2Seq, pairs: list[tuple[str, str]]) -> float:
    """The share of ``pairs`` whose greedy translation equals the target exactly."""
    outputs = translate_batch(model, [s for s, _ in pairs])
    return sum(o == t for o, (_, t) in zip(outputs, pairs)) / len(pairs)

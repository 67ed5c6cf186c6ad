"""The preprocessing model gives aiXcoder prompts the token ids of aiXcoder's reference builder.

A tiny SentencePiece BPE model, trained here with aiXcoder's layout (bos 1 `<s>`, eos 2 `</s>`,
the FIM sentinels as user-defined pieces with their space mark, byte fallback, a dummy-prefix
space mark), is turned into the tokenizer.json the preprocessing loads. The ids the preprocessing
gives for prompts from aixaudit.prompts are compared with the reference algorithm, written out
below on the SentencePiece processor itself; the prompt tokenized as one string, as the
preprocessing did before, gives other ids, so the comparison can fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from python_backend import load_model, preprocess, start_model, words
from tokenizers import AddedToken, Tokenizer, decoders, normalizers
from tokenizers.models import BPE, WordLevel

from aixaudit.languages import get_language
from aixaudit.prompts import (
    AIXCODER_STOP_WORDS,
    MIDDLE,
    POST,
    PRE,
    Prompt,
    build_prompt,
    get_profile,
)
from aixaudit.tokens import ApproximateTokenizer

CODE = '''\
def add(a, b):
    """Return the sum of a and b."""
    return a + b


class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()


def mean(values):
    total = 0
    for value in values:
        total += value
    return total / len(values) if values else 0.0


public static int max(int a, int b) {
    return a > b ? a : b;
}

function greet(name) {
  console.log(`Hello, ${name}!`);
  return name.length;
}

for (let i = 0; i < 10; i++) {
  if (i % 2 === 0) {
    console.log(i);
  }
}
'''
SENTINELS = (PRE, POST, MIDDLE)
THROWAWAY = "☺"
PREFIX = "def mean(values):\n    total = 0\n    for value in values:\n"
HEADER = "# the file path is: src/stats.py\n# the code file is written by Python\n"
SUFFIXES = {
    "newline": "\n    return total / len(values)\n",
    "space": " total += 1\n",
    "code": "return total\n",
}


@pytest.fixture(scope="module")
def sp(tmp_path_factory: pytest.TempPathFactory) -> spm.SentencePieceProcessor:
    """A SentencePiece BPE model laid out as aiXcoder's, trained on CODE."""
    prefix = tmp_path_factory.mktemp("spm") / "aix"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CODE.splitlines()),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=400,
        hard_vocab_limit=False,
        user_defined_symbols=list(SENTINELS),
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=f"{prefix}.model")


def reference_ids(
    sp: spm.SentencePieceProcessor, prompt: Prompt, *, header: str, order: str
) -> list[int]:
    """aiXcoder's reference builder, step by step, on the SentencePiece processor itself.

    aiXcoder-7B's `Tokenizer.encode` (SPM): BOS, PRE, POST, the suffix, MIDDLE, header + prefix;
    PSM (its FIM harness's order) puts the same pieces as BOS, PRE, header + prefix, POST, the
    suffix, MIDDLE."""
    bos = sp.bos_id()
    pre, post, middle = (sp.piece_to_id(sentinel) for sentinel in SENTINELS)
    # The suffix behind a throw-away character, whose ids are dropped: no leading space mark.
    dropped = len(sp.encode(THROWAWAY))
    suffix = sp.encode(THROWAWAY + prompt.suffix)[dropped:]
    # The header and the prefix, one piece, encoded as any text.
    code = sp.encode(header + prompt.prefix)
    if order == "spm":
        return [bos, pre, post, *suffix, middle, *code]
    return [bos, pre, *code, post, *suffix, middle]


def as_tokenizer(sp: spm.SentencePieceProcessor, *, sentinels_added: bool) -> Tokenizer:
    """The `tokenizers` form of `sp`, as Llama's legacy tokenizer.json: byte-fallback BPE, the
    space mark prepended and spaces replaced by it, `<s>` and `</s>` special added tokens. The
    sentinels are vocabulary pieces, and added tokens too if `sentinels_added`."""
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    ordinary = [
        piece
        for piece, i in vocab.items()
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)) and piece not in SENTINELS
    ]
    # SentencePiece merges the adjacent pair whose piece scores best; scores fall as ids grow.
    merges = sorted(
        (vocab[piece], vocab[piece[:cut]], vocab[piece[cut:]], piece[:cut], piece[cut:])
        for piece in ordinary
        for cut in range(1, len(piece))
        if piece[:cut] in vocab and piece[cut:] in vocab
    )
    model = BPE(
        vocab,
        [(left, right) for *_, left, right in merges],
        unk_token="<unk>",
        byte_fallback=True,
        fuse_unk=True,
    )
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")]
    )
    if sentinels_added:
        tokenizer.add_tokens([AddedToken(t, normalized=False) for t in SENTINELS])
    return tokenizer


@pytest.fixture(params=[False, True], ids=["sentinels-in-vocab", "sentinels-added"])
def tokenizer_dir(
    request: pytest.FixtureRequest, sp: spm.SentencePieceProcessor, tmp_path: Path
) -> Path:
    """tokenizer.json and aiXcoder's tokenizer_config.json (bos `<s>`, eos `</s>`)."""
    as_tokenizer(sp, sentinels_added=request.param).save(str(tmp_path / "tokenizer.json"))
    config = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": None}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    return tmp_path


def _prompt(profile_name: str, suffix: str) -> Prompt:
    return build_prompt(
        get_profile(profile_name),
        language=get_language("python"),
        path="src/stats.py",
        prefix=PREFIX,
        suffix=suffix,
        counter=ApproximateTokenizer(),
        budget=1000,
    )


def test_the_tokenizer_json_encodes_plain_text_as_sentencepiece_does(
    sp: spm.SentencePieceProcessor, tokenizer_dir: Path
) -> None:
    """So any difference below is the prompt algorithm's, not the conversion's."""
    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    texts = [*CODE.splitlines(keepends=True), CODE, PREFIX, HEADER + PREFIX, THROWAWAY]
    texts += [text for suffix in SUFFIXES.values() for text in (suffix, THROWAWAY + suffix)]
    for text in texts:
        assert tokenizer.encode(text, add_special_tokens=False).ids == sp.encode(text), text
    assert [tokenizer.token_to_id(s) for s in SENTINELS] == [3, 4, 5]


@pytest.mark.parametrize("suffix", SUFFIXES.values(), ids=SUFFIXES.keys())
@pytest.mark.parametrize(("profile_name", "order"), [("aixcoder", "spm"), ("aixcoder-psm", "psm")])
def test_prompt_ids_are_the_reference_builders(
    sp: spm.SentencePieceProcessor,
    tokenizer_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    profile_name: str,
    order: str,
    suffix: str,
) -> None:
    prompt = _prompt(profile_name, suffix)
    assert (prompt.prefix, prompt.suffix) == (PREFIX, suffix)  # nothing truncated
    pre = start_model("preprocessing", monkeypatch, tokenizer_dir=str(tokenizer_dir))
    ids = preprocess(pre, [prompt.text])["INPUT_ID"][0].tolist()

    expected = reference_ids(sp, prompt, header=HEADER, order=order)
    assert ids == expected
    assert ids.count(1) == 1  # one <s>, the first id
    # The prompt tokenized as one string, as the preprocessing did before: other ids.
    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    naive = tokenizer.encode(prompt.text, add_special_tokens=False).ids
    assert naive[0] == 1
    assert naive != expected


def test_the_suffix_has_no_leading_space_mark(
    sp: spm.SentencePieceProcessor, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand-checked pieces: <s> PRE POST, then the suffix's own newline and indent (SPM)."""
    pre = start_model("preprocessing", monkeypatch, tokenizer_dir=str(tokenizer_dir))
    for name, first in (("newline", ["<0x0A>", "▁▁▁▁"]), ("space", ["▁"])):
        ids = preprocess(pre, [_prompt("aixcoder", SUFFIXES[name]).text])["INPUT_ID"][0]
        pieces = [sp.id_to_piece(int(i)) for i in ids]
        assert pieces[: 3 + len(first)] == ["<s>", PRE, POST, *first]
        # Encoded alone, SentencePiece would start the suffix with its dummy space mark.
        assert sp.encode(SUFFIXES[name], out_type=str)[0].startswith("▁")
        assert sp.encode(SUFFIXES[name], out_type=str)[: len(first)] != first


def test_a_prompt_without_bos_gets_one(
    sp: spm.SentencePieceProcessor, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = _prompt("aixcoder", SUFFIXES["code"])
    pre = start_model("preprocessing", monkeypatch, tokenizer_dir=str(tokenizer_dir))
    with_bos, without_bos = preprocess(pre, [prompt.text, prompt.text.removeprefix("<s>")])[
        "INPUT_ID"
    ].tolist()
    assert with_bos == without_bos == reference_ids(sp, prompt, header=HEADER, order="spm")


def test_plain_text_is_tokenized_as_before(
    sp: spm.SentencePieceProcessor, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pre = start_model("preprocessing", monkeypatch, tokenizer_dir=str(tokenizer_dir))
    assert preprocess(pre, [PREFIX])["INPUT_ID"][0].tolist() == [1, *sp.encode(PREFIX)]


def test_stop_words_are_eos_and_the_sentinels_single_ids(
    sp: spm.SentencePieceProcessor, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's aiXcoder stop words (no space mark) stop on the tokens generation emits."""
    pre = start_model("preprocessing", monkeypatch, tokenizer_dir=str(tokenizer_dir))
    prompt = _prompt("aixcoder", SUFFIXES["code"])
    outputs = preprocess(pre, [prompt.text], STOP_WORDS_DICT=words([[*AIXCODER_STOP_WORDS, "pop"]]))
    assert AIXCODER_STOP_WORDS == ("</s>", "<AIX-SPAN-PRE>", "<AIX-SPAN-POST>", "<AIX-SPAN-MIDDLE>")
    pop = sp.encode("pop")  # an ordinary word stays its pieces
    assert len(pop) == 2
    assert outputs["STOP_WORDS_IDS"].tolist() == [[[2, 3, 4, 5, *pop], [1, 2, 3, 4, 6, -1]]]
    assert outputs["OUT_END_ID"].tolist() == [[2]]


def test_sentinels_the_tokenizer_lacks_are_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = Tokenizer(WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2}, unk_token="<unk>"))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    pre = start_model("preprocessing", monkeypatch, tokenizer_dir=str(tmp_path))
    request = {
        "QUERY": np.array([[_prompt("aixcoder", "x").text.encode()]], dtype=np.object_),
        "REQUEST_OUTPUT_LEN": np.array([[8]], dtype=np.int32),
    }
    (response,) = pre.execute([request])
    assert "'▁<AIX-SPAN-PRE>', a token this tokenizer lacks" in response.error
    # Plain text that merely spells those tokens is ordinary text, on any tokenizer.
    plain = {**request, "QUERY": np.array([[f"x = '<s>{PRE}'".encode()]], dtype=np.object_)}
    (response,) = pre.execute([plain])
    assert response.error is None


def test_only_the_prompt_frame_is_special_not_the_code_inside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fim_ids = load_model("preprocessing", monkeypatch).fim_ids
    ids = {"<s>": 1, PRE: 3, POST: 4, MIDDLE: 5}

    def encode(text: str) -> list[int]:  # one id per character, far above the special ids
        return [ord(char) + 100 for char in text]

    lt, s, gt = 160, 215, 162  # "<", "s", ">" as encode spells them
    # PSM whose prefix holds "<s>" (a file about prompts): the frame is special, the code is not.
    psm = f"<s>{PRE}a<s>{POST}b{MIDDLE}"
    assert fim_ids(psm, encode=encode, ids=ids) == [1, 3, 197, lt, s, gt, 4, 198, 5]
    # SPM whose suffix spells a sentinel after the real one: the first MIDDLE ends the suffix.
    spm = f"<s>{PRE}{POST}b<s>{MIDDLE}c{MIDDLE}"
    expected = [1, 3, 4, 198, lt, s, gt, 5, *encode(f"c{MIDDLE}")]
    assert fim_ids(spm, encode=encode, ids=ids) == expected
    with pytest.raises(ValueError, match="lacks"):
        fim_ids(f"<s>{PRE}only a prefix", encode=encode, ids=ids)

"""Model references: every accepted form, and the hostile ones refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.errors import InvalidReference, LlamadeckError
from engine.store.refs import HubRef, LocalRef, ModelRef, parse_local_name, parse_ref

SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf.co/unsloth/gemma-3-270m-it-GGUF", HubRef("unsloth/gemma-3-270m-it-GGUF", None)),
        ("hf.co/unsloth/gemma-3-270m-it-GGUF:Q4_K_M", HubRef("unsloth/gemma-3-270m-it-GGUF", "Q4_K_M")),
        ("hf.co/unsloth/gemma-3-270m-it-GGUF:q4_k_m", HubRef("unsloth/gemma-3-270m-it-GGUF", "Q4_K_M")),
        (
            "hf.co/unsloth/gemma-3-270m-it-GGUF:UD-Q4_K_XL",
            HubRef("unsloth/gemma-3-270m-it-GGUF", "UD-Q4_K_XL"),
        ),
        (
            "HF.CO/bartowski/Llama-3.2-1B-Instruct-GGUF:iq4_xs",
            HubRef("bartowski/Llama-3.2-1B-Instruct-GGUF", "IQ4_XS"),
        ),
        ("huggingface.co/TheBloke/Llama-2-7B-GGUF:Q8_0", HubRef("TheBloke/Llama-2-7B-GGUF", "Q8_0")),
        ("https://huggingface.co/TheBloke/Llama-2-7B-GGUF", HubRef("TheBloke/Llama-2-7B-GGUF", None)),
        ("https://hf.co/ggml-org/gemma-3-1b-it-GGUF:Q4_K_M", HubRef("ggml-org/gemma-3-1b-it-GGUF", "Q4_K_M")),
        ("http://huggingface.co/a/b", HubRef("a/b", None)),
        (
            "lmstudio-community/Qwen2.5-7B-Instruct-GGUF",
            HubRef("lmstudio-community/Qwen2.5-7B-Instruct-GGUF", None),
        ),
        ("Qwen/Qwen2.5-0.5B-Instruct-GGUF:q8_0", HubRef("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "Q8_0")),
        ("hf.co/a/b:latest", HubRef("a/b", None)),
        ("a/b:LATEST", HubRef("a/b", None)),
        ("a_/b_", HubRef("a_/b_", None)),
        ("a.b/c.d", HubRef("a.b/c.d", None)),
        ("1/2", HubRef("1/2", None)),
        ("  hf.co/a/b:q2_k\t", HubRef("a/b", "Q2_K")),
        ("gemma3", LocalRef("gemma3", "latest")),
        ("gemma3:270m", LocalRef("gemma3", "270m")),
        ("Gemma3:270M", LocalRef("gemma3", "270m")),
        ("my-model.v2:_draft", LocalRef("my-model.v2", "_draft")),
        ("llama3.2:3b-instruct-q4_K_M", LocalRef("llama3.2", "3b-instruct-q4_k_m")),
        ("x" * 80, LocalRef("x" * 80)),
        (f"x:{'t' * 80}", LocalRef("x", "t" * 80)),
        (f"{'o' * 96}/{'r' * 96}:{'Q' * 40}", HubRef(f"{'o' * 96}/{'r' * 96}", "Q" * 40)),
        (" gemma3 ", LocalRef("gemma3")),
    ],
)
def test_accepted_forms(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # escaping the store
        ("../x", "'..'"),
        ("..", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a/../../b", "'..'"),
        ("hf.co/../x", "'..'"),
        ("hf.co/a/..", "'..'"),
        ("org/repo/../../etc", "'..'"),
        ("./x", "ORG and REPO"),
        (".", "name uses"),
        (".hidden", "name uses"),
        ("a/.", "ORG and REPO"),
        ("~/x", "ORG and REPO"),
        ("~root", "name uses"),
        ("$HOME", "name uses"),
        ("a\\b", "backslash"),
        ("C:\\x", "backslash"),
        ("C:/x", "absolute"),
        ("\\\\server\\share", "backslash"),
        ("file:///etc/passwd", "absolute"),
        # control characters and whitespace
        ("name\x00", "control"),
        ("\x00", "control"),
        ("x\n", "control"),
        ("x\r\ny", "control"),
        ("x\x1b[31mred", "control"),
        ("x\x7f", "control"),
        ("a b", "whitespace"),
        ("a\u00a0b", "whitespace"),
        ("gemma3:\u2003", "whitespace"),
        # empty parts
        ("", "empty"),
        ("   ", "empty"),
        (":tag", "name before ':' is empty"),
        ("name:", "tag after ':' is empty"),
        (":", "empty"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("/a", "absolute"),
        ("hf.co/a/b/", "empty path segment"),
        ("hf.co//a/b", "empty path segment"),
        ("hf.co/a/b:", "empty"),
        # structure
        ("a:b:c", "more than one ':'"),
        ("hf.co/a/b:c:d", "more than one ':'"),
        ("a/b/c", "too many '/'"),
        ("a/b/c/d", "too many '/'"),
        ("hf.co/a/b/c", "hf.co/ORG/REPO"),
        ("hf.co", "hf.co/ORG/REPO"),
        ("hf.co:q4_k_m", "hf.co/ORG/REPO"),
        ("hf.co/gemma", "hf.co/ORG/REPO"),
        ("huggingface.co/a", "hf.co/ORG/REPO"),
        ("https://example.com/a/b", "URL"),
        ("https://a/b", "URL"),
        ("https://", "empty"),
        ("https://huggingface.co/a/b/tree/main", "hf.co/ORG/REPO"),
        # Hub naming rules
        ("-org/repo", "ORG and REPO"),
        ("org/repo-", "ORG and REPO"),
        ("org/repo.", "ORG and REPO"),
        ("_org/repo", "ORG and REPO"),
        ("org/re--po", "'--'"),
        ("org/repo.git", ".git"),
        ("org/re po", "whitespace"),
        ("org/re$po", "ORG and REPO"),
        (f"{'o' * 97}/repo", "96"),
        (f"org/{'r' * 97}", "96"),
        (f"org/{'r' * 300}", "96"),
        ("org/repo:Q4 K M", "whitespace"),
        ("org/repo:Q4.K", "quant uses"),
        ("org/repo:-rf", "quant uses"),
        ("org/repo:q4/k", "quant uses"),
        (f"org/repo:{'Q' * 41}", "40"),
        # local naming rules
        ("x" * 81, "longer than 80"),
        ("x" * 300, "longer than 80"),
        (f"x:{'t' * 81}", "longer than 80"),
        ("-x", "name uses"),
        ("_x", "name uses"),
        ("x:-t", "tag uses"),
        ("x:.t", "tag uses"),
        ("x.", "cannot end in '.'"),
        ("x:t.", "cannot end in '.'"),
        ("x..y", "'..'"),
        ("x:a..b", "'..'"),
        ("x@y", "name uses"),
        ("x;rm -rf", "whitespace"),
        ("x*", "name uses"),
        # look-alikes
        ("gemm\u0430", "non-ASCII"),  # Cyrillic a
        ("\u212aimi", "non-ASCII"),  # Kelvin sign lower-cases to an ASCII k
        ("\u0130nstruct", "non-ASCII"),  # dotted capital I
        ("hf.co/\uff41/b", "non-ASCII"),  # full-width a
        ("hf\u2024co/a/b", "non-ASCII"),  # one-dot leader
        ("a\u2215b", "non-ASCII"),  # division slash
        ("x\u202etxt.exe", "non-ASCII"),  # right-to-left override
        ("x\u200b", "non-ASCII"),  # zero-width space
        ("mod\u0435l:l\u0430test", "non-ASCII"),
    ],
)
def test_hostile_and_malformed_references_are_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidReference) as error:
        parse_ref(text)
    message = str(error.value)
    assert why in message
    assert "\n" not in message and "\r" not in message
    assert message.isascii() and message.isprintable()
    assert "NAME[:TAG]" in message and "hf.co/ORG/REPO[:QUANT]" in message


def test_error_quotes_the_text_safely() -> None:
    with pytest.raises(InvalidReference) as error:
        parse_ref("evil\x1b[2J\nname")
    assert str(error.value).startswith("invalid model reference 'evil\\x1b[2J\\nname': ")


def test_error_shortens_very_long_text() -> None:
    with pytest.raises(InvalidReference) as error:
        parse_ref("y" * 5000)
    message = str(error.value)
    assert "(5000 characters)" in message
    assert len(message) < 300


def test_invalid_reference_is_a_llamadeck_error() -> None:
    assert issubclass(InvalidReference, LlamadeckError)


def test_hub_ref_views() -> None:
    ref = parse_ref("hf.co/Org/Repo-GGUF:q4_k_m")
    assert isinstance(ref, HubRef)
    assert ref.repo == "Org/Repo-GGUF"
    assert ref.name == "hf.co/Org/Repo-GGUF"
    assert ref.tag == ref.quant == "Q4_K_M"
    assert str(ref) == "hf.co/Org/Repo-GGUF:Q4_K_M"
    bare = HubRef("Org/Repo-GGUF")
    assert bare.tag is None
    assert str(bare) == "hf.co/Org/Repo-GGUF"


def test_local_ref_views() -> None:
    ref = parse_ref("Gemma3:270M")
    assert isinstance(ref, LocalRef)
    assert (ref.name, ref.tag, str(ref)) == ("gemma3", "270m", "gemma3:270m")
    assert str(LocalRef("gemma3")) == "gemma3:latest"


def test_refs_are_frozen_and_hashable() -> None:
    ref = parse_ref("a/b:q4_k_m")
    with pytest.raises(AttributeError):
        ref.repo = "x/y"  # type: ignore[misc,union-attr]
    assert {ref, parse_ref("hf.co/a/b:Q4_K_M")} == {ref}


@pytest.mark.parametrize(
    ("make", "fields"),
    [
        (lambda: HubRef("../x"), "'..'"),
        (lambda: HubRef("a/b/c"), "ORG/REPO"),
        (lambda: HubRef("a/b", "Q4/K"), "quant uses"),
        (lambda: HubRef("a/b", ""), "empty"),
        (lambda: LocalRef("../x"), "'..'"),
        (lambda: LocalRef("x", ""), "tag is empty"),
        (lambda: LocalRef("", "t"), "name is empty"),
        (lambda: LocalRef("a/b"), "name uses"),
        (lambda: LocalRef("\u212a"), "non-ASCII"),
        (lambda: LocalRef("hf.co"), "Hugging Face host"),
    ],
)
def test_refs_built_directly_are_checked_too(make: object, fields: str) -> None:
    with pytest.raises(InvalidReference, match=re.escape(fields)):
        make()  # type: ignore[operator]


def test_refs_built_directly_are_normalized() -> None:
    assert LocalRef("Gemma3", "270M") == LocalRef("gemma3", "270m")
    assert HubRef("a/b", "q4_k_m") == HubRef("a/b", "Q4_K_M")
    assert HubRef("a/b", "latest") == HubRef("a/b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my-model", LocalRef("my-model", "latest")),
        ("My-Model:V2", LocalRef("my-model", "v2")),
        (" copy:1 ", LocalRef("copy", "1")),
    ],
)
def test_parse_local_name(text: str, expected: LocalRef) -> None:
    assert parse_local_name(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hf.co/a/b", "Hugging Face reference"),
        ("org/repo:q4_k_m", "Hugging Face reference"),
        ("https://huggingface.co/a/b", "Hugging Face reference"),
        ("../x", "'..'"),
        ("a/b/c", "too many"),
        ("x\n", "control"),
        ("name:", "empty"),
    ],
)
def test_parse_local_name_refuses_hub_and_hostile_names(text: str, why: str) -> None:
    with pytest.raises(InvalidReference) as error:
        parse_local_name(text)
    message = str(error.value)
    assert why in message
    assert "NAME[:TAG]" in message and "hf.co" not in message.split(": ", 1)[1].split(";")[-1]


# --- properties -------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "a", "Z", "0", "_", "-", ".", "..", "/", ":", "\\", " ", "\n", "\x00", "~",
        "hf.co", "huggingface.co", "https://", "latest", "q4_k_m", "UD-Q4_K_XL",
        "gguf", "\u0430", "\u212a", "--", "x" * 90,
    ]
)  # fmt: skip
_REFISH = st.lists(_PIECES, max_size=12).map("".join)


def _segments(ref: ModelRef) -> list[str]:
    return [*ref.name.split("/"), *([ref.tag] if ref.tag is not None else [])]


@given(st.one_of(st.text(), _REFISH))
@example("hf.co/a/b:latest")
@example("a..b")
@example("hf.co/../..")
def test_any_text_is_refused_or_gives_a_safe_ref_that_round_trips(text: str) -> None:
    try:
        ref = parse_ref(text)
    except InvalidReference as error:
        assert "\n" not in str(error) and str(error).isascii()
        return
    for segment in _segments(ref):
        assert segment and segment not in {".", ".."}
        assert SAFE_SEGMENT.fullmatch(segment), segment
    assert ".." not in str(ref)
    assert parse_ref(str(ref)) == ref
    assert str(parse_ref(str(ref))) == str(ref)


_HUB_PART = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda s: ".." not in s and "--" not in s and not s.lower().endswith(".git")
)
_QUANT = st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,10}", fullmatch=True)


@given(
    host=st.sampled_from(["", "hf.co/", "huggingface.co/", "https://hf.co/", "HTTPS://HuggingFace.co/"]),
    org=_HUB_PART,
    repo=_HUB_PART,
    quant=_QUANT,
)
def test_valid_hub_refs_parse_to_their_parts(host: str, org: str, repo: str, quant: str | None) -> None:
    text = f"{host}{org}/{repo}" + (f":{quant}" if quant is not None else "")
    ref = parse_ref(text)
    expected = None if quant is None or quant.upper() == "LATEST" else quant.upper()
    assert ref == HubRef(f"{org}/{repo}", expected)


@given(
    name=st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9_-])?", fullmatch=True),
    tag=st.none() | st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9._-]{0,20}[A-Za-z0-9_-])?", fullmatch=True),
)
def test_valid_local_refs_parse_lower_cased(name: str, tag: str | None) -> None:
    text = name if tag is None else f"{name}:{tag}"
    if ".." in text or name.lower() in {"hf.co", "huggingface.co"}:
        with pytest.raises(InvalidReference):
            parse_ref(text)
        return
    assert parse_ref(text) == LocalRef(name.lower(), (tag or "latest").lower())
    assert parse_local_name(text) == parse_ref(text)

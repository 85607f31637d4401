"""Go's ``text/template`` in pure Python: each construct, random templates, printing and refusals.

Every case is rendered by Python and by Go's own text/template
(tests/support/gorender, "raw" mode) and must match byte for byte, errors
included; all cases go to one Go process. Without a Go toolchain these tests
fail (CI installs golang-go): they never skip.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

import engine.templates.go.budget as go_budget
from engine.errors import TemplateError
from engine.templates.go.fmt import go_float, go_json, json_float
from engine.templates.go.template import GoTemplate
from tests.support.gorender import GoRender, python_render, same, session_oracle


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> GoRender:
    return session_oracle(tmp_path_factory)


def go_data(value: Any) -> Any:
    """Data as Go decodes it from JSON into ``any``: every number a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {k: go_data(v) for k, v in value.items()}
    return [go_data(v) for v in value]


# -- constructs, in plain text/template ---------------------------------------------

# Where Go writes invalid UTF-8, llamadeck refuses: a prompt is text.
REFUSED = {"{{ slice .uni 1 2 }}", "{{ 0x1p4 }}"}

DATA: dict[str, Any] = {
    "s": "str <&>",
    "empty": "",
    "n": 3,
    "f": 2.5,
    "big": 1e6,
    "zero": 0,
    "t": True,
    "no": False,
    "null": None,
    "list": ["a", "b", "c"],
    "nums": [1, 2, 3],
    "elist": [],
    "map": {"b": 2, "a": "x", "c": [1, {"k": None}], "d": None, "e": 1.5e-5},
    "emap": {},
    "msgs": [{"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "yo"}, {"Role": "user"}],
    "nested": {"inner": {"deep": "value"}},
    "uni": "héllo 🙂",
    "withnull": [1, None, "x"],
    "héllo": "unicode key",
}

RAW_CASES: list[str] = [
    # text, trimming, comments
    "plain text only",
    "a  {{- .s -}}  b",
    "a \n\t {{- .s }} \n b",
    "a {{ .s -}} \n\n b",
    "x {{- /* a comment */ -}} y",
    "x {{/* a\nmultiline comment */}} y",
    "x{{- 3}}y",
    "x{{3 -}}y",
    "{{ -3 }}|{{ +4 }}|{{ 0x1F }}|{{ 017 }}|{{ 1_000 }}|{{ 'a' }}|{{ '\\n' }}",
    "{{ 1.5 }}|{{ 1e6 }}|{{ 1e-5 }}|{{ 100.0 }}|{{ 123456.0 }}|{{ 1234567.0 }}|{{ .0001 }}",
    '{{ "esc\\t\\"q\\" \\u00e9 \\U0001F642 \\x41 \\101" }}|{{ `raw\\n` }}',
    # fields and printing
    "{{ .s }}|{{ .n }}|{{ .f }}|{{ .big }}|{{ .t }}|{{ .null }}|{{ .missing }}|{{ .list }}|{{ .map }}",
    "{{ .nested.inner.deep }}|{{ .nested.inner }}|{{ .nested.missing }}|{{ .msgs }}",
    "{{ . }}",
    "{{ .missing.deeper }}",
    "{{ .null.deeper }}",
    "{{ .s.field }}",
    "{{ .map.d }}|{{ .map.e }}|{{ .emap }}|{{ .elist }}|{{ .withnull }}",
    # variables
    '{{ $x := "one" }}{{ $x }}{{ $x = "two" }}{{ $x }}{{ $ }}',
    "{{ $m := .map }}{{ $m.a }}{{ $.s }}{{ $.nested.inner.deep }}",
    "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}",
    '{{ $s := "" }}{{ range .list }}{{ $s = printf "%s%s" $s . }}{{ end }}{{ $s }}',
    "{{ $v := .missing }}{{ $v.x }}|{{ $v }}",
    # if / else if / else / with
    "{{ if .t }}T{{ else }}F{{ end }}{{ if .no }}T{{ else }}F{{ end }}",
    (
        "{{ if .empty }}1{{ else if .zero }}2{{ else if .elist }}3{{ else if .emap }}"
        "4{{ else if .null }}5{{ else }}6{{ end }}"
    ),
    (
        "{{ if .s }}s{{ end }}{{ if .n }}n{{ end }}{{ if .list }}l{{ end }}"
        "{{ if .map }}m{{ end }}{{ if .missing }}x{{ end }}"
    ),
    "{{ with .nested.inner }}{{ .deep }}{{ end }}{{ with .empty }}no{{ else }}else{{ end }}",
    "{{ with $x := .s }}{{ $x }}/{{ . }}{{ end }}",
    "{{ if $x := .n }}{{ $x }}{{ else }}{{ $x }}{{ end }}",
    # range
    "{{ range .list }}[{{ . }}]{{ end }}",
    "{{ range $i, $e := .list }}{{ $i }}={{ $e }};{{ end }}",
    "{{ range $e := .nums }}{{ $e }},{{ end }}",
    "{{ range $k, $v := .map }}{{ $k }}:{{ $v }};{{ end }}",
    "{{ range .elist }}x{{ else }}empty{{ end }}{{ range .missing }}x{{ else }}none{{ end }}",
    "{{ range .msgs }}{{ .Role }}:{{ .Content }}|{{ end }}",
    "{{ range .withnull }}{{ . }};{{ end }}",
    "{{ range .withnull }}{{ .x }};{{ end }}",
    "{{ range $i, $m := .msgs }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $m.Role }}{{ end }}",
    "{{ range .nums }}{{ if gt . 1.5 }}{{ break }}{{ end }}{{ . }}{{ end }}",
    "{{ range .list }}{{ range $.nums }}{{ . }}{{ end }}{{ . }}{{ end }}",
    "{{ range .s }}{{ . }}{{ end }}",
    "{{ range .n }}{{ . }}{{ end }}",
    # comparison
    '{{ eq .s "str <&>" }}{{ eq .n 3.0 }}{{ eq .n 4.0 3.0 }}{{ ne .s "x" }}{{ eq .t true }}',
    "{{ eq .n 3 }}",
    '{{ eq .missing "x" }}{{ eq .null "x" }}',
    "{{ eq .missing .null }}",
    "{{ eq .list .list }}",
    '{{ lt 1 2 }}{{ le 2 2 }}{{ gt "b" "a" }}{{ ge 1.5 2.5 }}',
    "{{ lt 1 2.0 }}",
    "{{ lt true false }}",
    "{{ eq 1 }}",
    # logic
    (
        '{{ and .s .n }}|{{ and .s .empty .n }}|{{ or .empty .zero "z" }}'
        "|{{ or .empty .zero }}|{{ not .s }}|{{ not .elist }}"
    ),
    "{{ and .t .missing.x.y }}|{{ or .s .missing.x.y }}",
    "{{ and }}",
    "{{ .s | and .t }}|{{ .empty | or .zero }}",
    # len, index, slice
    "{{ len .s }}|{{ len .uni }}|{{ len .list }}|{{ len .map }}|{{ len .elist }}",
    "{{ len .n }}",
    "{{ len .missing }}",
    (
        '{{ index .list 1 }}|{{ index .map "a" }}|{{ index .map "zz" }}'
        '|{{ index .map "c" 1 "k" }}|{{ index .s 0 }}'
    ),
    "{{ index .list 5 }}",
    "{{ index .list 1.0 }}",
    "{{ index .missing 0 }}",
    "{{ slice .list 1 }}|{{ slice .list 0 2 }}|{{ slice .list }}|{{ slice .s 1 3 }}|{{ slice .list 1 2 3 }}",
    "{{ slice .list 2 1 }}",
    "{{ slice .uni 1 2 }}",
    # ASCII strings are read in place, not encoded: the same bytes and errors as Go's
    "{{ index .s 99 }}",
    "{{ index .s -1 }}",
    "{{ slice .s 2 99 }}",
    '{{ slice .s 3 }}|{{ slice .s 0 0 }}|{{ index "abc" 2 }}|{{ len "" }}|{{ slice "" }}',
    "{{ index .s 0 1 }}",
    "{{ len (slice .msgs 1) }}{{ $last := eq (len (slice .msgs 2)) 1 }}{{ $last }}",
    # print family
    '{{ print "a" "b" 1 2 "c" .t .list }}|{{ print .missing }}|{{ print }}|{{ println "x" 1 }}',
    '{{ printf "%s-%d-%v-%q" "s" 42 .map "q\\"\\n🙂\\x01" }}|{{ printf "100%%" }}|{{ printf "%v" .null }}',
    '{{ printf "%v|%v|%v" .f .big .nums }}',
    '{{ printf "%d|%s|%q|%d|%s" .n 1 65 true .withnull }}|{{ printf "%s" }}|{{ printf "x" 1 "a" .null }}',
    (
        '{{ printf "%d" .map }}|{{ printf "%q" .list }}|{{ printf "%s|%v" .t .t }}'
        '|{{ printf "%q" 39 }}|{{ printf "%" }}'
    ),
    '{{ html "<a href=\\"x\\">&\'</a>" }}|{{ html .n .s }}',
    # pipelines and parentheses
    '{{ .s | printf "%s!" }}|{{ "x" | printf "%s%s" "y" }}|{{ .list | len }}|{{ (len .list) }}',
    "{{ (index .msgs 0).Role }}|{{ (.nested).inner.deep }}",
    "{{ .list | .s }}",
    "{{ 3 | 4 }}",
    # json
    "{{ json .map }}|{{ json .s }}|{{ json .list }}|{{ json .null }}|{{ json .missing }}|{{ json .f }}",
    (
        '{{ json "<>&\\u2028 \\t\\n\\u0001" }}|{{ json 1e21 }}|{{ json 1e-7 }}'
        "|{{ json 123456789.0 }}|{{ json .emap }}"
    ),
    '{{ toTypeScriptType .s }}|{{ currentDate }}|{{ currentDate "x" }}',
    # edges of the lexer and parser
    "{{- .s}}|{{.s -}}\n x|{{.s}}|{{ .s\n}}|{{\n.s\n}}",
    "{{ .s- }}",
    "{{-/* c */-}}",
    "a {{/* c */ -}}  b {{- /* c */}} c",
    "a {{/* c */-}} b",
    "{{ 'ab' }}",
    '{{ "unterminated }}',
    "{{ 1e400 }}",
    "{{ 9223372036854775808 }}|",
    "{{ 9223372036854775807 }}|{{ -9223372036854775808 }}|{{ 1.0e2 }}",
    "{{ -0 }}|{{ -0.0 }}|{{ 0b101 }}|{{ 0o17 }}",
    "{{ 0x1p4 }}",
    "{{ .héllo }}|{{ $ }}",
    '{{ $x := 1 }}{{ $x := "again" }}{{ $x }}',
    "{{ range $i, $e := .list }}{{ end }}{{ $i }}",
    "{{ if $x := .s }}{{ end }}{{ $x }}",
    "{{ with .missing }}x{{ else }}{{ .s }}{{ end }}|{{ range .list }}{{ $.n }}{{ end }}",
    "{{ .list.x }}",
    "{{ .map.c.x }}",
    "{{ (1) }}|{{ (.s) }}|{{ (print 1 2) | len }}|{{ print (index .msgs 2).Content }}",
    "{{ (index .msgs 2).Content.x }}",
    "{{ $e := index .withnull 1 }}{{ $e.x }}|{{ $e }}",
    "{{ range $i, $e := .withnull }}{{ $e.x }}{{ end }}",
    '{{ index .map "c" 1 "k" "z" }}',
    "{{ eq .map.d nil }}|{{ eq .elist nil }}|{{ not nil }}|{{ print nil 1 }}|{{ eq nil nil }}",
    "{{ len nil }}",
    '{{ .s | printf "%s %s" .s }}|{{ and 1 0 | not }}|{{ or (eq .n 1.0) (eq .n 3.0) }}|{{ slice .s }}',
    "{{ index .uni 1 }}|{{ eq (index .s 0) 115 }}|{{ len .héllo }}",
    "{{ range $k, $v := .nested }}{{ $k }}{{ range $k2, $v2 := $v }}{{ $k2 }}={{ $v2 }}{{ end }}{{ end }}",
    "{{ with $x := .list }}{{ range . }}{{ $x }}{{ . }}{{ end }}{{ end }}",
    "{{ range .nums }}{{ continue }}{{ . }}{{ end }}after",
    "{{ range .list }}{{ else }}{{ break }}{{ end }}",
    "{{ if }}{{ end }}",
    "{{ range }}{{ end }}",
    "{{ .s | }}",
    "{{ | .s }}",
    "{{ printf }}",
    '{{ printf 1 "x" }}',
    "{{ currentDate 1 }}",
    "{{ json }}",
    "{{ json 1 2 }}",
    "{{ not 1 2 }}",
    # errors
    "{{ .s.x.y }}",
    "{{ index .map 1 }}",
    '{{ printf "%s" 1 }}',
]


@pytest.fixture(scope="module")
def raw_results(oracle: GoRender) -> list[dict[str, str]]:
    return oracle.run([{"mode": "raw", "template": t, "data": DATA} for t in RAW_CASES])


@pytest.mark.parametrize("index", range(len(RAW_CASES)), ids=[c[:40] for c in RAW_CASES])
def test_each_construct_renders_as_go_does(index: int, raw_results: list[dict[str, str]]) -> None:
    source = RAW_CASES[index]
    go = raw_results[index]

    def render() -> str:
        return GoTemplate.parse(source).execute(go_data(DATA))

    python = python_render(render)
    if source in REFUSED:
        assert "err" in python
        return
    assert same(python, go), f"{source!r}\npython: {python}\ngo:     {go}"


# -- random templates over the same data ------------------------------------------------

FIELDS = [".s", ".n", ".f", ".big", ".t", ".no", ".zero", ".empty", ".null", ".missing", ".list", ".nums"]
FIELDS += [".elist", ".map", ".map.a", ".map.c", ".emap", ".nested.inner", ".withnull", ".uni", "$", "."]
CONSTANTS = ['"str"', '"<&>"', "1", "3", "2.5", "0", "true", "false", "'x'", "`raw`", '""']
FUNCS = ["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "len", "index", "print", "json", "html"]


def random_operand(rng: random.Random, depth: int, variables: list[str]) -> str:
    roll = rng.random()
    if roll < 0.35 or depth > 2:
        return rng.choice(FIELDS + variables + ["$.s", "$.list"])
    if roll < 0.55:
        return rng.choice(CONSTANTS)
    fn = rng.choice(FUNCS + ["printf"])
    if fn == "printf":
        args = [rng.choice(['"%v|%s"', '"%d."', '"%q %v"', '"plain"'])]
        args += [random_operand(rng, depth + 1, variables) for _ in range(rng.randint(0, 2))]
    else:
        arity = {"not": 1, "len": 1, "json": 1, "index": 2, "eq": 2}.get(fn, rng.randint(1, 3))
        arity = 2 if fn in ("ne", "lt", "le", "gt", "ge") else arity
        args = [random_operand(rng, depth + 1, variables) for _ in range(arity)]
    return f"({fn} {' '.join(args)})"


def random_body(rng: random.Random, depth: int, variables: list[str], in_range: bool) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 4)):
        left = rng.choice(["{{", "{{", "{{- "])
        right = rng.choice(["}}", "}}", " -}}"])
        roll = rng.random()
        if roll < 0.4 or depth > 2:
            op = random_operand(rng, depth, variables)
            if rng.random() < 0.2:
                op += rng.choice([" | len", " | print", ' | printf "<%v>"', " | json"])
            parts.append(f"{left}{op}{right}")
        elif roll < 0.55:
            name = f"$v{depth}{len(parts)}"
            parts.append(f"{left}{name} := {random_operand(rng, depth, variables)}{right}")
            variables = [*variables, name]
        elif roll < 0.7:
            cond = random_operand(rng, depth, variables)
            body = random_body(rng, depth + 1, variables, in_range)
            other = random_body(rng, depth + 1, variables, in_range) if rng.random() < 0.5 else ""
            parts.append(
                f"{left}if {cond}{right}{body}" + (f"{{{{ else }}}}{other}" if other else "") + "{{ end }}"
            )
        elif roll < 0.85:
            i, e = f"$i{depth}", f"$e{depth}"
            over = rng.choice(
                [".list", ".nums", ".map", ".elist", ".withnull", ".missing", ".nested", ".msgs"]
            )
            body = random_body(rng, depth + 1, [*variables, i, e], True)
            parts.append(f"{left}range {i}, {e} := {over}{right}{body}{{{{ else }}}}none{{{{ end }}}}")
        elif roll < 0.95:
            body = random_body(rng, depth + 1, variables, in_range)
            parts.append(f"{left}with {random_operand(rng, depth, variables)}{right}{body}{{{{ end }}}}")
        elif in_range:
            parts.append(rng.choice(["{{ break }}", "{{ continue }}"]))
        parts.append(rng.choice([" ", "\n", " text ", "\n  ", ""]))
    return "".join(parts)


RANDOM_TEMPLATES = [random_body(random.Random(seed), 0, [], False) for seed in range(400)]


def test_random_templates_render_as_go_does(oracle: GoRender) -> None:
    answers = oracle.run([{"mode": "raw", "template": t, "data": DATA} for t in RANDOM_TEMPLATES])
    data = go_data(DATA)
    outs = 0
    for source, go in zip(RANDOM_TEMPLATES, answers, strict=True):
        python = python_render(lambda s=source: GoTemplate.parse(s).execute(data))
        assert same(python, go), f"{source!r}\npython: {python}\ngo:     {go}"
        outs += "out" in go
    assert outs > len(RANDOM_TEMPLATES) // 4  # renders often, does not only fail


# -- what Go prints, directly ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "printed", "as_json"),
    [
        (1.0, "1", "1"),
        (1e6, "1e+06", "1000000"),
        (123456.0, "123456", "123456"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "1e-05", "0.00001"),
        (1e-7, "1e-07", "1e-7"),
        (1e21, "1e+21", "1e+21"),
        (-2.5, "-2.5", "-2.5"),
        (1.2345678901234567e20, "1.2345678901234567e+20", "123456789012345670000"),
    ],
)
def test_floats_print_as_go_prints_them(value: float, printed: str, as_json: str) -> None:
    assert (go_float(value), json_float(value)) == (printed, as_json)


def test_json_escapes_as_the_go_that_builds_ollama_does() -> None:
    # Go 1.22+ (what Ollama ships) writes \b and \f short; Go 1.19 wrote \u0008 and \u000c.
    assert go_json("<a>&\b\f\x01\u2028") == '"\\u003ca\\u003e\\u0026\\b\\f\\u0001\\u2028"'
    assert go_json({"b": [1.0, None], "a": True}) == '{"a":true,"b":[1,null]}'


# -- refused at construction, with the construct named -------------------------------------


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ('{{ define "x" }}x{{ end }}', "define"),
        ('{{ template "x" }}', "template"),
        ('{{ block "x" . }}x{{ end }}', "block"),
        ("{{ call .f }}", "'call'"),
        ("{{ js .s }}", "'js'"),
        ("{{ urlquery .s }}", "'urlquery'"),
        ("{{ .Function.Arguments.String }}", "method .String"),
        ("{{ .ToTypeScriptType }}", "method .ToTypeScriptType"),
        ("{{ 1i }}", "complex"),
        ('{{ printf "%x" 1 }}', "%x"),
        ('{{ printf "%5s" "a" }}', "%5"),
        ("{{ range $x = .list }}{{ end }}", "range"),
        ("{{ nosuch 1 }}", "'nosuch' not defined"),
        ("{{ $undefined }}", "undefined variable '$undefined'"),
        ("{{ break }}", "outside {{range}}"),
        ("a\nb {{ .x", "line 2"),
        ("{{ if .x }}", "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ .x }} {{ /* c */ }}", "line 1, column 13"),
        ("{{/* unclosed", "unclosed comment"),
        ('{{ "\\xff" }}', "byte escape"),
        ("{{ (.x }}", "unclosed left paren"),
        ("{{ }}", "missing value"),
    ],
)
def test_an_unsupported_or_broken_template_is_refused_when_read(source: str, named: str) -> None:
    with pytest.raises(TemplateError, match=None) as caught:
        GoTemplate.parse(source)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_huge_loop_stops_on_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(go_budget, "MAX_STEPS", 50_000)
    template = GoTemplate.parse("{{ range .a }}{{ range $.a }}{{ range $.a }}x{{ end }}{{ end }}{{ end }}")
    with pytest.raises(TemplateError, match="steps"):  # a billion steps, stopped at the 50,000th
        template.execute({"a": list(range(1000))})


def test_a_huge_output_stops_on_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(go_budget, "MAX_OUTPUT", 10_000)
    template = GoTemplate.parse("{{ range .a }}{{ $.s }}{{ end }}")
    with pytest.raises(TemplateError, match="characters"):
        template.execute({"a": list(range(100)), "s": "y" * 1000})

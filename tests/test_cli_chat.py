"""``llamadeck chat MODEL``: a conversation under the shell prompt, kept in the app's chat history.

Run as a person runs it: in a real terminal (tmux) for the prompt, the
rendered Markdown, Ctrl+C and Ctrl+D; through a pipe for the plain text and a
``kill -9``. The models are tiny chain GGUFs: one says a Markdown reply by
rote, one thinks first, one says "hello world" until its 65,536-token context
is full (minutes), so a reply is surely still streaming when Ctrl+C comes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import Engine, Machine
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.cli import (
    LLAMADECK,
    assert_one_line_error,
    env_for,
    llamadeck,
    run_into_a_closed_pipe,
)
from tests.support.said_gguf import ANSWER, THINK_TEMPLATE, THINKER, THINKING, Said, write_said_gguf
from tests.support.tiny_gguf import CHAT_TEMPLATE
from tui.chatstore import ChatStore, default_chat_db

MARKDOWN = Said(
    ("# Paris\n\n", "The capital is **Paris**.\n\n", "- one\n- two\n\n", "```python\nprint('hi')\n```")
)
LOOP_CONTEXT = 65536  # "hello world" until this is full: minutes at a tiny model's few hundred tokens/s
SHOWN = f"Thinking...\n{THINKING}\n...done thinking.\n\n{ANSWER}\n"  # as run shows it in a pipe


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("chat-models")
    hello, world = token_id("▁hello"), token_id("▁world")
    return {
        "md": write_said_gguf(d / "md.gguf", MARKDOWN, template=CHAT_TEMPLATE),
        "thinker": write_said_gguf(d / "thinker.gguf", THINKER, template=THINK_TEMPLATE),
        "loop": write_chain_gguf(
            d / "loop.gguf",
            {hello: world, world: hello},
            default=hello,
            chat_template=CHAT_TEMPLATE,
            context_length=LOOP_CONTEXT,
        ),
    }


@pytest.fixture
def models(ggufs: dict[str, Path]) -> Iterator[None]:
    """The three models in this test's store."""
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    engine.create("md", f"FROM {ggufs['md']}\n")
    engine.create("thinker", f"FROM {ggufs['thinker']}\n")
    engine.create("loop", f"FROM {ggufs['loop']}\nPARAMETER num_ctx {LOOP_CONTEXT}\n")
    engine.close()
    yield


def history() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """Every chat in the history (oldest first): title, model, and each message's role, status, text."""
    with ChatStore.open(default_chat_db()) as store:
        return [
            (c.title, c.model, [(m.role, m.status, m.content) for m in store.messages(c.id)])
            for c in reversed(store.conversations())
        ]


def chat(*args: str, lines: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``llamadeck chat ARGS`` with ``lines`` on stdin (each line a message) and stdout a pipe."""
    return subprocess.run(
        [LLAMADECK, "chat", *args], env=env_for(None, **env), input=lines, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("one para", ""),
        ("one\n\ntwo", ""),  # half a line may still become anything
        ("one\n\ntwo\n", "one\n\n"),
        ("a\n\n```\ncode\n\n\nmore", "a\n\n"),  # an open fence is one block to the end
        ("- a\n- b\n\nafter\n", "- a\n- b\n\n"),
        ("para\n---\n", ""),  # a setext heading: the paragraph was not done
        ("1. a\n\n   still a\n", ""),
        ("| a | b |\n|---|---|\n| 1 | 2 |\n\nnext\n", "| a | b |\n|---|---|\n| 1 | 2 |\n\n"),
    ],
)
def test_only_whole_markdown_blocks_are_printed_for_good(text: str, printed: str) -> None:
    """What a streaming reply prints into the scrollback is what later text cannot change."""
    from tui.cli.inline_render import markdown_parser, settled

    assert text[: settled(text, markdown_parser())] == printed


# --- through a pipe --------------------------------------------------------------------------------


@pytest.mark.usefixtures("models")
def test_two_turns_from_a_pipe_are_answered_and_kept_in_the_history() -> None:
    result = chat("md", "-t", "0", lines="What is the capital?\nAnd again?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (MARKDOWN.text + "\n\n") * 2  # plain text, a blank line after each reply
    [(title, model, messages)] = history()
    assert (title, model) == ("What is the capital?", "md:latest")
    assert messages == [
        ("user", "complete", "What is the capital?"),
        ("assistant", "complete", MARKDOWN.text),
        ("user", "complete", "And again?"),
        ("assistant", "complete", MARKDOWN.text),
    ]
    with ChatStore.open(default_chat_db()) as store:
        assert store.conversations()[0].parameters == {"temperature": 0.0}  # the chat's own, as the app's


@pytest.mark.usefixtures("models")
def test_commands_as_in_ollama_run() -> None:
    lines = 'hi\n/?\n/what\n/clear\n"""\nline one\nline two\n"""\n/bye\nnever sent\n'
    result = chat("md", lines=lines)
    assert result.returncode == 0, result.stderr
    assert "Available Commands:" in result.stdout and "/bye" in result.stdout
    assert "Unknown command '/what'. Type /? for help" in result.stdout
    assert "Cleared session context" in result.stdout
    first, second = history()  # /clear started a second chat; nothing after /bye was sent
    assert [m[2] for m in first[2]] == ["hi", MARKDOWN.text]
    assert second[0] == "line one" and [m[2] for m in second[2]] == ["line one\nline two", MARKDOWN.text]


@pytest.mark.usefixtures("models")
@pytest.mark.parametrize(("flags", "shown"), [((), SHOWN), (("--hidethinking",), ANSWER + "\n")])
def test_a_thinking_model_shows_its_reasoning_as_run_does(flags: tuple[str, ...], shown: str) -> None:
    result = chat("thinker", "-t", "0", *flags, lines="Capital of France?\n")
    assert result.returncode == 0 and result.stdout == shown + "\n", result.stderr
    [(_, _, messages)] = history()
    assert messages[1] == ("assistant", "complete", ANSWER)  # the history keeps the answer, as the app
    with ChatStore.open(default_chat_db()) as store:
        (kept,) = store.conversations()
        assert store.messages(kept.id)[1].thinking.strip() == THINKING  # and the reasoning, as the app


@pytest.mark.usefixtures("models")
def test_refusals_are_one_line() -> None:
    assert_one_line_error(chat("ghost", lines="hi\n"), "ghost:latest not found")
    assert_one_line_error(llamadeck("chat", "md", "-t", "nan"), "--temperature/-t")
    assert_one_line_error(llamadeck("chat", "md", "--think=huge"), "invalid value for --think: 'huge'")
    raw = subprocess.run(
        [LLAMADECK, "chat", "md"], env=env_for(None), input=b"caf\xe9\n", capture_output=True
    )
    decoded = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode())
    assert_one_line_error(decoded, "stdin is not valid UTF-8 text")


@pytest.mark.usefixtures("models")
def test_a_reader_that_goes_away_ends_the_chat_quietly_and_the_reply_is_kept() -> None:
    result = run_into_a_closed_pipe("chat", "md", "-t", "0", input="hi\nnever sent\n")
    assert result.returncode == 1 and result.stderr == "", result.stderr
    [(_, _, messages)] = history()
    assert messages == [("user", "complete", "hi"), ("assistant", "interrupted", messages[1][2])]


@pytest.mark.usefixtures("models")
def test_a_history_that_cannot_be_opened_is_said_and_the_chat_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the data directory should be")
    result = chat("md", lines="hi\n", XDG_DATA_HOME=str(blocked))
    assert result.returncode == 0 and result.stdout == MARKDOWN.text + "\n\n", result.stderr
    assert "will not be saved" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.usefixtures("models")
def test_kill_9_mid_reply_keeps_what_was_saved_marked_interrupted() -> None:
    proc = subprocess.Popen(
        [LLAMADECK, "chat", "loop"],
        env=env_for(None),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write("go on\n")
    proc.stdin.flush()
    saved = _wait(lambda: _saved_reply(proc), proc, "the reply saved while it streams")
    proc.kill()
    proc.wait(timeout=60)
    [(title, _, messages)] = history()  # opening the history finds the reply cut off
    assert title == "go on" and messages[0] == ("user", "complete", "go on")
    role, status, text = messages[1]
    assert (role, status) == ("assistant", "interrupted") and text.startswith(saved)


def _saved_reply(proc: subprocess.Popen[str]) -> str:
    """The streaming reply's text as saved so far, read without opening the history as the app does
    (which would mark the live reply interrupted)."""
    path = default_chat_db()
    if not path.exists():
        return ""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT content FROM messages WHERE role = 'assistant' AND status = 'streaming'"
        ).fetchone()
    except sqlite3.OperationalError:  # the tables are being made
        return ""
    finally:
        db.close()
    return row[0] if row and "hello world" in row[0] else ""


def _wait(condition: Callable[[], str], proc: subprocess.Popen[str], what: str) -> str:
    deadline = time.monotonic() + 120
    while not (found := condition()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)
    return found


# --- in a terminal ---------------------------------------------------------------------------------


class Terminal:
    """``llamadeck ARGS`` in a fresh tmux session of 80x24; ``status`` holds its exit status at the end."""

    def __init__(self, tmp_path: Path, *args: str, **extra: str) -> None:
        self.name = f"llamadeck-chat-{uuid.uuid4().hex[:8]}"
        self.status = tmp_path / f"{self.name}.status"
        keep = ("PYTHONPATH", "PATH", "HOME", "LLAMADECK_HOME")
        env = {k: v for k, v in os.environ.items() if k in keep or k.startswith(("XDG_", "HF_"))}
        env |= {"TERM": "xterm-256color", "LANG": "C.UTF-8", **extra}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = f"env -i {exports} {LLAMADECK} {shlex.join(args)}; echo $? > {self.status}; sleep 600"
        self.tmux("new-session", "-d", "-s", self.name, "-x", "80", "-y", "24", command)

    @staticmethod
    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-S", "-200", "-t", self.name)  # with what scrolled away

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def say(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)
        self.keys("Enter")

    def wait(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + 120
        while not condition(shown := self.screen()):
            assert time.monotonic() < deadline, f"never saw {what}:\n{shown}"
            time.sleep(0.1)
        return shown

    def prompt_back(self) -> str:
        """Wait for an empty ``>>>`` prompt on the last line written."""
        return self.wait(lambda s: s.rstrip().splitlines()[-1:] == [">>>"], "the prompt again")

    def exit_status(self) -> str:
        self.wait(lambda s: self.status.exists() and self.status.read_text().strip() != "", "the end")
        return self.status.read_text().strip()


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """Fails, never skips, without tmux (CI installs it); every session is killed at the end."""
    assert shutil.which("tmux"), "tmux is not installed: apt-get install tmux"
    opened: list[Terminal] = []

    def open_terminal(*args: str, **extra: str) -> Terminal:
        opened.append(Terminal(tmp_path, *args, **extra))
        return opened[-1]

    yield open_terminal
    for session in opened:
        Terminal.tmux("kill-session", "-t", session.name)


@pytest.mark.usefixtures("models")
def test_a_chat_in_the_terminal_renders_markdown_and_keeps_both_turns(terminal) -> None:
    term = terminal("chat", "md", "-t", "0")
    term.prompt_back()
    term.say("What is the capital?")
    shown = term.prompt_back()
    assert "The capital is Paris." in shown and "**" not in shown  # rendered: bold, not asterisks
    assert "• one" in shown and "```" not in shown and "print('hi')" in shown
    term.keys("Up")  # readline: the last message back, to send again
    term.keys("Enter")
    term.wait(lambda s: s.count("The capital is Paris.") == 2, "the second reply")
    term.prompt_back()
    term.say("/bye")
    assert term.exit_status() == "0"
    assert "Saved in the chat history as “What is the capital?”" in term.screen()
    [(title, model, messages)] = history()
    assert (title, model) == ("What is the capital?", "md:latest")
    assert [(m[0], m[1]) for m in messages] == [("user", "complete"), ("assistant", "complete")] * 2
    assert messages[2][2] == "What is the capital?" and messages[3][2] == MARKDOWN.text


@pytest.mark.usefixtures("models")
def test_no_color_shows_the_reply_as_plain_text(terminal) -> None:
    term = terminal("chat", "md", "-t", "0", NO_COLOR="1")
    term.prompt_back()
    term.say("What is the capital?")
    assert "The capital is **Paris**." in term.prompt_back()
    term.keys("C-d")  # Ctrl+D leaves, as /bye does
    assert term.exit_status() == "0"


@pytest.mark.usefixtures("models")
def test_ctrl_c_stops_a_reply_and_the_chat_goes_on(terminal) -> None:
    term = terminal("chat", "loop")
    term.prompt_back()
    for turn in ("tell me more", "and more"):
        term.say(turn)
        term.wait(lambda s, asked=turn: "hello world hello" in s.split(asked, 1)[-1], "the reply streaming")
        term.keys("C-c")
        term.prompt_back()  # minutes before this reply could end by itself: Ctrl+C ended it
    term.keys("C-c")  # at the prompt Ctrl+C does not leave either
    term.wait(lambda s: "Use Ctrl + d or /bye to exit." in s, "the hint")
    term.say("/bye")
    assert term.exit_status() == "0"
    [(_, _, messages)] = history()
    assert [(m[0], m[1]) for m in messages] == [("user", "complete"), ("assistant", "stopped")] * 2
    assert all(m[2].lstrip().startswith("hello world") for m in messages[1::2])  # what was shown is kept

"""The chat history's schema 5: a reply's reasoning and tool calls, a tool result's tool, a chat's tools.

Before it, a thinking model's reasoning and a reply's tool calls were shown while streaming and lost on
reopening; now they are kept beside the text, come back, and go into the export.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.chat_history import make_v4
from tui.chatstore import ChatStore

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
CALL = {
    "id": "call_abcdefgh",
    "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
}


def test_step_v4_to_v5_adds_thinking_tool_calls_and_tools_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    make_v4(path)
    with ChatStore.open(path) as store:
        assert store.schema_version >= 5  # and on to the newest
        (chat,) = store.conversations()
        assert (chat.title, chat.format, chat.tools) == ("Old chat", "json", None)
        hi, hel = store.messages(chat.id)
        assert (hi.content, hel.content, hel.stats) == ("Hi", "Hel", {"tokens_per_second": 9.5})
        assert (hel.thinking, hel.tool_calls, hel.tool_name) == ("", (), None)
        assert store.drafts() == {chat.id: "half a thought"}
        store.update_settings(chat.id, tools=[WEATHER_TOOL])
        reply = store.begin_reply(chat.id)
        store.update_reply(reply, "Checking.", thinking="The user asks", tool_calls=[CALL])
        store.finish_reply(reply, "Checking.", status="complete", thinking="The user asks about Paris.")
        store.add_message(chat.id, "tool", '{"temperature": 21}', tool_name="get_weather")
    with ChatStore.open(path) as again:
        assert again.get(chat.id).tools == [WEATHER_TOOL]
        *_, call, result = again.messages(chat.id)
        assert (call.content, call.thinking, call.tool_calls) == (
            "Checking.",
            "The user asks about Paris.",
            (CALL,),
        )
        assert (result.role, result.tool_name, result.content) == (
            "tool",
            "get_weather",
            '{"temperature": 21}',
        )
        again.update_settings(chat.id, tools=None)
        assert again.get(chat.id).tools is None


def test_the_export_has_the_reasoning_the_calls_and_their_results(tmp_path: Path) -> None:
    with ChatStore.open(tmp_path / "chats.db") as store:
        chat = store.create("caller", tools=[WEATHER_TOOL])
        store.add_message(chat.id, "user", "Weather in Paris?")
        reply = store.begin_reply(chat.id)
        store.finish_reply(reply, "Checking.", status="complete", thinking="Use the tool.", tool_calls=[CALL])
        store.add_message(chat.id, "tool", '{"temperature": 21}', tool_name="get_weather")
        text = store.export_markdown(chat.id)
    assert "- Tools: `get_weather`" in text
    assert "<details><summary>Thinking</summary>\n\nUse the tool.\n\n</details>" in text
    assert 'Checking.\n\n**Tool call:** `get_weather`\n\n```json\n{\n  "city": "Paris"\n}\n```' in text
    assert '## Tool result: `get_weather`\n\n{"temperature": 21}' in text
